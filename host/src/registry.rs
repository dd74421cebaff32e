//! Interned meters and resources: what lets samples travel as plain numbers.
//!
//! A sample on the host and across the transformer boundary is a
//! [`Sample`](crate::sample::Sample): a meter handle, a resource handle, a volume and a
//! timestamp. The strings and metadata behind the handles live here, once, and are
//! read only by whoever needs them (a publisher writing JSON, a transformer asking
//! for `cpu_number`). A resource whose owner or metadata changes keeps its handle and
//! gets the new values. Meters live as long as the agent; resources that were not
//! interned again for a while (an instance deleted, a disk detached) are evicted, so
//! churn does not grow the agent: their handles then resolve to nothing and are never
//! given out again.

use crate::sample::{Metadata, Meter, Owner, Resource};
use hashbrown::HashTable;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Handle of an interned meter.
pub type MeterHandle = u32;
/// Handle of an interned resource.
pub type ResourceHandle = u32;

/// The agent's table of meters and resources.
pub struct Registry {
    meters: RwLock<Table<Meter>>,
    resources: RwLock<Table<Resource>>,
    /// What many resources hold alike, one copy each.
    shared: Mutex<Shared>,
    started: Instant,
    /// Keys of the two halves of an entry's [`Key`], random per agent.
    key_halves: (RandomState, RandomState),
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            meters: RwLock::default(),
            resources: RwLock::default(),
            shared: Mutex::default(),
            started: Instant::now(),
            key_halves: (RandomState::new(), RandomState::new()),
        }
    }
}

/// One copy of each value that many resources hold, dropped once none holds it.
struct Pool<T: ?Sized>(HashSet<Arc<T>>);

impl<T: ?Sized> Default for Pool<T> {
    fn default() -> Self {
        Self(HashSet::new())
    }
}

impl<T: ?Sized + Hash + Eq> Pool<T> {
    /// The pool's copy of `value`, which becomes it if it is the first.
    fn share(&mut self, value: Arc<T>) -> Arc<T> {
        if let Some(shared) = self.0.get(&*value) {
            return shared.clone();
        }
        self.0.insert(value.clone());
        value
    }

    /// Drops the values no resource holds any more.
    fn prune(&mut self) {
        self.0.retain(|value| Arc::strong_count(value) > 1);
    }
}

/// The pools of the resource table: owners (a host's instances have a handful) and
/// device keys (`{"disk_name":"vda"}` on thousands of disks).
#[derive(Default)]
struct Shared {
    owners: Pool<Owner>,
    device_keys: Pool<str>,
}

/// What identifies an entry: a 128-bit hash of what names it (a resource's id and
/// device keys, a meter's name, type and unit), kept instead of that text (a large
/// host has tens of thousands of resources). The hash is keyed at random per agent,
/// so no plugin can make two keys meet; by chance, two of a billion keys meet with a
/// probability below 10^-20.
type Key = (u64, u64);

/// Entries, their keys, their namespaces and when each was last interned (seconds
/// since the registry started), all by handle; the entry is `None` once evicted.
/// `by_key` finds the handle of a live key: it holds only handles (4 bytes a slot),
/// hashed by the first half of their key.
struct Table<T> {
    entries: Vec<Option<Arc<T>>>,
    keys: Vec<Key>,
    namespaces: Vec<Namespace>,
    used: Vec<AtomicU32>,
    by_key: HashTable<u32>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            keys: Vec::new(),
            namespaces: Vec::new(),
            used: Vec::new(),
            by_key: HashTable::new(),
        }
    }
}

/// Whose resources an entry is among: the plugin that discovered it (a device view
/// or a derived resource: its base's), or [`Namespace::STATIC`] for a source's static
/// resources. Each plugin's resources are its own: another plugin's resource of the
/// same id is another resource, and neither can change the other's owner or metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Namespace(u64);

impl Namespace {
    /// The namespace of the sources' static resources (and of meters).
    pub const STATIC: Namespace = Namespace(0);
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: PartialEq> Table<T> {
    fn get(&self, handle: u32) -> Option<Arc<T>> {
        self.entries.get(handle as usize).cloned().flatten()
    }

    fn contains(&self, handle: u32) -> bool {
        self.entries.get(handle as usize).is_some_and(Option::is_some)
    }

    /// The handle of a live entry.
    fn find(&self, key: Key) -> Option<u32> {
        self.by_key.find(key.0, |&handle| self.keys[handle as usize] == key).copied()
    }

    /// The handle for `key`, storing `value` under it (in `namespace`) if new or
    /// changed, used at `now`.
    fn upsert(&mut self, key: Key, namespace: Namespace, value: T, now: u32) -> u32 {
        if let Some(handle) = self.find(key) {
            let slot = &mut self.entries[handle as usize];
            if slot.as_deref() != Some(&value) {
                *slot = Some(Arc::new(value));
            }
            self.used[handle as usize].store(now, Ordering::Relaxed);
            return handle;
        }
        let handle = u32::try_from(self.entries.len()).expect("fewer than 2^32 interned entries");
        self.entries.push(Some(Arc::new(value)));
        self.keys.push(key);
        self.namespaces.push(namespace);
        self.used.push(AtomicU32::new(now));
        let keys = &self.keys;
        self.by_key.insert_unique(key.0, handle, |&other| keys[other as usize].0);
        handle
    }

    fn live(&self) -> usize {
        self.by_key.len()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle of a meter (name, type and unit), interning it if new.
    pub fn intern_meter(&self, meter: Meter) -> MeterHandle {
        let key = self.key(&(&meter.name, meter.kind.as_str(), &meter.unit));
        if let Some(handle) = read(&self.meters).find(key) {
            return handle;
        }
        write(&self.meters).upsert(key, Namespace::STATIC, meter, 0)
    }

    /// The handle of a meter already interned, if it is.
    pub fn meter_handle(&self, meter: &Meter) -> Option<MeterHandle> {
        read(&self.meters).find(self.key(&(&meter.name, meter.kind.as_str(), &meter.unit)))
    }

    /// The meter behind a handle.
    pub fn meter(&self, handle: MeterHandle) -> Option<Arc<Meter>> {
        read(&self.meters).get(handle)
    }

    /// The handle of a static resource of a source (see [`Registry::intern_in`]).
    pub fn intern_resource(&self, resource: Resource) -> ResourceHandle {
        self.intern_in(Namespace::STATIC, resource)
    }

    /// The handle of a resource in `namespace`, by its id (and, for a device view with
    /// metadata of its own, those keys too); a changed owner or metadata replaces the
    /// stored one.
    pub fn intern_in(&self, namespace: Namespace, resource: Resource) -> ResourceHandle {
        let key = self.key(&(namespace, &resource.id, resource.extra.as_json()));
        self.intern_keyed(key, namespace, resource)
    }

    /// The handle of a device view of the resource `base` (a disk, a vNIC: its own id
    /// or metadata keys, the base's owner and metadata), in the base's namespace. Each
    /// base's devices are its own: a pollster naming the same device id on another
    /// resource makes another entry, and cannot change this one.
    /// `namespace` is the base's ([`Registry::namespace`]).
    pub fn intern_device(&self, base: ResourceHandle, namespace: Namespace, resource: Resource) -> ResourceHandle {
        let key = self.key(&(namespace, "device", base, &resource.id, resource.extra.as_json()));
        self.intern_keyed(key, namespace, resource)
    }

    /// The handle of a resource made by a transformer from parts of others (another
    /// owner or no metadata), kept apart from the resource of the same id: `variant`
    /// says how it was made.
    pub fn intern_derived(&self, namespace: Namespace, resource: Resource, variant: &str) -> ResourceHandle {
        let key = self.key(&(namespace, &resource.id, resource.extra.as_json(), "derived", variant));
        self.intern_keyed(key, namespace, resource)
    }

    /// The handle of the resource of `namespace` with this id and no device keys, if
    /// interned.
    pub fn resource_handle(&self, namespace: Namespace, id: &str) -> Option<ResourceHandle> {
        read(&self.resources).find(self.key(&(namespace, id, Metadata::default().as_json())))
    }

    /// The namespace of the resources `plugin` discovers.
    pub fn namespace_of_plugin(&self, plugin: &str) -> Namespace {
        Namespace(self.key(&("plugin", plugin)).0 | 1)
    }

    /// The namespace of the resource behind a handle.
    pub fn namespace(&self, handle: ResourceHandle) -> Option<Namespace> {
        read(&self.resources).namespaces.get(handle as usize).copied()
    }

    /// The key of what names an entry.
    fn key(&self, parts: &impl Hash) -> Key {
        let (high, low) = &self.key_halves;
        (high.hash_one(parts), low.hash_one(parts))
    }

    fn intern_keyed(&self, key: Key, namespace: Namespace, resource: Resource) -> ResourceHandle {
        let now = self.now();
        {
            let table = read(&self.resources);
            if let Some(handle) = table.find(key) {
                if let Some(stored) = &table.entries[handle as usize] {
                    if stored.metadata == resource.metadata
                        && stored.owner == resource.owner
                        && stored.handed == resource.handed
                    {
                        table.used[handle as usize].store(now, Ordering::Relaxed);
                        return handle;
                    }
                }
            }
        }
        let resource = {
            let shared = &mut *lock(&self.shared);
            Resource {
                owner: resource.owner.map(|owner| shared.owners.share(owner)),
                extra: resource.extra.shared_by(|keys| shared.device_keys.share(keys)),
                ..resource
            }
        };
        write(&self.resources).upsert(key, namespace, resource, now)
    }

    /// Evicts the resources not interned for `age` or longer; returns how many. Their
    /// handles resolve to nothing from now on and are never reused.
    pub fn evict_resources_unused_for(&self, age: Duration) -> usize {
        let now = self.now();
        let cutoff = now.saturating_sub(u32::try_from(age.as_secs()).unwrap_or(u32::MAX));
        if cutoff == 0 {
            return 0;
        }
        let mut evicted = 0;
        {
            let table = &mut *write(&self.resources);
            let (entries, used) = (&mut table.entries, &table.used);
            table.by_key.retain(|&mut handle| {
                let stale = used[handle as usize].load(Ordering::Relaxed) < cutoff;
                if stale {
                    entries[handle as usize] = None;
                    evicted += 1;
                }
                !stale
            });
        }
        let shared = &mut *lock(&self.shared);
        shared.owners.prune();
        shared.device_keys.prune();
        evicted
    }

    /// Seconds since the registry started.
    fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// The resource behind a handle, marked as seen now (a discoverer reported it
    /// unchanged); none if it was evicted.
    pub fn touch(&self, handle: ResourceHandle) -> Option<Arc<Resource>> {
        let table = read(&self.resources);
        let resource = table.get(handle)?;
        table.used[handle as usize].store(self.now(), Ordering::Relaxed);
        Some(resource)
    }

    /// The resource behind a handle.
    pub fn resource(&self, handle: ResourceHandle) -> Option<Arc<Resource>> {
        read(&self.resources).get(handle)
    }

    /// Keeps the samples whose meter and resource handles resolve (what a transformer
    /// returns is checked so); one lock per table for the whole batch.
    pub fn retain_known(&self, samples: &mut Vec<crate::sample::Sample>) {
        let meters = read(&self.meters);
        let resources = read(&self.resources);
        samples.retain(|s| meters.contains(s.meter) && resources.contains(s.resource));
    }

    /// Number of interned meters and (not evicted) resources.
    pub fn len(&self) -> (usize, usize) {
        (read(&self.meters).live(), read(&self.resources).live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::MeterType;

    #[test]
    fn handles_are_stable_and_values_follow_changes() {
        let registry = Registry::new();
        let cpu = Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() };
        let a = registry.intern_meter(cpu.clone());
        assert_eq!(registry.intern_meter(cpu.clone()), a);
        let other = registry.intern_meter(Meter { unit: "s".into(), ..cpu });
        assert_ne!(a, other);

        let mut vm = Resource::bare("uuid-1");
        let r = registry.intern_resource(vm.clone());
        vm.owner = Owner::of(Some("alice"), None);
        assert_eq!(registry.intern_resource(vm), r);
        assert_eq!(registry.resource(r).unwrap().user_id(), Some("alice"));

        let mut with_cpu_number = Resource::bare("uuid-1");
        with_cpu_number.extra =
            serde_json::Map::from_iter([("cpu_number".to_string(), serde_json::Value::from(2))]).into();
        let derived = registry.intern_resource(with_cpu_number);
        assert_ne!(derived, r, "a device view does not replace its base resource");
        assert!(registry.resource(r).unwrap().extra.is_empty());
        assert_eq!(registry.len(), (2, 2));
    }

    #[test]
    fn each_discoverer_s_resources_are_its_own() {
        let registry = Registry::new();
        let owned = |user: &str| Resource { owner: Owner::of(Some(user), None), ..Resource::bare("uuid-1") };
        let (local, impostor) =
            (registry.namespace_of_plugin("local_instances"), registry.namespace_of_plugin("impostor"));
        assert_ne!(local, impostor);
        let real = registry.intern_in(local, owned("alice"));
        let stolen = registry.intern_in(impostor, owned("thief"));
        assert_ne!(real, stolen, "one id, two discoverers: two resources");
        assert_eq!(registry.resource(real).unwrap().user_id(), Some("alice"), "the impostor changed nothing");
        assert_eq!(registry.resource_handle(local, "uuid-1"), Some(real));
        assert_eq!(registry.resource_handle(impostor, "uuid-1"), Some(stolen));
        assert_eq!(registry.resource_handle(Namespace::STATIC, "uuid-1"), None);
        assert_eq!((registry.namespace(real), registry.namespace(stolen)), (Some(local), Some(impostor)));
    }

    #[test]
    fn resources_not_seen_for_a_while_are_evicted_and_their_handles_never_reused() {
        let registry = Registry { started: Instant::now() - Duration::from_secs(100), ..Registry::default() };
        let gone = registry.intern_resource(Resource::bare("deleted-vm"));
        // Pretend it was last seen at the start, 100 s ago.
        read(&registry.resources).used[gone as usize].store(0, Ordering::Relaxed);
        let kept = registry.intern_resource(Resource::bare("running-vm"));
        assert_eq!(registry.evict_resources_unused_for(Duration::from_secs(50)), 1);
        assert!(registry.resource(gone).is_none(), "an evicted handle resolves to nothing");
        assert!(registry.resource(kept).is_some());
        let back = registry.intern_resource(Resource::bare("deleted-vm"));
        assert_ne!(back, gone, "a resource that comes back gets a new handle");
        assert_eq!(registry.len().1, 2);
    }

    #[test]
    fn disks_of_one_name_share_their_keys_until_none_is_left() {
        let registry = Registry { started: Instant::now() - Duration::from_secs(100), ..Registry::default() };
        let disk = |instance: &str, name: &str| Resource {
            extra: Metadata::from_map(serde_json::json!({ "disk_name": name }).as_object().unwrap()),
            ..Resource::bare(&format!("{instance}-{name}"))
        };
        let (a, b) = (registry.intern_resource(disk("vm-a", "vda")), registry.intern_resource(disk("vm-b", "vda")));
        let other = registry.intern_resource(disk("vm-a", "vdb"));
        let keys = |handle| registry.resource(handle).unwrap().extra.clone();
        assert_eq!((keys(a).as_json(), keys(other).as_json()), (r#"{"disk_name":"vda"}"#, r#"{"disk_name":"vdb"}"#));
        assert!(std::ptr::eq(keys(a).as_json(), keys(b).as_json()), "one copy of the keys of two vda");
        assert_eq!(lock(&registry.shared).device_keys.0.len(), 2);

        for handle in [a, b] {
            read(&registry.resources).used[handle as usize].store(0, Ordering::Relaxed);
        }
        assert_eq!(registry.evict_resources_unused_for(Duration::from_secs(50)), 2);
        assert_eq!(lock(&registry.shared).device_keys.0.len(), 1, "vda's keys are gone with its disks");
    }

    #[test]
    fn resources_of_one_owner_share_it_until_none_is_left() {
        let registry = Registry { started: Instant::now() - Duration::from_secs(100), ..Registry::default() };
        let owned = |id: &str| Resource { owner: Owner::of(Some("alice"), Some("p1")), ..Resource::bare(id) };
        let (a, b) = (registry.intern_resource(owned("vm-a")), registry.intern_resource(owned("vm-b")));
        let other =
            registry.intern_resource(Resource { owner: Owner::of(Some("bob"), None), ..Resource::bare("vm-c") });
        let owner = |handle| registry.resource(handle).unwrap().owner.clone().unwrap();
        assert!(Arc::ptr_eq(&owner(a), &owner(b)), "one copy of alice/p1");
        assert_eq!(owner(other).user_id.as_deref(), Some("bob"));
        assert_eq!(lock(&registry.shared).owners.0.len(), 2);

        for handle in [a, b] {
            read(&registry.resources).used[handle as usize].store(0, Ordering::Relaxed);
        }
        assert_eq!(registry.evict_resources_unused_for(Duration::from_secs(50)), 2);
        let owners = &lock(&registry.shared).owners.0;
        assert_eq!(owners.len(), 1, "alice/p1 is gone with her resources");
        assert!(owners.iter().all(|o| o.user_id.as_deref() == Some("bob")));
    }
}
