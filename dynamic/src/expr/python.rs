//! Python's view of JSON values: truth, text (`str`, `repr`), equality and order.

use serde_json::Value as Json;
use std::cmp::Ordering;

/// Python's truth: `None`, `False`, zero, and empty strings, lists and dicts are false.
pub fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(flag) => *flag,
        Json::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Json::String(text) => !text.is_empty(),
        Json::Array(items) => !items.is_empty(),
        Json::Object(entries) => !entries.is_empty(),
    }
}

/// Python's `str(value)`: a string as it is, everything else as `repr` writes it
/// (`None`, `True`, `1.0`, `['a', 1]`, `{'id': ''}`).
pub fn python_str(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => {
            let mut out = String::new();
            repr(other, &mut out);
            out
        }
    }
}

/// Python's `repr`, into `out`.
fn repr(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("None"),
        Json::Bool(true) => out.push_str("True"),
        Json::Bool(false) => out.push_str("False"),
        Json::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => out.push_str(&int.to_string()),
            (None, Some(int)) => out.push_str(&int.to_string()),
            _ => out.push_str(&float_text(number.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(text) => {
            let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
            out.push(quote);
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
        }
        Json::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                repr(item, out);
            }
            out.push(']');
        }
        Json::Object(entries) => {
            out.push('{');
            for (index, (key, item)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                repr(&Json::String(key.clone()), out);
                out.push_str(": ");
                repr(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's text of a float: `1.0`, `0.5`, `1e+20`, `inf`.
pub(super) fn float_text(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value.fract() == 0.0 && value.abs() < 1e16 {
        return format!("{value:.1}");
    }
    let text = format!("{value}");
    if value.abs() >= 1e16 {
        // Rust writes 1e20 as `100000000000000000000`; Python as `1e+20`.
        let exponent = value.abs().log10().floor() as i32;
        let mantissa = value / 10f64.powi(exponent);
        let mantissa = format!("{mantissa}");
        return format!("{}e+{exponent:02}", mantissa.trim_end_matches(".0"));
    }
    text
}

/// A number as f64, if it is one (bools count, as in Python).
pub(super) fn number(value: &Json) -> Option<f64> {
    match value {
        Json::Number(number) => number.as_f64(),
        Json::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Python's `==`: numbers by value (`1 == 1.0`), the rest structurally.
pub(crate) fn equal(left: &Json, right: &Json) -> bool {
    match (left, right) {
        (Json::Number(_) | Json::Bool(_), Json::Number(_) | Json::Bool(_)) => number(left) == number(right),
        (Json::Array(a), Json::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y)),
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, x)| b.get(key).is_some_and(|y| equal(x, y)))
        }
        _ => left == right,
    }
}

/// Python's order: numbers with numbers, strings with strings, lists item by item;
/// `None` for what Python refuses to compare.
pub(super) fn compare(left: &Json, right: &Json) -> Option<Ordering> {
    match (left, right) {
        (Json::String(a), Json::String(b)) => Some(a.cmp(b)),
        (Json::Array(a), Json::Array(b)) => {
            for (x, y) in a.iter().zip(b) {
                match compare(x, y)? {
                    Ordering::Equal => continue,
                    unequal => return Some(unequal),
                }
            }
            Some(a.len().cmp(&b.len()))
        }
        _ => number(left)?.partial_cmp(&number(right)?),
    }
}

/// Python's name of a value's type, for error messages.
pub(super) fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "None",
        Json::Bool(_) => "bool",
        Json::Number(number) if number.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_python_s() {
        assert_eq!(python_str(&json!(null)), "None");
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(python_str(&json!(3)), "3");
        assert_eq!(python_str(&json!(1.0)), "1.0");
        assert_eq!(python_str(&json!(0.25)), "0.25");
        assert_eq!(python_str(&json!(1e20)), "1e+20");
        assert_eq!(python_str(&json!("a'b")), "a'b");
        assert_eq!(python_str(&json!(["a", 1, null])), "['a', 1, None]");
        assert_eq!(python_str(&json!({"id": "", "n": [true]})), "{'id': '', 'n': [True]}");
        assert_eq!(python_str(&json!(["it's"])), "[\"it's\"]");
    }

    #[test]
    fn truth_equality_and_order_are_python_s() {
        assert!(!truthy(&json!(0)) && !truthy(&json!("")) && !truthy(&json!([])) && !truthy(&json!({})));
        assert!(truthy(&json!("0")) && truthy(&json!([0])));
        assert!(equal(&json!(1), &json!(1.0)) && equal(&json!(true), &json!(1)));
        assert!(!equal(&json!("1"), &json!(1)));
        assert_eq!(compare(&json!("a"), &json!("b")), Some(Ordering::Less));
        assert_eq!(compare(&json!(2), &json!(1.5)), Some(Ordering::Greater));
        assert_eq!(compare(&json!("a"), &json!(1)), None);
    }
}
