//! One polling cycle's view of the hypervisor: each domain list, XML and statistics
//! read is made at most once per cycle and shared by every plugin of that cycle.

use super::stats::{self, DomainStats, DomainSummary};
use super::{Hypervisor, HypervisorError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type Shared<T> = Result<Arc<T>, HypervisorError>;

/// A read-once cache over the hypervisor for one cycle.
pub struct CycleSnapshot {
    hypervisor: Arc<Hypervisor>,
    domains: OnceLock<Shared<Vec<DomainSummary>>>,
    xml: PerDomain<String>,
    stats: PerDomain<DomainStats>,
}

/// Values read once per domain, even when several plugins ask at the same time.
struct PerDomain<T>(Mutex<HashMap<String, Arc<OnceLock<Shared<T>>>>>);

impl<T> PerDomain<T> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, uuid: &str, read: impl FnOnce() -> Result<T, HypervisorError>) -> Shared<T> {
        let cell = {
            let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(uuid.to_string()).or_default().clone()
        };
        cell.get_or_init(|| read().map(Arc::new)).clone()
    }
}

impl CycleSnapshot {
    pub(super) fn new(hypervisor: Arc<Hypervisor>) -> Self {
        Self { hypervisor, domains: OnceLock::new(), xml: PerDomain::new(), stats: PerDomain::new() }
    }

    /// The hypervisor this snapshot reads.
    pub fn hypervisor(&self) -> &Hypervisor {
        &self.hypervisor
    }

    /// Every domain of the host.
    pub fn domains(&self) -> Shared<Vec<DomainSummary>> {
        self.domains.get_or_init(|| stats::list_domains(&self.hypervisor).map(Arc::new)).clone()
    }

    /// A domain's XML description.
    pub fn xml(&self, uuid: &str) -> Shared<String> {
        self.xml.get(uuid, || stats::domain_xml(&self.hypervisor, uuid))
    }

    /// A domain's statistics.
    pub fn stats(&self, uuid: &str) -> Shared<DomainStats> {
        self.stats.get(uuid, || {
            let xml = self.xml(uuid)?;
            stats::domain_stats(&self.hypervisor, uuid, &xml)
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
    }
}
