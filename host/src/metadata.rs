//! Resource metadata as the host keeps it: one compact JSON object text per resource,
//! shared between the resource's views (cheap to clone), read key by key or whole on
//! demand. A large host's instances each carry Ceilometer's twenty-odd keys with a
//! nested flavor: as text they take a fraction of what maps of values would.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
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

    /// Every key with its value's JSON text, borrowed from the text, in the text's
    /// order: sorted, as the text is only ever written from a sorted map. Keys are
    /// borrowed too unless they hold escapes.
    fn raw_entries(&self) -> Vec<(Cow<'_, str>, &RawValue)> {
        let Some(text) = &self.0 else { return Vec::new() };
        let entries: ObjectEntries<'_> =
            serde_json::from_str(text).expect("metadata text is a JSON object: it is made only from one");
        entries.0
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let entries = self.raw_entries();
        let (_, raw) = entries.iter().find(|(name, _)| name == key)?;
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

/// A resource's metadata with a device's keys over it (the device's key wins), written
/// without building the merged object, its keys sorted (as a map of it would write
/// them). JSON serializers only: the values are written as the raw JSON text they are
/// kept as.
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
        self.sorted_entries().serialize(serializer)
    }
}

impl Merged<'_> {
    /// Every key of the merged object with its value's JSON text, sorted by key (as a
    /// `Map` of the same object iterates), borrowed from the two texts.
    pub fn sorted_entries(&self) -> ObjectEntries<'_> {
        let (base, over) = (self.base.raw_entries(), self.over.raw_entries());
        if over.is_empty() {
            return ObjectEntries(base);
        }
        let mut entries = Vec::with_capacity(base.len() + over.len());
        let (mut base, mut over) = (base.into_iter().peekable(), over.into_iter().peekable());
        loop {
            let take_base = match (base.peek(), over.peek()) {
                (Some((b, _)), Some((o, _))) => match b.cmp(o) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => {
                        base.next(); // the device's key wins
                        false
                    }
                    std::cmp::Ordering::Greater => false,
                },
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return ObjectEntries(entries),
            };
            entries.extend(if take_base { base.next() } else { over.next() });
        }
    }
}

/// A JSON object's entries in order, each value as its raw JSON text, each key
/// borrowed from the text where it has no escapes; (de)serialized as the object.
pub struct ObjectEntries<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl Serialize for ObjectEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A key, borrowed from the text where it can be.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(text.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for ObjectEntries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = ObjectEntries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((key, value));
                }
                Ok(ObjectEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
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

    /// The merged entries come sorted, as a map of the merged object iterates, with the
    /// device's keys winning; keys with escapes are read too.
    #[test]
    fn sorted_entries_are_the_merged_map_s() {
        let base = metadata(json!({"b": 1, "name": "instance-1", "quote\"d": "x", "z": {"k": [1, 2]}}));
        let over = metadata(json!({"a": true, "name": "tap1", "zz": null}));
        let merged = Merged { base: &base, over: &over };
        let entries: Vec<(String, Value)> = merged
            .sorted_entries()
            .0
            .into_iter()
            .map(|(key, raw)| (key.into_owned(), serde_json::from_str(raw.get()).unwrap()))
            .collect();
        let mut expected = base.to_map();
        expected.extend(over.to_map());
        assert_eq!(entries, expected.into_iter().collect::<Vec<_>>());
        let alone = Merged { base: &base, over: &Metadata::default() };
        assert_eq!(alone.sorted_entries().0.len(), 4);
        assert_eq!(base.get("quote\"d"), Some(json!("x")));
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
