//! Resource metadata as the host keeps it: one compact JSON object text per resource,
//! shared between the resource's views (cheap to clone), read key by key or whole on
//! demand. A large host's instances each carry Ceilometer's twenty-odd keys with a
//! nested flavor: as text they take a fraction of what maps of values would.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A JSON object, kept as its text.
#[derive(Clone, Default)]
pub struct Metadata(Option<Arc<str>>);

impl Metadata {
    /// The metadata of this map (none: empty).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        if map.is_empty() {
            return Self::default();
        }
        Self(Some(serde_json::to_string(map).expect("JSON values always serialize").into()))
    }

    /// The same metadata, its text exchanged by `share` for an equal one (the
    /// registry's shared copy).
    pub fn shared_by(self, share: impl FnOnce(Arc<str>) -> Arc<str>) -> Self {
        Self(self.0.map(share))
    }

    /// Whether it has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The JSON object text (`{}` when empty).
    pub fn as_json(&self) -> &str {
        self.0.as_deref().unwrap_or("{}")
    }

    /// Every key with its value's JSON text, borrowed from the text.
    fn raw_entries(&self) -> BTreeMap<Cow<'_, str>, &RawValue> {
        let Some(text) = &self.0 else { return BTreeMap::new() };
        serde_json::from_str(text).expect("metadata text is a JSON object: it is made only from one")
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let raw = *self.raw_entries().get(key)?;
        serde_json::from_str(raw.get()).ok()
    }

    /// The whole object.
    pub fn to_map(&self) -> Map<String, Value> {
        match &self.0 {
            Some(text) => serde_json::from_str(text).expect("metadata text is a JSON object: it is made only from one"),
            None => Map::new(),
        }
    }
}

impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Self {
        Self::from_map(&map)
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (None, None) => true,
            _ => false,
        }
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

/// A resource's metadata with a device's keys over it (a later key wins), written
/// without building the merged object. JSON serializers only: the values are written
/// as the raw JSON text they are kept as.
pub struct Merged<'a> {
    /// The resource's metadata.
    pub base: &'a Metadata,
    /// The device's keys.
    pub over: &'a Metadata,
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.over.is_empty() {
            return raw(self.base.as_json()).serialize(serializer);
        }
        let (base, over) = (self.base.raw_entries(), self.over.raw_entries());
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in base.iter().filter(|(key, _)| !over.contains_key(*key)).chain(over.iter()) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Merged<'_> {
    /// Every key of the merged object with its value's JSON text, sorted by key (as a
    /// `Map` of the same object iterates), borrowed from the two texts.
    pub fn sorted_entries(&self) -> BTreeMap<Cow<'_, str>, &RawValue> {
        let mut entries = self.base.raw_entries();
        entries.extend(self.over.raw_entries());
        entries
    }
}

/// Text known to be JSON, as a raw value.
fn raw(text: &str) -> &RawValue {
    serde_json::from_str(text).expect("metadata text is JSON: it is made only from values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(value: Value) -> Metadata {
        Metadata::from_map(value.as_object().unwrap())
    }

    #[test]
    fn keys_are_read_from_the_text() {
        let meta = metadata(json!({"display_name": "web-1", "flavor": {"name": "m1.small", "ram": 2048}, "vcpus": 2}));
        assert_eq!(meta.get("display_name"), Some(json!("web-1")));
        assert_eq!(meta.get("flavor").unwrap()["ram"], 2048);
        assert_eq!(meta.get("missing"), None);
        assert_eq!(meta.to_map().len(), 3);
        assert!(Metadata::from_map(&Map::new()).is_empty());
        assert_eq!(Metadata::default().as_json(), "{}");
        assert_eq!(
            meta,
            metadata(json!({"vcpus": 2, "display_name": "web-1", "flavor": {"ram": 2048, "name": "m1.small"}}))
        );
    }

    #[test]
    fn merged_metadata_lets_the_device_keys_win() {
        let base = metadata(json!({"name": "instance-1", "display_name": "web-1"}));
        let over = metadata(json!({"name": "tap1", "mac": "52:54:00:00:00:01"}));
        let written: Value = serde_json::to_value(Merged { base: &base, over: &over }).unwrap();
        assert_eq!(written, json!({"name": "tap1", "display_name": "web-1", "mac": "52:54:00:00:00:01"}));
        let plain = serde_json::to_string(&Merged { base: &base, over: &Metadata::default() }).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&plain).unwrap(),
            json!({"name": "instance-1", "display_name": "web-1"})
        );
    }
}
