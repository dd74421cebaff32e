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

    /// Reads the domain list and the bulk statistics now (the cycle does this on a
    /// blocking thread before any plugin runs, so no plugin call waits on them).
    pub fn prefetch(&self) -> Result<(), HypervisorError> {
        self.domains()?;
        self.bulk();
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

    /// A domain's statistics.
    pub fn stats(&self, uuid: &str) -> Shared<DomainStats> {
        self.stats.get(uuid, || {
            let summary = self.summary(uuid)?;
            let xml = self.xml(uuid)?;
            let bulk = self.bulk();
            stats::domain_stats(&self.hypervisor, &summary, &xml, bulk.get(uuid)).map(Arc::new)
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
