//! Python's view of JSON values: truth, equality and order (their text is
//! `pollen_pytext`'s, which the signatures share).

pub use pollen_pytext::{python_float, python_str};
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
