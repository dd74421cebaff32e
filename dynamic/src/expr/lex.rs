//! Tokens of the expression language, each with its byte offset.

use super::ParseError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    /// `and or not in is if else lambda None True False`.
    Keyword(&'static str),
    /// Punctuation and operators: `( ) [ ] { } , : . + - * / // % == != < <= > >=`, and
    /// `=` (which only a keyword argument would use, to say they are not supported).
    Punct(&'static str),
}

impl Token {
    /// How an error names it.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Int(value) => format!("number {value}"),
            Self::Float(value) => format!("number {value}"),
            Self::Str(text) => format!("string '{text}'"),
            Self::Name(name) => format!("name `{name}`"),
            Self::Keyword(word) => format!("`{word}`"),
            Self::Punct(punct) => format!("`{punct}`"),
        }
    }
}

const KEYWORDS: [&str; 11] = ["and", "or", "not", "in", "is", "if", "else", "lambda", "None", "True", "False"];
const PUNCTS: [&str; 22] =
    ["//", "==", "!=", "<=", ">=", "=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "+", "-", "*", "/", "%", "<", ">"];

/// The tokens of `text`.
pub(super) fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        if c == b'\'' || c == b'"' {
            let (value, end) = string(text, at)?;
            tokens.push((Token::Str(value), start));
            at = end;
        } else if c.is_ascii_digit() || (c == b'.' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)) {
            let (token, end) = number(text, at)?;
            tokens.push((token, start));
            at = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            let word = &text[start..at];
            match KEYWORDS.iter().find(|k| **k == word) {
                Some(keyword) => tokens.push((Token::Keyword(keyword), start)),
                None => tokens.push((Token::Name(word.to_string()), start)),
            }
        } else if let Some(punct) = PUNCTS.iter().find(|p| text[at..].starts_with(**p)) {
            tokens.push((Token::Punct(punct), start));
            at += punct.len();
        } else {
            let found = text[at..].chars().next().unwrap_or('?');
            let hint = match found {
                '|' => " (a `|` separates operations; inside one, write `or`)",
                '&' => " (write `and`)",
                '!' => " (write `not`)",
                _ => "",
            };
            return Err(ParseError::new(format!("unexpected character `{found}`{hint}"), at));
        }
    }
    Ok(tokens)
}

/// A quoted string from `at` (its quote): its value and the offset after it.
fn string(text: &str, at: usize) -> Result<(String, usize), ParseError> {
    let quote = text.as_bytes()[at] as char;
    let mut value = String::new();
    let mut chars = text[at + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            _ if c == quote => return Ok((value, at + 1 + offset + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, '0')) => value.push('\0'),
                Some((_, escaped @ ('\\' | '\'' | '"'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err(ParseError::new("this string has no closing quote", at))
}

/// A number from `at`: the token and the offset after it.
fn number(text: &str, at: usize) -> Result<(Token, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut end = at;
    let mut float = false;
    while end < bytes.len() {
        match bytes[end] {
            b'0'..=b'9' | b'_' => end += 1,
            b'.' if !float => {
                float = true;
                end += 1;
            }
            b'e' | b'E' => {
                float = true;
                end += 1;
                if matches!(bytes.get(end), Some(b'+' | b'-')) {
                    end += 1;
                }
            }
            _ => break,
        }
    }
    let digits: String = text[at..end].chars().filter(|c| *c != '_').collect();
    let bad = || ParseError::new(format!("`{}` is not a number", &text[at..end]), at);
    let token = if float {
        Token::Float(digits.parse().map_err(|_| bad())?)
    } else {
        Token::Int(digits.parse().map_err(|_| bad())?)
    };
    Ok((token, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_offsets() {
        let tokens = tokenize("value.split('$')[0] // 2").unwrap();
        let offsets: Vec<usize> = tokens.iter().map(|(_, at)| *at).collect();
        assert_eq!(offsets, [0, 5, 6, 11, 12, 15, 16, 17, 18, 20, 23]);
        assert_eq!(tokens[4].0, Token::Str("$".into()));
        assert_eq!(tokens[9].0, Token::Punct("//"));
        assert_eq!(
            tokenize("1.5e3 .5 7").unwrap().iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
            [Token::Float(1500.0), Token::Float(0.5), Token::Int(7)]
        );
        assert_eq!(tokenize(r#"'it\'s' "a\"b""#).unwrap()[0].0, Token::Str("it's".into()));
    }

    #[test]
    fn bad_characters_and_strings_say_where() {
        assert_eq!(tokenize("value ; 1").unwrap_err().offset, 6);
        assert_eq!(tokenize("'open").unwrap_err(), ParseError::new("this string has no closing quote", 0));
        assert!(tokenize("a && b").unwrap_err().message.contains("write `and`"));
    }
}
