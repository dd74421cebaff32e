//! One polling cycle's view of the hypervisor: one domain list and one bulk statistics
//! read per cycle, per-domain calls only for what the bulk read lacks, each made at most
//! once per cycle and shared by every plugin of that cycle. Domain XML comes from the
//! hypervisor's cache, re-read only when the domain changed.

use super::bulk::{self, BulkRecord};
use super::stats::{self, DomainStats, DomainSummary};
use super::{Hypervisor, HypervisorError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type Shared<T> = Result<Arc<T>, HypervisorError>;

/// Domains read per job on the connection's thread when prefetching.
const PREFETCH_BATCH: usize = 100;

/// A read-once cache over the hypervisor for one cycle.
pub struct CycleSnapshot {
    hypervisor: Arc<Hypervisor>,
    domains: OnceLock<Shared<Vec<DomainSummary>>>,
    /// Index into `domains` by UUID.
    by_uuid: OnceLock<HashMap<String, usize>>,
    bulk: OnceLock<Arc<HashMap<String, BulkRecord>>>,
    xml: PerDomain<String>,
    stats: PerDomain<DomainStats>,
}

/// Values read once per domain, even when several plugins ask at the same time.
struct PerDomain<T>(Mutex<HashMap<String, Arc<OnceLock<Shared<T>>>>>);

impl<T> PerDomain<T> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, uuid: &str, read: impl FnOnce() -> Shared<T>) -> Shared<T> {
        let cell = {
            let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(uuid) {
                Some(cell) => cell.clone(),
                None => map.entry(uuid.to_string()).or_default().clone(),
            }
        };
        cell.get_or_init(read).clone()
    }

    fn set(&self, uuid: &str, value: Shared<T>) {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = map.entry(uuid.to_string()).or_default().set(value);
    }
}

impl CycleSnapshot {
    pub(super) fn new(hypervisor: Arc<Hypervisor>) -> Self {
        Self {
            hypervisor,
            domains: OnceLock::new(),
            by_uuid: OnceLock::new(),
            bulk: OnceLock::new(),
            xml: PerDomain::new(),
            stats: PerDomain::new(),
        }
    }

    /// Reads everything the cycle's plugins will ask for, now, in as few calls as the
    /// driver allows: the domain list, the bulk statistics, the XML the cache lacks and
    /// the per-domain statistics the bulk read lacks, in batches of 100 domains per
    /// job. The cycle runs this on a blocking thread before any plugin, so plugin calls
    /// are served from memory. A domain that fails is recorded as unreadable.
    pub fn prefetch(&self) -> Result<(), HypervisorError> {
        let domains = self.domains()?;
        let bulk = self.bulk();
        let missing: Vec<&DomainSummary> = domains.iter().filter(|d| self.hypervisor.fresh_xml(d).is_none()).collect();
        for batch in missing.chunks(PREFETCH_BATCH) {
            let uuids = batch.iter().map(|d| d.uuid.clone()).collect();
            let read = stats::domain_xmls(&self.hypervisor, uuids)?;
            for (domain, xml) in batch.iter().zip(read) {
                self.xml.set(&domain.uuid, xml.map(|xml| self.hypervisor.store_xml(domain, xml)));
            }
        }
        let mut incomplete = Vec::new();
        for domain in domains.iter() {
            let xml = match self.xml(&domain.uuid) {
                Ok(xml) => xml,
                Err(error) => {
                    self.stats.set(&domain.uuid, Err(error));
                    continue;
                }
            };
            let devices = self.hypervisor.devices(&domain.uuid, &xml);
            match stats::from_bulk(domain, &devices, bulk.get(&domain.uuid)) {
                Ok(stats) => self.stats.set(&domain.uuid, Ok(Arc::new(stats))),
                Err(rest) => incomplete.push(*rest),
            }
        }
        while !incomplete.is_empty() {
            let batch: Vec<_> = incomplete.drain(..PREFETCH_BATCH.min(incomplete.len())).collect();
            let uuids: Vec<String> = batch.iter().map(|i| i.uuid().to_string()).collect();
            match stats::complete(&self.hypervisor, batch) {
                Ok(read) => {
                    for (uuid, stats) in uuids.iter().zip(read) {
                        self.stats.set(uuid, stats.map(Arc::new));
                    }
                }
                Err(error) => {
                    for uuid in &uuids {
                        self.stats.set(uuid, Err(error.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Domains whose statistics could not be read this cycle.
    pub fn unreadable(&self) -> Vec<(String, HypervisorError)> {
        let map = self.stats.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.iter()
            .filter_map(|(uuid, cell)| match cell.get() {
                Some(Err(error)) => Some((uuid.clone(), error.clone())),
                _ => None,
            })
            .collect()
    }

    /// The hypervisor this snapshot reads.
    pub fn hypervisor(&self) -> &Hypervisor {
        &self.hypervisor
    }

    /// Every domain of the host.
    pub fn domains(&self) -> Shared<Vec<DomainSummary>> {
        self.domains
            .get_or_init(|| {
                let domains = stats::list_domains(&self.hypervisor)?;
                self.hypervisor.forget_xml_except(&domains);
                Ok(Arc::new(domains))
            })
            .clone()
    }

    /// A domain's XML description.
    pub fn xml(&self, uuid: &str) -> Shared<String> {
        self.xml.get(uuid, || {
            let summary = self.summary(uuid)?;
            // Shared with the hypervisor's cache, not copied.
            self.hypervisor.cached_xml(&summary, || stats::domain_xml(&self.hypervisor, uuid))
        })
    }

    /// A domain's statistics (read on demand if the cycle did not prefetch them).
    pub fn stats(&self, uuid: &str) -> Shared<DomainStats> {
        self.stats.get(uuid, || {
            let summary = self.summary(uuid)?;
            let xml = self.xml(uuid)?;
            let devices = self.hypervisor.devices(uuid, &xml);
            match stats::from_bulk(&summary, &devices, self.bulk().get(uuid)) {
                Ok(stats) => Ok(Arc::new(stats)),
                Err(rest) => match stats::complete(&self.hypervisor, vec![*rest])?.pop() {
                    Some(read) => read.map(Arc::new),
                    None => Err(HypervisorError::NoSuchDomain(uuid.to_string())),
                },
            }
        })
    }

    /// The domain as this cycle's list has it.
    fn summary(&self, uuid: &str) -> Result<DomainSummary, HypervisorError> {
        let domains = self.domains()?;
        let index = self.by_uuid.get_or_init(|| domains.iter().enumerate().map(|(i, d)| (d.uuid.clone(), i)).collect());
        index.get(uuid).map(|i| domains[*i].clone()).ok_or_else(|| HypervisorError::NoSuchDomain(uuid.to_string()))
    }

    /// The cycle's bulk read: one call for every domain. If it fails the cycle goes on
    /// with per-domain reads (logged once per cycle).
    fn bulk(&self) -> Arc<HashMap<String, BulkRecord>> {
        self.bulk
            .get_or_init(|| {
                match self.hypervisor.with_connection("virConnectGetAllDomainStats", bulk::all_domain_stats) {
                    Ok(records) => Arc::new(records),
                    Err(error) => {
                        tracing::warn!(%error, "bulk statistics read failed; reading each domain instead");
                        Arc::default()
                    }
                }
            })
            .clone()
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

        let xml = snapshot.xml(&test.uuid).expect("xml");
        let next = hypervisor.cycle();
        assert_eq!(*next.xml(&test.uuid).expect("xml"), *xml);
        assert_eq!(hypervisor.xml_reads(), 1, "the XML of an unchanged domain is read once across cycles");
    }
}
