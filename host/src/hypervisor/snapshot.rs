//! One polling cycle's view of the hypervisor: one domain list per cycle, then the
//! statistics of the domains the cycle asks for, chunk by chunk — one bulk read per
//! chunk, per-domain calls only for what the bulk read lacks — each domain read at most
//! once per cycle and shared by every plugin of that cycle. A chunk's statistics are
//! dropped once its plugins are done with it, so a large host's are never all held at
//! once. Domain XML is read only when the domain is new or changed.

use super::bulk;
use super::stats::{self, Devices, DomainStats, DomainSummary};
use super::{Hypervisor, HypervisorError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use virt::domain::Domain;

type Shared<T> = Result<Arc<T>, HypervisorError>;

/// Domains completed per job on the connection's thread.
const PREFETCH_BATCH: usize = 100;

/// A read-once cache over the hypervisor for one cycle.
pub struct CycleSnapshot {
    hypervisor: Arc<Hypervisor>,
    listing: OnceLock<Result<Listing, HypervisorError>>,
    stats: PerDomain,
    /// Domains whose statistics could not be read, once released.
    unreadable: Mutex<Vec<(String, HypervisorError)>>,
    /// Whether a failed bulk read was logged this cycle.
    bulk_failed: AtomicBool,
}

/// The cycle's domain list, sorted by UUID, with libvirt's handle of each.
struct Listing {
    domains: Arc<Vec<DomainSummary>>,
    handles: Arc<Vec<Domain>>,
}

impl Listing {
    fn index(&self, uuid: &str) -> Option<usize> {
        self.domains.binary_search_by(|d| d.uuid.as_str().cmp(uuid)).ok()
    }

    /// The place of a domain that must be listed.
    fn find(&self, uuid: &str) -> Result<usize, HypervisorError> {
        self.index(uuid).ok_or_else(|| HypervisorError::NoSuchDomain(uuid.to_string()))
    }
}

/// Domain statistics, read once per domain even when several plugins ask at the same
/// time.
struct PerDomain(Mutex<HashMap<String, Arc<OnceLock<Shared<DomainStats>>>>>);

impl PerDomain {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceLock<Shared<DomainStats>>>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, uuid: &str, read: impl FnOnce() -> Shared<DomainStats>) -> Shared<DomainStats> {
        let cell = {
            let mut map = self.map();
            match map.get(uuid) {
                Some(cell) => cell.clone(),
                None => map.entry(uuid.to_string()).or_default().clone(),
            }
        };
        cell.get_or_init(read).clone()
    }

    fn set(&self, uuid: &str, value: Shared<DomainStats>) {
        let _ = self.map().entry(uuid.to_string()).or_default().set(value);
    }

    fn contains(&self, uuid: &str) -> bool {
        self.map().get(uuid).is_some_and(|cell| cell.get().is_some())
    }
}

impl CycleSnapshot {
    pub(super) fn new(hypervisor: Arc<Hypervisor>) -> Self {
        Self {
            hypervisor,
            listing: OnceLock::new(),
            stats: PerDomain::new(),
            unreadable: Mutex::default(),
            bulk_failed: AtomicBool::new(false),
        }
    }

    /// Reads the statistics of these domains now, in as few calls as the driver
    /// allows: the XML of those whose devices are not known, one bulk read, and the
    /// per-domain calls the bulk read leaves (in batches of 100 domains per job). The
    /// cycle runs this on a blocking thread before the plugins that poll these domains,
    /// so their calls are served from memory. Ids that are not domains of this host
    /// and domains already read are skipped; a domain that fails is recorded as
    /// unreadable.
    pub fn prefetch(&self, uuids: &[&str]) -> Result<(), HypervisorError> {
        let listing = self.listing()?;
        let indices: Vec<usize> =
            uuids.iter().filter(|u| !self.stats.contains(u)).filter_map(|u| listing.index(u)).collect();
        for (index, stats) in self.read(listing, indices) {
            self.stats.set(&listing.domains[index].uuid, stats);
        }
        Ok(())
    }

    /// Drops the statistics of these domains: the cycle is done with them. Those that
    /// could not be read are kept for [`CycleSnapshot::unreadable`].
    pub fn release(&self, uuids: &[&str]) {
        let mut failed = Vec::new();
        {
            let mut map = self.stats.map();
            for uuid in uuids {
                if let Some(Some(Err(error))) = map.remove(*uuid).map(|cell| cell.get().cloned()) {
                    failed.push((uuid.to_string(), error));
                }
            }
        }
        self.unreadable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(failed);
    }

    /// Domains whose statistics could not be read this cycle.
    pub fn unreadable(&self) -> Vec<(String, HypervisorError)> {
        let mut unreadable = self.unreadable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let map = self.stats.map();
        unreadable.extend(map.iter().filter_map(|(uuid, cell)| match cell.get() {
            Some(Err(error)) => Some((uuid.clone(), error.clone())),
            _ => None,
        }));
        unreadable
    }

    /// The hypervisor this snapshot reads.
    pub fn hypervisor(&self) -> &Hypervisor {
        &self.hypervisor
    }

    /// Every domain of the host, sorted by UUID.
    pub fn domains(&self) -> Shared<Vec<DomainSummary>> {
        self.listing().map(|listing| listing.domains.clone())
    }

    fn listing(&self) -> Result<&Listing, HypervisorError> {
        self.listing
            .get_or_init(|| {
                let listed = stats::list_domains(&self.hypervisor)?;
                self.hypervisor.forget_xml_except(&listed.domains);
                Ok(Listing { domains: Arc::new(listed.domains), handles: listed.handles })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A domain's XML description and its stamp, unless the stamp is still `known`
    /// (then none: the caller has what it needs). The stamp changes whenever the XML
    /// does; `known` 0 always gets the XML. Read from libvirt only when the domain is
    /// new, was (re)started or stopped, or was last read long ago, or when the caller
    /// does not have the current XML.
    pub fn xml(&self, uuid: &str, known: u64) -> Result<Option<(u64, String)>, HypervisorError> {
        let listing = self.listing()?;
        let index = listing.find(uuid)?;
        let summary = &listing.domains[index];
        if self.hypervisor.known_xml(summary).is_some_and(|(stamp, _)| stamp == known) {
            return Ok(None);
        }
        let xml = stats::domain_xmls(&self.hypervisor, listing.handles.clone(), vec![index])?
            .pop()
            .unwrap_or_else(|| Err(HypervisorError::NoSuchDomain(uuid.to_string())))?;
        let (stamp, _) = self.hypervisor.store_xml(summary, &xml);
        Ok((stamp != known).then_some((stamp, xml)))
    }

    /// A domain's statistics (read on demand if the cycle did not prefetch them). An
    /// id that is not a domain of this host is answered at once and not stored: a
    /// plugin cannot grow the snapshot with ids of its own making.
    pub fn stats(&self, uuid: &str) -> Shared<DomainStats> {
        let listing = self.listing()?;
        let index = listing.find(uuid)?;
        self.stats.get(uuid, || {
            let (_, stats) = self.read(listing, vec![index]).pop().expect("one domain asked, one answered");
            stats
        })
    }

    /// Whether `uuid` is a domain of this host (the listing is read if it was not yet).
    pub fn is_listed(&self, uuid: &str) -> Result<bool, HypervisorError> {
        Ok(self.listing()?.index(uuid).is_some())
    }

    /// The same if the listing was read already (no libvirt call then); `None` if not.
    pub fn is_listed_now(&self, uuid: &str) -> Option<Result<bool, HypervisorError>> {
        let listing = self.listing.get()?;
        Some(listing.as_ref().map(|l| l.index(uuid).is_some()).map_err(Clone::clone))
    }

    /// Reads the statistics of the domains at `indices` of the listing; one result
    /// for each.
    fn read(&self, listing: &Listing, indices: Vec<usize>) -> Vec<(usize, Shared<DomainStats>)> {
        let mut out = Vec::with_capacity(indices.len());
        let (mut known, mut unknown): (Vec<(usize, Arc<Devices>)>, Vec<usize>) = (Vec::new(), Vec::new());
        for index in indices {
            match self.hypervisor.known_xml(&listing.domains[index]) {
                Some((_, devices)) => known.push((index, devices)),
                None => unknown.push(index),
            }
        }
        for batch in unknown.chunks(PREFETCH_BATCH) {
            match stats::domain_xmls(&self.hypervisor, listing.handles.clone(), batch.to_vec()) {
                Ok(read) => {
                    for (index, xml) in batch.iter().zip(read) {
                        match xml {
                            Ok(xml) => {
                                known.push((*index, self.hypervisor.store_xml(&listing.domains[*index], &xml).1))
                            }
                            Err(error) => out.push((*index, Err(error))),
                        }
                    }
                }
                Err(error) => out.extend(batch.iter().map(|index| (*index, Err(error.clone())))),
            }
        }
        let bulk = self.bulk(listing, known.iter().map(|(index, _)| *index).collect());
        let mut incomplete = Vec::new();
        for (index, devices) in known {
            let summary = &listing.domains[index];
            match stats::from_bulk(index, summary, &devices, bulk.get(&summary.uuid)) {
                Ok(stats) => out.push((index, Ok(Arc::new(stats)))),
                Err(rest) => incomplete.push(*rest),
            }
        }
        while !incomplete.is_empty() {
            let batch: Vec<_> = incomplete.drain(..PREFETCH_BATCH.min(incomplete.len())).collect();
            let indices: Vec<usize> = batch.iter().map(|i| i.index).collect();
            match stats::complete(&self.hypervisor, listing.handles.clone(), batch) {
                Ok(read) => out.extend(indices.into_iter().zip(read.into_iter().map(|r| r.map(Arc::new)))),
                Err(error) => out.extend(indices.into_iter().map(|index| (index, Err(error.clone())))),
            }
        }
        out
    }

    /// One bulk read for the domains at `indices`. If it fails the cycle goes on with
    /// per-domain reads (logged once per cycle).
    fn bulk(&self, listing: &Listing, indices: Vec<usize>) -> HashMap<String, bulk::BulkRecord> {
        let handles = listing.handles.clone();
        let read =
            self.hypervisor.with_connection("virDomainListGetStats", move |_| bulk::domain_stats(&handles, &indices));
        read.unwrap_or_else(|error| {
            if !self.bulk_failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, "bulk statistics read failed; reading each domain instead");
            }
            HashMap::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::DomainState;

    /// Real libvirt calls against the built-in test driver (no daemon).
    #[test]
    fn reads_the_test_driver_once_per_cycle() {
        let hypervisor = Arc::new(Hypervisor::new("test:///default"));
        let snapshot = hypervisor.cycle();
        let domains = snapshot.domains().expect("test driver lists its domains");
        assert_eq!(domains.len(), 1);
        let test = &domains[0];
        assert_eq!(test.name, "test");
        assert_eq!(test.state, DomainState::Running);

        let stats = snapshot.stats(&test.uuid).expect("stats of the test domain");
        assert_eq!(stats.vcpus, 2);
        assert_eq!(stats.memory, 2_097_152);
        let memory = stats.memory_stats.expect("balloon stats");
        assert_eq!(memory.available, Some(2_097_152));
        assert_eq!(memory.usable, Some(1_048_576));
        assert!(stats.cpu.expect("cpu").time > 0);
        assert_eq!(stats.blocks.len(), 1);
        assert_eq!(stats.blocks[0].device, "vda");
        assert_eq!(stats.interfaces.len(), 1);
        assert_eq!(stats.interfaces[0].mac, "aa:bb:cc:dd:ee:ff");

        let again = snapshot.stats(&test.uuid).expect("cached");
        assert!(Arc::ptr_eq(&stats, &again), "a second read in one cycle is served from the snapshot");
        assert!(matches!(
            snapshot.stats("00000000-0000-0000-0000-000000000000").map(|_| ()).unwrap_err(),
            HypervisorError::NoSuchDomain(_)
        ));
        let block = &stats.blocks[0];
        assert!(block.capacity.is_some() && block.allocation.is_some(), "sizes from virDomainGetBlockInfo");

        assert_eq!(hypervisor.xml_reads(), 1, "the XML is read once, for the devices");
        let (stamp, xml) = snapshot.xml(&test.uuid, 0).expect("xml").expect("0 always gets the XML");
        assert!(xml.contains("<name>test</name>"));
        assert_eq!(snapshot.xml(&test.uuid, stamp).expect("xml"), None, "the caller has this XML");
        let next = hypervisor.cycle();
        assert_eq!(next.xml(&test.uuid, stamp).expect("xml"), None);
        next.prefetch(&[&test.uuid]).expect("prefetch");
        assert_eq!(hypervisor.xml_reads(), 2, "an unchanged domain's XML is not read again across cycles");
        assert_eq!(next.xml(&test.uuid, stamp ^ 1).expect("xml"), Some((stamp, xml)), "another stamp gets it");
    }

    /// A released domain's statistics are gone from the snapshot. An id that is no
    /// domain of this host is refused and nothing is kept of it (a plugin asking for
    /// made-up ids must not grow the snapshot); it is no unreadable domain either.
    #[test]
    fn released_domains_are_dropped_and_made_up_ids_never_kept() {
        let hypervisor = Arc::new(Hypervisor::new("test:///default"));
        let snapshot = hypervisor.cycle();
        let uuid = snapshot.domains().expect("domains")[0].uuid.clone();
        snapshot.prefetch(&[&uuid, "not-a-domain"]).expect("prefetch");
        assert!(snapshot.stats.contains(&uuid));
        assert!(matches!(snapshot.stats("not-a-domain"), Err(HypervisorError::NoSuchDomain(_))));
        assert_eq!(snapshot.stats.map().len(), 1, "only the real domain is kept");
        snapshot.release(&[&uuid, "not-a-domain"]);
        assert!(!snapshot.stats.contains(&uuid), "released");
        assert!(snapshot.unreadable().is_empty());
    }
}
