//! Received samples into the registry. The same id with other metadata or another
//! owner (a sample's own metadata, a resource whose metadata changed) is a resource
//! entry of its own, so that no message's metadata is replaced by another's. Each
//! resource version is interned once and then found by what the message carried (its
//! id, owner and metadata text), so a resource's thirty samples a cycle cost one
//! interning, not thirty.

use crate::publish::metering::decode::{ReceivedMetadata, ReceivedSample};
use crate::registry::{Registry, ResourceHandle};
use crate::sample::{Metadata, Meter, Owner, Resource, Sample};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Resource versions remembered at most, before the memory starts again.
const REMEMBERED: usize = 100_000;

/// A resource version interned before, and what named it.
struct Known {
    handle: ResourceHandle,
    resource_id: String,
    user_id: Option<String>,
    project_id: Option<String>,
    metadata: Arc<ReceivedMetadata>,
}

/// Interns received samples, remembering each resource version and source.
pub(super) struct Interner {
    /// Where the handles resolve.
    pub registry: Arc<Registry>,
    sources: HashMap<String, Arc<str>>,
    resources: HashMap<u64, Vec<Known>>,
}

impl Interner {
    pub(super) fn new(registry: Arc<Registry>) -> Self {
        Self { registry, sources: HashMap::new(), resources: HashMap::new() }
    }

    /// A received sample in the registry: its source, and the sample on its meter and
    /// resource (the resource's owner and metadata as the message carried them).
    pub(super) fn intern(&mut self, received: ReceivedSample) -> (Arc<str>, Sample) {
        let ReceivedSample {
            source,
            name,
            kind,
            unit,
            volume,
            user_id,
            project_id,
            resource_id,
            timestamp,
            metadata,
            ..
        } = received;
        let meter = self.registry.intern_meter(Meter { name, kind, unit });
        let source = match self.sources.get(&source) {
            Some(known) => known.clone(),
            None => {
                let shared: Arc<str> = Arc::from(source.as_str());
                if self.sources.len() < 1000 {
                    self.sources.insert(source, shared.clone());
                }
                shared
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&resource_id, &user_id, &project_id, metadata.text_hash).hash(&mut hasher);
        let key = hasher.finish();
        let known = self.resources.get(&key).and_then(|versions| {
            versions.iter().find(|k| {
                k.resource_id == resource_id
                    && k.user_id == user_id
                    && k.project_id == project_id
                    && (Arc::ptr_eq(&k.metadata, &metadata) || k.metadata.map == metadata.map)
            })
        });
        // A handle the registry forgot (unused for an hour) is interned again.
        let resource = match known.map(|k| k.handle).filter(|handle| self.registry.touch(*handle).is_some()) {
            Some(handle) => handle,
            None => {
                let handle = self.intern_resource(&resource_id, &user_id, &project_id, &metadata);
                if self.resources.len() >= REMEMBERED {
                    self.resources.clear();
                }
                let versions = self.resources.entry(key).or_default();
                versions.retain(|k| {
                    k.resource_id != resource_id
                        || k.user_id != user_id
                        || k.project_id != project_id
                        || k.metadata.map != metadata.map
                });
                versions.push(Known { handle, resource_id, user_id, project_id, metadata });
                handle
            }
        };
        (source, Sample { meter, resource, volume, timestamp })
    }

    fn intern_resource(
        &self,
        resource_id: &str,
        user_id: &Option<String>,
        project_id: &Option<String>,
        metadata: &ReceivedMetadata,
    ) -> ResourceHandle {
        let mut version = std::collections::hash_map::DefaultHasher::new();
        (metadata.text_hash, user_id, project_id).hash(&mut version);
        let namespace = self.registry.namespace_of_plugin(&format!("collected-{:016x}", version.finish()));
        let owner = Owner::of(user_id.as_deref(), project_id.as_deref());
        self.registry.intern_in(
            namespace,
            Resource { metadata: Metadata::from_map(&metadata.map), owner, ..Resource::bare(resource_id) },
        )
    }
}
