//! State a plugin keeps between calls, for values that are costly to make again or that
//! the next reading is compared with (previous counters for deltas).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A compact key for a [`Recent`] of a large host (a domain's UUID, a vNIC's id): a
/// 64-bit hash, kept instead of the text. Two of 100,000 keys meet with a probability
/// near 10^-10; use it where a meeting costs at most one wrong reading.
pub fn key_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A map kept between calls that forgets what was not used for a while: entries of
/// domains and devices that vanished do not pile up. Call [`Recent::next_call`] at the
/// start of each `poll` or `discover`; an entry not read or written in the last
/// `forget_after` calls is dropped then.
///
/// The agent polls a large host in several calls per cycle (100 instances each), so
/// `forget_after` counts calls, not cycles: choose it with room (1000 is a few cycles of
/// even a very large host). Keys are strings unless said otherwise (a transformer keys
/// by meter and resource handles: `Recent<V, (u32, u32)>`; a map over a large host's
/// domains or devices, by [`key_of`] their id: `Recent<V, u64>`).
#[derive(Debug)]
pub struct Recent<V, K = String> {
    calls: u64,
    forget_after: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<V, K: Hash + Eq> Recent<V, K> {
    /// An empty map that forgets entries unused for `forget_after` calls.
    pub fn new(forget_after: u64) -> Self {
        Self { calls: 0, forget_after, entries: HashMap::new() }
    }

    /// Starts a call: counts it and forgets the stale entries.
    pub fn next_call(&mut self) {
        self.calls += 1;
        let (now, keep) = (self.calls, self.forget_after);
        self.entries.retain(|_, (_, used)| now - *used <= keep);
    }

    /// The value under `key`, marked as used.
    pub fn get<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let now = self.calls;
        self.entries.get_mut(key).map(|(value, used)| {
            *used = now;
            &*value
        })
    }

    /// Puts `value` under `key`; returns the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.entries.insert(key, (value, self.calls)).map(|(old, _)| old)
    }

    /// Takes the value under `key` out.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.entries.remove(key).map(|(value, _)| value)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_entries_are_forgotten_used_ones_kept() {
        let mut recent: Recent<i32> = Recent::new(2);
        recent.next_call();
        recent.insert("a".into(), 1);
        recent.insert("b".into(), 2);
        recent.next_call();
        assert_eq!(recent.get("a"), Some(&1));
        recent.next_call();
        recent.next_call();
        assert_eq!(recent.get("a"), Some(&1), "used two calls ago");
        assert_eq!(recent.get("b"), None, "unused for three calls");
        assert_eq!(recent.insert("a".into(), 3), Some(1));
        assert_eq!(recent.len(), 1);
    }
}
