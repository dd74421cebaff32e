//! `pollen:plugin/hypervisor`: read access to this cycle's hypervisor snapshot, for
//! plugins the pipeline grants it. Denied (as an error value, not a trap) to others
//! and outside a polling cycle.

use crate::bindings::agent::pollen::plugin::hypervisor as wit;
use crate::bindings::types::Error;
use crate::config::Grant;
use crate::hypervisor::{self as hv, CycleSnapshot, HypervisorError};
use crate::plugin::PluginState;
use std::sync::Arc;

impl PluginState {
    /// The cycle's snapshot, if this plugin may read it.
    fn snapshot(&self) -> Result<Arc<CycleSnapshot>, Error> {
        if !self.context.is_granted(Grant::Hypervisor) {
            return Err(Error::Host(format!(
                "access denied: the pipeline does not grant `hypervisor` to plugin `{}`",
                self.name()
            )));
        }
        self.cycle.clone().ok_or_else(|| Error::Host("the hypervisor is readable only during a polling cycle".into()))
    }
}

fn host_error(error: HypervisorError) -> Error {
    Error::Host(error.to_string())
}

/// Longest id quoted back to a plugin in an error.
const QUOTED_ID: usize = 64;

impl PluginState {
    /// Refuses an id that is not a domain of this host, at once where the snapshot
    /// knows (answering costs nothing), else after asking libvirt.
    fn listed(&self, snapshot: &CycleSnapshot, uuid: &str) -> Result<(), Error> {
        let listed = match snapshot.is_listed_now(uuid) {
            Some(listed) => listed,
            None => snapshot.is_listed(uuid),
        };
        if listed.map_err(host_error)? {
            return Ok(());
        }
        let quoted: String = uuid.chars().take(QUOTED_ID).collect();
        Err(Error::Host(format!("no domain `{quoted}` on this host")))
    }
}

impl wit::Host for PluginState {
    fn list_domains(&mut self) -> Result<Vec<wit::Domain>, Error> {
        let snapshot = self.snapshot()?;
        let domains = snapshot.domains().map_err(host_error)?;
        Ok(domains.iter().map(domain).collect())
    }

    fn get_stats(&mut self, uuid: String) -> Result<wit::DomainStats, Error> {
        let snapshot = self.snapshot()?;
        self.listed(&snapshot, &uuid)?;
        let stats = snapshot.stats(&uuid).map_err(host_error)?;
        Ok(wit::DomainStats {
            domain: domain(&stats.domain),
            vcpus: stats.vcpus,
            max_memory: stats.max_memory,
            memory: stats.memory,
            cpu: stats.cpu.map(|cpu| wit::CpuStats {
                time: cpu.time,
                user: cpu.user,
                system: cpu.system,
                vcpu_time: cpu.vcpu_time,
            }),
            memory_stats: stats.memory_stats.map(|m| wit::MemoryStats {
                actual: m.actual,
                available: m.available,
                unused: m.unused,
                usable: m.usable,
                rss: m.rss,
                swap_in: m.swap_in,
                swap_out: m.swap_out,
            }),
            blocks: stats
                .blocks
                .iter()
                .map(|b| wit::BlockStats {
                    device: b.device.clone(),
                    read_requests: b.read_requests,
                    read_bytes: b.read_bytes,
                    write_requests: b.write_requests,
                    write_bytes: b.write_bytes,
                    errors: b.errors,
                    read_time: b.read_time,
                    write_time: b.write_time,
                    capacity: b.capacity,
                    allocation: b.allocation,
                    physical: b.physical,
                })
                .collect(),
            interfaces: stats
                .interfaces
                .iter()
                .map(|i| wit::InterfaceStats {
                    device: i.device.clone(),
                    mac: i.mac.clone(),
                    rx_bytes: i.rx_bytes,
                    rx_packets: i.rx_packets,
                    rx_errors: i.rx_errors,
                    rx_drops: i.rx_drops,
                    tx_bytes: i.tx_bytes,
                    tx_packets: i.tx_packets,
                    tx_errors: i.tx_errors,
                    tx_drops: i.tx_drops,
                    filter_ref: i.filter_ref.clone(),
                    filter_parameters: i.filter_parameters.clone(),
                })
                .collect(),
            perf: stats.perf.map(|p| wit::PerfStats {
                cpu_cycles: p.cpu_cycles,
                instructions: p.instructions,
                cache_references: p.cache_references,
                cache_misses: p.cache_misses,
            }),
        })
    }

    fn get_xml(&mut self, uuid: String, known: u64) -> Result<Option<wit::DomainXml>, Error> {
        let snapshot = self.snapshot()?;
        self.listed(&snapshot, &uuid)?;
        let xml = snapshot.xml(&uuid, known).map_err(host_error)?;
        Ok(xml.map(|(stamp, xml)| wit::DomainXml { stamp, xml }))
    }
}

fn domain(summary: &hv::DomainSummary) -> wit::Domain {
    wit::Domain { uuid: summary.uuid.clone(), name: summary.name.clone(), state: state(summary.state) }
}

fn state(state: hv::DomainState) -> wit::DomainState {
    match state {
        hv::DomainState::NoState => wit::DomainState::Nostate,
        hv::DomainState::Running => wit::DomainState::Running,
        hv::DomainState::Blocked => wit::DomainState::Blocked,
        hv::DomainState::Paused => wit::DomainState::Paused,
        hv::DomainState::Shutdown => wit::DomainState::Shutdown,
        hv::DomainState::Shutoff => wit::DomainState::Shutoff,
        hv::DomainState::Crashed => wit::DomainState::Crashed,
        hv::DomainState::PmSuspended => wit::DomainState::Pmsuspended,
    }
}
