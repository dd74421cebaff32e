//! Ceilometer's `message_signature`: an HMAC-SHA256, keyed by the telemetry secret,
//! over the message's key/value pairs sorted by key, nested mappings flattened into
//! `outer:inner` keys, each key and value fed as the text Python's `str()` gives it
//! (`None`, `True`, `0.1`, `1e+16`), lists after Ceilometer's `decode_unicode` (their
//! text as UTF-8 bytes: `[b'a', b'b']`), so that Ceilometer, which computes it the
//! same way from the JSON it decoded (`ceilometer/publisher/utils.py`), agrees.
//!
//! Producers on Python 2 (Ceilometer 9 and before) printed two things otherwise:
//! floats with 12 significant digits and byte strings without the `b`; a verifier
//! accepts either ([`verify_any`]).

use hmac::{Hmac, Mac};
use pollen_pytext::{decoded_repr, python2_float_str, python_repr, Python};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::borrow::Cow;

/// The key that carries the signature, left out of its own computation.
pub const SIGNATURE_KEY: &str = "message_signature";

/// The signature of a decoded `message` with `secret`, as Ceilometer on Python 3
/// computes it; empty when the secret is empty (signing disabled, as in Ceilometer).
/// The metering encoder signs the same pairs without building the map, and is tested
/// against this.
pub fn compute(message: &Map<String, Value>, secret: &str) -> String {
    compute_as(message, secret, Python::Three)
}

/// The signature as a producer on `python` computed it.
pub fn compute_as(message: &Map<String, Value>, secret: &str, python: Python) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    for (name, value) in message {
        match value {
            Value::Object(inner) => flattened_pairs(name, inner, python, &mut |key, text| {
                mac.update(key.as_bytes());
                mac.update(text.as_bytes());
            }),
            _ if name == SIGNATURE_KEY => {}
            other => {
                mac.update(name.as_bytes());
                mac.update(signed_text(other, python).as_bytes());
            }
        }
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of `message` with `secret` as a producer on
/// Python 3 or, where the text differs (a float or a list in it), on Python 2 made it.
/// Compared in constant time.
pub fn verify_any(message: &Map<String, Value>, secret: &str, given: &str) -> bool {
    same(&compute_as(message, secret, Python::Three), given)
        || (python2_differs(message) && same(&compute_as(message, secret, Python::Two), given))
}

/// Whether two signatures are equal, compared in constant time (every byte, whatever
/// the first difference).
pub fn same(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Whether a Python 2 producer would have printed some value of `message` otherwise.
fn python2_differs(message: &Map<String, Value>) -> bool {
    message.values().any(|value| match value {
        Value::Object(inner) => python2_differs(inner),
        Value::Array(_) => true,
        Value::Number(number) => number.is_f64(),
        _ => false,
    })
}

/// A value's text in the signature: `str()` of it, lists after `decode_unicode`.
pub fn signed_text(value: &Value, python: Python) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Array(_) => Cow::Owned(decoded_repr(value, python)),
        Value::Number(number) if python == Python::Two && number.is_f64() => {
            Cow::Owned(python2_float_str(number.as_f64().unwrap_or(f64::NAN)))
        }
        other => Cow::Owned(python_repr(other)),
    }
}

/// Calls `f` with each key/value pair of `object` below `prefix`, nested objects
/// flattened (`resource_metadata:flavor:name`), in Ceilometer's order: each level
/// sorted by key (a `Map` iterates sorted), a nested object's pairs in the place of
/// its key; values as `python`'s `str()` prints them (lists after `decode_unicode`).
pub fn flattened_pairs(prefix: &str, object: &Map<String, Value>, python: Python, f: &mut impl FnMut(&str, &str)) {
    for (name, value) in object {
        let key = format!("{prefix}:{name}");
        match value {
            Value::Object(inner) => flattened_pairs(&key, inner, python, f),
            other => f(&key, &signed_text(other, python)),
        }
    }
}

/// [`flattened_pairs`] over an object's entries kept as JSON text (sorted by key): only
/// the values are decoded, one at a time, and the keys' text is made in one buffer.
pub fn flattened_raw_pairs<'t>(
    prefix: &str,
    entries: impl IntoIterator<Item = (impl AsRef<str>, &'t RawValue)>,
    f: &mut impl FnMut(&str, &str),
) {
    let mut key = String::from(prefix);
    for (name, raw) in entries {
        key.truncate(prefix.len());
        key.push(':');
        key.push_str(name.as_ref());
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'{') => match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(inner) => flattened_pairs(&key, &inner, Python::Three, f),
                Err(_) => f(&key, text),
            },
            Some(b'"') => match serde_json::from_str::<&str>(text) {
                Ok(plain) => f(&key, plain),
                Err(_) => f(&key, &serde_json::from_str::<String>(text).unwrap_or_default()),
            },
            _ => f(
                &key,
                &serde_json::from_str::<Value>(text)
                    .map(|value| signed_text(&value, Python::Three).into_owned())
                    .unwrap_or_default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secret_disables_signing() {
        assert_eq!(compute(&Map::new(), ""), "");
    }

    /// A Python 2 producer's signature differs where a float or a list is, and is
    /// accepted; a wrong one is not.
    #[test]
    fn python_2_signatures_are_accepted_where_they_differ() {
        let message = serde_json::json!({"counter_volume": 0.333333333333333, "resource_metadata": {"tags": ["a"]}});
        let message = message.as_object().unwrap();
        let two = compute_as(message, "s", Python::Two);
        assert_ne!(two, compute(message, "s"));
        assert!(verify_any(message, "s", &two));
        assert!(verify_any(message, "s", &compute(message, "s")));
        assert!(!verify_any(message, "other", &two));
    }
}
