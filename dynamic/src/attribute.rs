//! Ceilometer's attribute references: `key.nested.key`, or `.` (the entry itself),
//! followed by `|`-separated operations on `value` (`user | value.split('$')[0]`),
//! as `value_attribute`, `metadata_fields`, the `*_id_attribute` keys,
//! `response_entries_key` and `next_sample_url_attribute` write them
//! (`PollsterSampleExtractor.retrieve_attribute_nested_value` in Ceilometer's
//! `ceilometer/polling/dynamic_pollster.py`).

use crate::expr::{EvalError, Expr, ParseError};
use serde_json::Value as Json;

/// A parsed attribute reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    text: String,
    /// The keys walked from the entry; empty for `.`.
    keys: Vec<String>,
    /// The operations, each with its offset in `text`.
    operations: Vec<(Expr, usize)>,
}

impl Attribute {
    /// Parses `text`; errors give their offset in `text`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let parts = split_operations(text);
        let (first, first_at) = parts.first().cloned().unwrap_or(("", 0));
        let key = first.trim();
        let key_at = first_at + first.find(key).unwrap_or(0);
        if key.is_empty() {
            return Err(ParseError::new("the attribute is empty: name a key, or `.` for the whole entry", key_at));
        }
        let keys = if key == "." {
            Vec::new()
        } else {
            if let Some(blank) = key.split('.').position(str::is_empty) {
                let offset = key.split('.').take(blank).map(|k| k.len() + 1).sum::<usize>();
                return Err(ParseError::new(format!("`{key}` has an empty key between dots"), key_at + offset));
            }
            key.split('.').map(str::to_string).collect()
        };
        let mut operations = Vec::new();
        for (operation, at) in parts.into_iter().skip(1) {
            let trimmed = operation.trim_start();
            let at = at + (operation.len() - trimmed.len());
            let expr = Expr::parse(trimmed.trim_end(), &["value"])
                .map_err(|error| ParseError::new(error.message, at + error.offset))?;
            if !trimmed.contains("value") {
                // Ceilometer refuses these too (an operation must use `value`).
                return Err(ParseError::new("an operation must use `value`, the value it operates on", at));
            }
            operations.push((expr, at));
        }
        Ok(Self { text: text.to_string(), keys, operations })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its keys (empty for `.`), when it has no operations: a plain reference.
    pub fn plain_keys(&self) -> Option<&[String]> {
        self.operations.is_empty().then_some(&self.keys)
    }

    /// Its value in `object`: the keys walked, then each operation on the result.
    pub fn get(&self, object: &Json) -> Result<Json, EvalError> {
        let mut value = object;
        for key in &self.keys {
            value = step(value, key).ok_or_else(|| EvalError { message: format!("no key '{key}'"), offset: 0 })?;
        }
        let mut value = value.clone();
        for (operation, at) in &self.operations {
            value = operation
                .eval(&[&value])
                .map_err(|error| EvalError { message: error.message, offset: at + error.offset })?;
        }
        Ok(value)
    }
}

/// One key of the walk: a dict's key, or a list's index (`addresses.0`).
fn step<'a>(value: &'a Json, key: &str) -> Option<&'a Json> {
    match value {
        Json::Object(entries) => entries.get(key),
        Json::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Splits at the `|` outside quotes and brackets: each part with its offset.
fn split_operations(text: &str) -> Vec<(&str, usize)> {
    let mut parts = Vec::new();
    let (mut start, mut depth, mut quote) = (0, 0i32, None);
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, '|') if depth <= 0 => {
                parts.push((&text[start..at], start));
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push((&text[start..], start));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(attribute: &str, object: Json) -> Json {
        Attribute::parse(attribute).unwrap().get(&object).unwrap()
    }

    #[test]
    fn keys_walk_and_operations_apply_in_turn() {
        assert_eq!(get("status", json!({"status": "ACTIVE"})), json!("ACTIVE"));
        assert_eq!(get("flavor.vcpus", json!({"flavor": {"vcpus": 2}})), json!(2));
        assert_eq!(get(".", json!({"a": 1})), json!({"a": 1}));
        // Ceilometer's documentation: RadosGW's `<project_id>$<project_id>` user.
        let user = json!({"user": " abc$abc "});
        assert_eq!(get("user | value.split('$')[0].strip()", user.clone()), json!("abc"));
        assert_eq!(get("user | value.split ('$') | value[0] | value.strip()", user), json!("abc"));
        assert_eq!(get("image | value or { 'id': '' } | value['id']", json!({"image": ""})), json!(""));
        assert_eq!(get("image | value or { 'id': '' } | value['id']", json!({"image": {"id": "i1"}})), json!("i1"));
        assert_eq!(get("tags | ','.join(value)", json!({"tags": ["a", "b"]})), json!("a,b"));
        let links = json!({"server_link": [{"href": "http://t/v1?m=c3", "rel": "next"}, {"href": "http://t/p", "rel": "prev"}]});
        assert_eq!(
            get("server_link | filter(lambda v: v.get('rel') == 'next', value) | list(value) | value[0] | value.get('href')", links),
            json!("http://t/v1?m=c3")
        );
        assert_eq!(get(". | value['some_field'] if 'some_field' in value else ''", json!({"other": 1})), json!(""));
        // A `|` inside a string is not a separator.
        assert_eq!(get("name | value.replace('|', '-')", json!({"name": "a|b"})), json!("a-b"));
        assert_eq!(get("addresses.0", json!({"addresses": ["10.0.0.1"]})), json!("10.0.0.1"));
    }

    #[test]
    fn errors_say_where_in_the_whole_text() {
        let error = Attribute::parse("user | __import__('os')").unwrap_err();
        assert_eq!(error.offset, 7);
        assert!(error.message.contains("double underscores"), "{error}");
        assert_eq!(Attribute::parse("user | 1 + 1").unwrap_err().offset, 7);
        assert_eq!(Attribute::parse("a..b").unwrap_err().offset, 2);
        let missing = Attribute::parse("flavor.ram").unwrap().get(&json!({"flavor": {}})).unwrap_err();
        assert_eq!(missing.message, "no key 'ram'");
        let failing = Attribute::parse("name | value[5]").unwrap().get(&json!({"name": "ab"})).unwrap_err();
        assert_eq!(failing.offset, 7);
    }
}
