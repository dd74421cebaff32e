//! Ceilometer's `message_signature`: an HMAC-SHA256, keyed by the telemetry secret,
//! over the message's key/value pairs sorted by key, nested mappings flattened into
//! `outer:inner` keys, each key and value fed as the text Python's `str()` gives it
//! (`None`, `True`, `0.1`, `1e+16`, `['a', 'b']`), so that Ceilometer's verifier, which
//! recomputes it from the JSON it decoded, accepts it.

use hmac::{Hmac, Mac};
use pollen_pytext::{python_repr, python_str};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;

/// The key that carries the signature, left out of its own computation.
pub const SIGNATURE_KEY: &str = "message_signature";

/// The signature of a decoded `message` with `secret`, as a verifier recomputes it;
/// empty when the secret is empty (signing disabled, as in Ceilometer). The metering
/// encoder signs the same pairs without building the map, and is tested against this.
pub fn compute(message: &Map<String, Value>, secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    for (name, value) in message {
        match value {
            Value::Object(inner) => flattened_pairs(name, inner, &mut |key, text| {
                mac.update(key.as_bytes());
                mac.update(text.as_bytes());
            }),
            _ if name == SIGNATURE_KEY => {}
            other => {
                mac.update(name.as_bytes());
                mac.update(python_str(other).as_bytes());
            }
        }
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Calls `f` with each key/value pair of `object` below `prefix`, nested objects
/// flattened (`resource_metadata:flavor:name`), in Ceilometer's order: each level
/// sorted by key (a `Map` iterates sorted), a nested object's pairs in the place of
/// its key; values as Python's `str()` prints them.
pub fn flattened_pairs(prefix: &str, object: &Map<String, Value>, f: &mut impl FnMut(&str, &str)) {
    for (name, value) in object {
        let key = format!("{prefix}:{name}");
        match value {
            Value::Object(inner) => flattened_pairs(&key, inner, f),
            Value::String(text) => f(&key, text),
            other => f(&key, &python_repr(other)),
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
                Ok(inner) => flattened_pairs(&key, &inner, f),
                Err(_) => f(&key, text),
            },
            Some(b'"') => match serde_json::from_str::<&str>(text) {
                Ok(plain) => f(&key, plain),
                Err(_) => f(&key, &serde_json::from_str::<String>(text).unwrap_or_default()),
            },
            _ => f(&key, &serde_json::from_str::<Value>(text).map(|value| python_repr(&value)).unwrap_or_default()),
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
}
