//! A small, safe expression language for transformer parameters: Ceilometer's
//! `scale` and `expr` strings, such as
//! `100.0 / (10**9 * (resource_metadata.cpu_number or 1))` or
//! `$(memory.usage) / $(memory) * 100`.
//!
//! It is parsed into a tree once and evaluated over numbers; nothing is ever run as
//! code. What it knows:
//!
//! - numbers (`100`, `1.5`, `1e9`), parentheses;
//! - `+ - * / % **` (Python's precedence: `**` binds tightest and to the right,
//!   `-2**2` is `-4`), unary `-` and `+`;
//! - `a or b` (`a` unless it is missing or zero), `a and b`;
//! - `volume` (the sample's volume) and `resource_metadata.KEY` (one key of its
//!   resource's metadata; missing when absent, so `resource_metadata.x or 1` works);
//! - `$(meter.name)` (that meter's volume), `$(meter.name).volume` and
//!   `$(meter.name).resource_metadata.KEY` (in `arithmetic` expressions).
//!
//! Evaluating something missing other than as the left side of `or`/`and`, dividing
//! by zero, or a non-finite result is an [`EvalError`], never a panic.

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
}

/// What a name in an expression refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operand {
    /// `volume`, or `$(meter)` / `$(meter).volume` when `meter` is set.
    Volume {
        /// The meter named by `$(...)`, if any.
        meter: Option<String>,
    },
    /// `resource_metadata.KEY`, or `$(meter).resource_metadata.KEY`.
    Metadata {
        /// The meter named by `$(...)`, if any.
        meter: Option<String>,
        /// The metadata key.
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(f64),
    Operand(Operand),
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Power,
    Or,
    And,
}

/// An expression that could not be parsed: what and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Byte offset into the text.
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for ParseError {}

/// Why an expression has no value for one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// Where an expression's operands get their values: `None` is missing.
pub trait Scope {
    /// The value of `operand`.
    fn value(&self, operand: &Operand) -> Option<f64>;
}

/// A scope from a closure.
impl<F: Fn(&Operand) -> Option<f64>> Scope for F {
    fn value(&self, operand: &Operand) -> Option<f64> {
        self(operand)
    }
}

impl Expr {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, position: 0, end: text.len() };
        let root = parser.or_expression()?;
        match parser.peek() {
            None => Ok(Expr { root }),
            Some((token, offset)) => Err(ParseError { message: format!("unexpected {}", token.describe()), offset }),
        }
    }

    /// The value of the expression in `scope`.
    pub fn eval(&self, scope: &impl Scope) -> Result<f64, EvalError> {
        match evaluate(&self.root, scope)? {
            Some(value) if value.is_finite() => Ok(value),
            Some(value) => Err(EvalError(format!("the result is {value}, not a finite number"))),
            None => Err(EvalError("the result is missing".into())),
        }
    }

    /// Every operand the expression reads, each once, in order of appearance.
    pub fn operands(&self) -> Vec<&Operand> {
        let mut found = Vec::new();
        collect(&self.root, &mut found);
        found
    }

    /// The meters named by `$(...)`, each once, in order of appearance.
    pub fn meters(&self) -> Vec<&str> {
        let mut meters: Vec<&str> = Vec::new();
        for operand in self.operands() {
            let (Operand::Volume { meter: Some(meter) } | Operand::Metadata { meter: Some(meter), .. }) = operand
            else {
                continue;
            };
            if !meters.contains(&meter.as_str()) {
                meters.push(meter);
            }
        }
        meters
    }

    /// Whether it is a plain number.
    pub fn as_constant(&self) -> Option<f64> {
        match self.root {
            Node::Number(value) => Some(value),
            _ => None,
        }
    }
}

fn collect<'a>(node: &'a Node, found: &mut Vec<&'a Operand>) {
    match node {
        Node::Number(_) => {}
        Node::Operand(operand) => {
            if !found.contains(&operand) {
                found.push(operand);
            }
        }
        Node::Negate(inner) => collect(inner, found),
        Node::Binary(_, left, right) => {
            collect(left, found);
            collect(right, found);
        }
    }
}

fn describe(operand: &Operand) -> String {
    match operand {
        Operand::Volume { meter: None } => "volume".into(),
        Operand::Volume { meter: Some(meter) } => format!("$({meter})"),
        Operand::Metadata { meter: None, key } => format!("resource_metadata.{key}"),
        Operand::Metadata { meter: Some(meter), key } => format!("$({meter}).resource_metadata.{key}"),
    }
}

/// `Ok(None)` is a missing value (allowed only where `or`/`and` can replace it).
fn evaluate(node: &Node, scope: &impl Scope) -> Result<Option<f64>, EvalError> {
    let number = |node: &Node| -> Result<f64, EvalError> {
        evaluate(node, scope)?.ok_or_else(|| {
            let missing = match node {
                Node::Operand(operand) => describe(operand),
                _ => "a value".into(),
            };
            EvalError(format!("{missing} is missing"))
        })
    };
    Ok(Some(match node {
        Node::Number(value) => *value,
        Node::Operand(operand) => return Ok(scope.value(operand)),
        Node::Negate(inner) => -number(inner)?,
        Node::Binary(BinaryOp::Or, left, right) => {
            return match evaluate(left, scope)? {
                Some(value) if value != 0.0 => Ok(Some(value)),
                _ => evaluate(right, scope),
            }
        }
        Node::Binary(BinaryOp::And, left, right) => {
            return match evaluate(left, scope)? {
                Some(value) if value != 0.0 => evaluate(right, scope),
                other => Ok(other),
            }
        }
        Node::Binary(op, left, right) => {
            let (left, right) = (number(left)?, number(right)?);
            match op {
                BinaryOp::Add => left + right,
                BinaryOp::Subtract => left - right,
                BinaryOp::Multiply => left * right,
                BinaryOp::Divide | BinaryOp::Modulo if right == 0.0 => {
                    return Err(EvalError("division by zero".into()))
                }
                BinaryOp::Divide => left / right,
                // Python's modulo takes the sign of the divisor.
                BinaryOp::Modulo => left - right * (left / right).floor(),
                BinaryOp::Power => left.powf(right),
                BinaryOp::Or | BinaryOp::And => unreachable!("handled above"),
            }
        }
    }))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Meter(String),
    Symbol(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(value) => format!("number {value}"),
            Token::Name(name) => format!("`{name}`"),
            Token::Meter(name) => format!("`$({name})`"),
            Token::Symbol(symbol) => format!("`{symbol}`"),
        }
    }
}

const SYMBOLS: &[&str] = &["**", "+", "-", "*", "/", "%", "(", ")", "."];

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if c.is_ascii_digit() || (c == b'.' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)) {
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_digit() || bytes[at] == b'.') {
                at += 1;
            }
            if at < bytes.len() && (bytes[at] == b'e' || bytes[at] == b'E') {
                let mut exponent = at + 1;
                if exponent < bytes.len() && (bytes[exponent] == b'+' || bytes[exponent] == b'-') {
                    exponent += 1;
                }
                if exponent < bytes.len() && bytes[exponent].is_ascii_digit() {
                    at = exponent;
                    while at < bytes.len() && bytes[at].is_ascii_digit() {
                        at += 1;
                    }
                }
            }
            let literal = &text[start..at];
            let value = literal
                .parse::<f64>()
                .map_err(|_| ParseError { message: format!("`{literal}` is not a number"), offset: start })?;
            tokens.push((Token::Number(value), start));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            tokens.push((Token::Name(text[start..at].to_string()), start));
        } else if c == b'$' {
            let start = at;
            if bytes.get(at + 1) != Some(&b'(') {
                return Err(ParseError { message: "`$` must start a meter reference `$(name)`".into(), offset: at });
            }
            let Some(close) = text[at + 2..].find(')') else {
                return Err(ParseError { message: "`$(` is not closed by `)`".into(), offset: at });
            };
            let name = text[at + 2..at + 2 + close].trim();
            let valid = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-' | ':');
            if name.is_empty() || !name.chars().all(valid) {
                return Err(ParseError { message: format!("`$({name})` is not a meter name"), offset: start });
            }
            tokens.push((Token::Meter(name.to_string()), start));
            at += close + 3;
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[at..].starts_with(**s)) {
            tokens.push((Token::Symbol(symbol), at));
            at += symbol.len();
        } else {
            let ch = text[at..].chars().next().unwrap_or('?');
            return Err(ParseError { message: format!("unexpected character `{ch}`"), offset: at });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(Token, usize)> {
        self.tokens.get(self.position).cloned()
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.tokens.get(self.position), Some((Token::Symbol(s), _)) if *s == symbol) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, name: &str) -> bool {
        if matches!(self.tokens.get(self.position), Some((Token::Name(n), _)) if n == name) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn error_here(&self, expected: &str) -> ParseError {
        match self.peek() {
            Some((token, offset)) => {
                ParseError { message: format!("expected {expected}, found {}", token.describe()), offset }
            }
            None => ParseError { message: format!("expected {expected}, found the end"), offset: self.end },
        }
    }

    fn or_expression(&mut self) -> Result<Node, ParseError> {
        let mut node = self.and_expression()?;
        while self.eat_name("or") {
            node = Node::Binary(BinaryOp::Or, Box::new(node), Box::new(self.and_expression()?));
        }
        Ok(node)
    }

    fn and_expression(&mut self) -> Result<Node, ParseError> {
        let mut node = self.sum()?;
        while self.eat_name("and") {
            node = Node::Binary(BinaryOp::And, Box::new(node), Box::new(self.sum()?));
        }
        Ok(node)
    }

    fn sum(&mut self) -> Result<Node, ParseError> {
        let mut node = self.product()?;
        loop {
            let op = if self.eat_symbol("+") {
                BinaryOp::Add
            } else if self.eat_symbol("-") {
                BinaryOp::Subtract
            } else {
                return Ok(node);
            };
            node = Node::Binary(op, Box::new(node), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Node, ParseError> {
        let mut node = self.unary()?;
        loop {
            let op = if self.eat_symbol("*") {
                BinaryOp::Multiply
            } else if self.eat_symbol("/") {
                BinaryOp::Divide
            } else if self.eat_symbol("%") {
                BinaryOp::Modulo
            } else {
                return Ok(node);
            };
            node = Node::Binary(op, Box::new(node), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.eat_symbol("-") {
            return Ok(Node::Negate(Box::new(self.unary()?)));
        }
        if self.eat_symbol("+") {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Node, ParseError> {
        let base = self.atom()?;
        if self.eat_symbol("**") {
            // Right-associative, and the exponent may carry a sign: 2 ** -1.
            return Ok(Node::Binary(BinaryOp::Power, Box::new(base), Box::new(self.unary()?)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Node, ParseError> {
        let Some((token, offset)) = self.peek() else {
            return Err(self.error_here("a number, a name or `(`"));
        };
        self.position += 1;
        match token {
            Token::Number(value) => Ok(Node::Number(value)),
            Token::Symbol("(") => {
                let inner = self.or_expression()?;
                if !self.eat_symbol(")") {
                    return Err(self.error_here("`)`"));
                }
                Ok(inner)
            }
            Token::Name(name) => self.field(None, &name, offset),
            Token::Meter(meter) => {
                if !self.eat_symbol(".") {
                    return Ok(Node::Operand(Operand::Volume { meter: Some(meter) }));
                }
                match self.peek() {
                    Some((Token::Name(name), at)) => {
                        self.position += 1;
                        self.field(Some(meter), &name, at)
                    }
                    _ => Err(self.error_here("`volume` or `resource_metadata` after `.`")),
                }
            }
            other => Err(ParseError { message: format!("unexpected {}", other.describe()), offset }),
        }
    }

    /// `volume` or `resource_metadata.KEY`, of the sample or of `meter`.
    fn field(&mut self, meter: Option<String>, name: &str, offset: usize) -> Result<Node, ParseError> {
        match name {
            "volume" => Ok(Node::Operand(Operand::Volume { meter })),
            "resource_metadata" => {
                if !self.eat_symbol(".") {
                    return Err(self.error_here("`.KEY` after `resource_metadata`"));
                }
                let Some((Token::Name(key), _)) = self.peek() else {
                    return Err(self.error_here("a metadata key"));
                };
                self.position += 1;
                if self.eat_symbol(".") {
                    return Err(ParseError {
                        message: format!("nested metadata (`resource_metadata.{key}.…`) is not supported"),
                        offset,
                    });
                }
                Ok(Node::Operand(Operand::Metadata { meter, key }))
            }
            other => Err(ParseError {
                message: format!(
                    "unknown name `{other}`: an expression may use numbers, `volume`, `resource_metadata.KEY`, \
                     `$(meter)`, + - * / % ** ( ) `or` `and`"
                ),
                offset,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_with(text: &str, volume: f64, cpu_number: Option<f64>) -> Result<f64, EvalError> {
        let expr = Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        expr.eval(&|operand: &Operand| match operand {
            Operand::Volume { meter: None } => Some(volume),
            Operand::Metadata { key, .. } if key == "cpu_number" => cpu_number,
            _ => None,
        })
    }

    #[test]
    fn ceilometer_scale_expressions() {
        let cpu_util = "100.0 / (10**9 * (resource_metadata.cpu_number or 1))";
        assert_eq!(eval_with(cpu_util, 0.0, Some(4.0)).unwrap(), 100.0 / 4e9);
        assert_eq!(eval_with(cpu_util, 0.0, None).unwrap(), 100.0 / 1e9, "missing metadata falls back to 1");
        assert_eq!(eval_with(cpu_util, 0.0, Some(0.0)).unwrap(), 100.0 / 1e9, "0 is falsy, as in Python");
        assert_eq!(eval_with("volume * 1.0 / 1024.0", 2048.0, None).unwrap(), 2.0);
        assert_eq!(eval_with("volume / 10**6", 3e6, None).unwrap(), 3.0);
    }

    #[test]
    fn precedence_follows_python() {
        assert_eq!(eval_with("2 + 3 * 4", 0.0, None).unwrap(), 14.0);
        assert_eq!(eval_with("(2 + 3) * 4", 0.0, None).unwrap(), 20.0);
        assert_eq!(eval_with("2 ** 3 ** 2", 0.0, None).unwrap(), 512.0);
        assert_eq!(eval_with("-2 ** 2", 0.0, None).unwrap(), -4.0);
        assert_eq!(eval_with("2 ** -1", 0.0, None).unwrap(), 0.5);
        assert_eq!(eval_with("10 - 4 - 3", 0.0, None).unwrap(), 3.0);
        assert_eq!(eval_with("-7 % 3", 0.0, None).unwrap(), 2.0);
        assert_eq!(eval_with("1.5e3 + .5", 0.0, None).unwrap(), 1500.5);
        assert_eq!(eval_with("0 or 0 or 7", 0.0, None).unwrap(), 7.0);
        assert_eq!(eval_with("3 and 5", 0.0, None).unwrap(), 5.0);
    }

    #[test]
    fn meters_and_their_fields() {
        let expr = Expr::parse("$(memory.usage) / $(memory) * 100 + $(memory).resource_metadata.x * 0").unwrap();
        assert_eq!(expr.meters(), vec!["memory.usage", "memory"]);
        let value = expr
            .eval(&|operand: &Operand| match operand {
                Operand::Volume { meter: Some(m) } if m == "memory.usage" => Some(512.0),
                Operand::Volume { meter: Some(m) } if m == "memory" => Some(2048.0),
                Operand::Metadata { meter: Some(m), key } if m == "memory" && key == "x" => Some(9.0),
                _ => None,
            })
            .unwrap();
        assert_eq!(value, 25.0);
        assert_eq!(
            Expr::parse("$(cpu).volume").unwrap().operands(),
            vec![&Operand::Volume { meter: Some("cpu".into()) }]
        );
    }

    #[test]
    fn failures_are_errors_not_panics() {
        assert_eq!(eval_with("volume / 0", 1.0, None).unwrap_err().0, "division by zero");
        assert_eq!(
            eval_with("resource_metadata.cpu_number * 2", 1.0, None).unwrap_err().0,
            "resource_metadata.cpu_number is missing"
        );
        assert!(eval_with("10 ** 400", 1.0, None).is_err(), "infinite");
        for (text, wanted) in [
            ("__import__('os')", "unexpected character `'`"),
            ("os.system", "unknown name `os`"),
            ("1 +", "expected a number, a name or `(`, found the end"),
            ("(1 + 2", "expected `)`"),
            ("1 2", "unexpected number 2"),
            ("$(cpu", "not closed"),
            ("resource_metadata.flavor.vcpus", "nested metadata"),
            ("$(a b)", "not a meter name"),
        ] {
            let error = Expr::parse(text).expect_err(text);
            assert!(error.message.contains(wanted), "{text}: {error}");
        }
    }
}
