//! What the host reads of one domain, as plain data, and how it is read from libvirt.

use super::bulk::{self, BulkRecord, Filled};
use super::{Hypervisor, HypervisorError};
use std::sync::Arc;
use virt::domain::Domain;
use virt::sys;

/// A domain's run state, with libvirt's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// 0.
    NoState,
    /// 1.
    Running,
    /// 2.
    Blocked,
    /// 3.
    Paused,
    /// 4.
    Shutdown,
    /// 5.
    Shutoff,
    /// 6.
    Crashed,
    /// 7.
    PmSuspended,
}

impl DomainState {
    pub(super) fn from_libvirt(state: sys::virDomainState) -> Self {
        match state {
            sys::VIR_DOMAIN_RUNNING => Self::Running,
            sys::VIR_DOMAIN_BLOCKED => Self::Blocked,
            sys::VIR_DOMAIN_PAUSED => Self::Paused,
            sys::VIR_DOMAIN_SHUTDOWN => Self::Shutdown,
            sys::VIR_DOMAIN_SHUTOFF => Self::Shutoff,
            sys::VIR_DOMAIN_CRASHED => Self::Crashed,
            sys::VIR_DOMAIN_PMSUSPENDED => Self::PmSuspended,
            _ => Self::NoState,
        }
    }

    /// Whether the domain has live statistics (running, blocked or paused).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Blocked | Self::Paused)
    }
}

/// A domain as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSummary {
    /// libvirt UUID.
    pub uuid: String,
    /// libvirt name.
    pub name: String,
    /// Run state.
    pub state: DomainState,
    /// libvirt's id while it runs (a new one after each start).
    pub id: Option<u32>,
}

/// CPU times in ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuStats {
    /// Total.
    pub time: u64,
    /// User mode, where reported.
    pub user: Option<u64>,
    /// Kernel mode, where reported.
    pub system: Option<u64>,
    /// Run plus wait time summed over the vCPUs, where reported.
    pub vcpu_time: Option<u64>,
}

/// Balloon statistics in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    /// Balloon actual.
    pub actual: Option<u64>,
    /// Available to the guest.
    pub available: Option<u64>,
    /// Unused by the guest.
    pub unused: Option<u64>,
    /// Reclaimable without swapping.
    pub usable: Option<u64>,
    /// RSS of the hypervisor process.
    pub rss: Option<u64>,
    /// Swapped in.
    pub swap_in: Option<u64>,
    /// Swapped out.
    pub swap_out: Option<u64>,
}

/// One disk's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockStats {
    /// Target device, e.g. `vda`.
    pub device: String,
    /// Read requests.
    pub read_requests: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Write requests.
    pub write_requests: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Errors.
    pub errors: u64,
    /// Time spent reading, ns, where reported.
    pub read_time: Option<u64>,
    /// Time spent writing, ns, where reported.
    pub write_time: Option<u64>,
    /// Size the guest sees, bytes.
    pub capacity: Option<u64>,
    /// Host storage allocated, bytes.
    pub allocation: Option<u64>,
    /// Size of the container on the host, bytes.
    pub physical: Option<u64>,
}

/// One vNIC's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceStats {
    /// Host-side device, e.g. `tap1`.
    pub device: String,
    /// MAC address.
    pub mac: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Receive drops.
    pub rx_drops: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Send drops.
    pub tx_drops: u64,
    /// The vNIC's network filter, if any.
    pub filter_ref: Option<String>,
    /// The filter's parameters.
    pub filter_parameters: Vec<(String, String)>,
}

/// Hardware performance counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerfStats {
    /// CPU cycles.
    pub cpu_cycles: Option<u64>,
    /// Instructions.
    pub instructions: Option<u64>,
    /// Cache references.
    pub cache_references: Option<u64>,
    /// Cache misses.
    pub cache_misses: Option<u64>,
}

/// Everything read of one domain in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainStats {
    /// The domain.
    pub domain: DomainSummary,
    /// vCPUs.
    pub vcpus: u32,
    /// Maximum memory, KiB.
    pub max_memory: u64,
    /// Current memory, KiB.
    pub memory: u64,
    /// CPU times, for an active domain.
    pub cpu: Option<CpuStats>,
    /// Balloon statistics, for an active domain.
    pub memory_stats: Option<MemoryStats>,
    /// Disks.
    pub blocks: Vec<BlockStats>,
    /// vNICs.
    pub interfaces: Vec<InterfaceStats>,
    /// Performance counters, where enabled.
    pub perf: Option<PerfStats>,
}

impl DomainStats {
    /// Nothing read yet of `domain`.
    pub(super) fn empty(domain: DomainSummary) -> Self {
        Self {
            domain,
            vcpus: 0,
            max_memory: 0,
            memory: 0,
            cpu: None,
            memory_stats: None,
            blocks: Vec::new(),
            interfaces: Vec::new(),
            perf: None,
        }
    }
}

/// The host's domains, sorted by UUID, with libvirt's handle of each (same order):
/// later calls of the cycle use the handles instead of looking each domain up again.
pub(super) struct Listed {
    /// What each domain is.
    pub domains: Vec<DomainSummary>,
    /// libvirt's handle of each.
    pub handles: Arc<Vec<Domain>>,
}

/// Lists every domain of the host with its state: one bulk state read where the
/// driver has it (one round trip to a remote daemon), else the listing and one state
/// call per domain.
pub(super) fn list_domains(hypervisor: &Hypervisor) -> Result<Listed, HypervisorError> {
    hypervisor.with_connection("virConnectListAllDomains", |connection| {
        let listed = match bulk::all_domains(connection) {
            Ok(listed) => listed,
            Err(error) => {
                tracing::debug!(%error, "bulk state read failed; listing the domains one by one");
                connection.list_all_domains(0)?.into_iter().map(|domain| (domain, None)).collect()
            }
        };
        let mut listed: Vec<(DomainSummary, Domain)> = listed
            .into_iter()
            .map(|(domain, state)| Ok((summary(&domain, state)?, domain)))
            .collect::<Result<_, virt::error::Error>>()?;
        listed.sort_by(|(a, _), (b, _)| a.uuid.cmp(&b.uuid));
        let (domains, handles) = listed.into_iter().unzip();
        Ok(Listed { domains, handles: Arc::new(handles) })
    })
}

/// A domain whose statistics the bulk read did not fully give.
pub(super) struct Incomplete {
    /// Its place in the cycle's listing.
    pub index: usize,
    stats: DomainStats,
    devices: Arc<Devices>,
    from_bulk: Filled,
}

/// One domain's statistics from what the bulk read (`bulk`) has, with the disks and
/// vNICs that the domain's XML names (`devices`); what it lacks (the test driver's bulk
/// read has only the state) is left for [`complete`]. `index` is the domain's place in
/// the cycle's listing.
pub(super) fn from_bulk(
    index: usize,
    summary: &DomainSummary,
    devices: &Arc<Devices>,
    bulk: Option<&BulkRecord>,
) -> Result<DomainStats, Box<Incomplete>> {
    let mut stats = DomainStats::empty(summary.clone());
    let from_bulk = bulk.map(|record| record.fill(&mut stats, devices)).unwrap_or_default();
    if from_bulk.complete() {
        Ok(stats)
    } else {
        Err(Box::new(Incomplete { index, stats, devices: devices.clone(), from_bulk }))
    }
}

/// Completes several domains with per-domain calls, in one job on the connection's
/// thread (one timeout for the batch). A domain that fails costs only its own entry;
/// a connection that died fails the batch.
pub(super) fn complete(
    hypervisor: &Hypervisor,
    handles: Arc<Vec<Domain>>,
    batch: Vec<Incomplete>,
) -> Result<Vec<Result<DomainStats, HypervisorError>>, HypervisorError> {
    hypervisor.per_domain_reads.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    each_domain(hypervisor, "virDomainGetInfo", batch, move |Incomplete { index, stats, devices, from_bulk }| {
        complete_per_domain(&handles[index], stats, &devices, from_bulk)
    })
}

/// The XML descriptions of the domains at `indices` of the listing, in one job on the
/// connection's thread.
pub(super) fn domain_xmls(
    hypervisor: &Hypervisor,
    handles: Arc<Vec<Domain>>,
    indices: Vec<usize>,
) -> Result<Vec<Result<String, HypervisorError>>, HypervisorError> {
    hypervisor.xml_reads.fetch_add(indices.len() as u64, std::sync::atomic::Ordering::Relaxed);
    each_domain(hypervisor, "virDomainGetXMLDesc", indices, move |index| handles[index].get_xml_desc(0))
}

/// Runs `read` on each item in one job on the connection's thread, the items shared
/// among the connection's lanes (see [`super::lanes`]): a domain that fails costs only its own
/// entry; a connection that died fails the whole job.
fn each_domain<I: Send + 'static, T: Send + 'static>(
    hypervisor: &Hypervisor,
    call: &'static str,
    items: Vec<I>,
    read: impl Fn(I) -> Result<T, virt::error::Error> + Send + Sync + 'static,
) -> Result<Vec<Result<T, HypervisorError>>, HypervisorError> {
    let uri = hypervisor.uri().to_string();
    let lanes = hypervisor.lanes.clone();
    hypervisor.with_connection(call, move |connection| {
        let connection = LaneConnection(connection.clone());
        lanes.run(items, move |item| match read(item) {
            Ok(value) => Ok(Ok(value)),
            Err(error) if !connection.0.is_alive().unwrap_or(false) => Err(error),
            Err(error) => Ok(Err(HypervisorError::from_libvirt(call, &uri, error))),
        })
    })
}

/// A reference of the lanes' own to the connection, given up when the last of them
/// is done with it.
struct LaneConnection(virt::connect::Connect);

impl Drop for LaneConnection {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

/// Reads what the bulk read did not give, one call per item.
fn complete_per_domain(
    domain: &Domain,
    mut stats: DomainStats,
    devices: &Devices,
    from_bulk: Filled,
) -> Result<DomainStats, virt::error::Error> {
    let info = domain.get_info()?;
    let state = DomainState::from_libvirt(info.state);
    stats.domain.state = state;
    if !from_bulk.info {
        stats.vcpus = info.nr_virt_cpu;
        stats.max_memory = info.max_mem;
        stats.memory = info.memory;
    }
    let active = state.is_active();
    if active && stats.cpu.is_none() {
        stats.cpu = Some(CpuStats { time: info.cpu_time, user: None, system: None, vcpu_time: None });
    }
    if active && stats.memory_stats.is_none() {
        stats.memory_stats = Some(memory_stats(domain)?);
    }
    if !from_bulk.blocks {
        for device in devices.disks() {
            let mut block = BlockStats { device: device.to_string(), ..BlockStats::default() };
            if active {
                let counters = domain.get_block_stats(device)?;
                block.read_requests = counter(counters.rd_req);
                block.read_bytes = counter(counters.rd_bytes);
                block.write_requests = counter(counters.wr_req);
                block.write_bytes = counter(counters.wr_bytes);
                block.errors = counter(counters.errs);
            }
            // Sizes are there for a stopped domain too, where the disk can be read.
            if let Ok(info) = domain.get_block_info(device, 0) {
                (block.capacity, block.allocation, block.physical) =
                    (Some(info.capacity), Some(info.allocation), Some(info.physical));
            }
            stats.blocks.push(block);
        }
    }
    if !from_bulk.interfaces && active {
        for interface in devices.interfaces.iter() {
            let net = domain.interface_stats(interface.device())?;
            stats.interfaces.push(InterfaceStats {
                rx_bytes: counter(net.rx_bytes),
                rx_packets: counter(net.rx_packets),
                rx_errors: counter(net.rx_errs),
                rx_drops: counter(net.rx_drop),
                tx_bytes: counter(net.tx_bytes),
                tx_packets: counter(net.tx_packets),
                tx_errors: counter(net.tx_errs),
                tx_drops: counter(net.tx_drop),
                ..interface.stats()
            });
        }
    }
    Ok(stats)
}

/// What a listed domain is; its state asked of libvirt unless `state` gave it.
fn summary(domain: &Domain, state: Option<u64>) -> Result<DomainSummary, virt::error::Error> {
    let state = match state.and_then(|state| sys::virDomainState::try_from(state).ok()) {
        Some(state) => state,
        None => domain.get_state()?.0,
    };
    Ok(DomainSummary {
        uuid: domain.get_uuid()?.hyphenated().to_string(),
        name: domain.get_name()?,
        state: DomainState::from_libvirt(state),
        id: domain.get_id(),
    })
}

fn memory_stats(domain: &Domain) -> Result<MemoryStats, virt::error::Error> {
    let mut stats = MemoryStats::default();
    for stat in domain.memory_stats(0)? {
        let slot = match stat.tag as sys::virDomainMemoryStatTags {
            sys::VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON => &mut stats.actual,
            sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE => &mut stats.available,
            sys::VIR_DOMAIN_MEMORY_STAT_UNUSED => &mut stats.unused,
            sys::VIR_DOMAIN_MEMORY_STAT_USABLE => &mut stats.usable,
            sys::VIR_DOMAIN_MEMORY_STAT_RSS => &mut stats.rss,
            sys::VIR_DOMAIN_MEMORY_STAT_SWAP_IN => &mut stats.swap_in,
            sys::VIR_DOMAIN_MEMORY_STAT_SWAP_OUT => &mut stats.swap_out,
            _ => continue,
        };
        *slot = Some(stat.val);
    }
    Ok(stats)
}

/// libvirt reports -1 for a counter it does not have.
pub(super) fn counter(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The disks and vNICs named in a domain's XML, kept for as long as the XML is (one
/// per domain of the host, so kept small: each one's names in one text).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Devices {
    /// Target device names of disks (`vda`), separated by NUL (which XML cannot hold).
    disks: Box<str>,
    /// Each vNIC.
    pub interfaces: Box<[Vnic]>,
}

/// What a domain's XML says of one vNIC: its device, MAC, filter and the filter's
/// parameters (name, value, ...), separated by NUL.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Vnic(Box<str>);

impl Vnic {
    fn new(device: &str, mac: &str, filter_ref: Option<&str>, parameters: &[(&str, &str)]) -> Self {
        let mut fields = vec![device, mac, filter_ref.unwrap_or_default()];
        fields.extend(parameters.iter().flat_map(|(name, value)| [*name, *value]));
        Self(fields.join("\0").into())
    }

    /// Host-side device, e.g. `tap1`.
    pub fn device(&self) -> &str {
        self.0.split('\0').next().unwrap_or_default()
    }

    /// Its statistics, counters zero.
    pub fn stats(&self) -> InterfaceStats {
        let mut fields = self.0.split('\0').map(str::to_string);
        let (device, mac, filter_ref) = (fields.next(), fields.next(), fields.next());
        let mut filter_parameters = Vec::new();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            filter_parameters.push((name, value));
        }
        InterfaceStats {
            device: device.unwrap_or_default(),
            mac: mac.unwrap_or_default(),
            filter_ref: filter_ref.filter(|f| !f.is_empty()),
            filter_parameters,
            ..InterfaceStats::default()
        }
    }
}

impl Devices {
    pub(super) fn from_xml(xml: &str) -> Self {
        let Ok(document) = roxmltree::Document::parse(xml) else {
            return Self::default();
        };
        let Some(devices) = document.root_element().children().find(|n| n.has_tag_name("devices")) else {
            return Self::default();
        };
        fn target<'a>(node: roxmltree::Node<'a, 'a>) -> Option<&'a str> {
            node.children().find(|c| c.has_tag_name("target")).and_then(|t| t.attribute("dev"))
        }
        let (mut disks, mut interfaces) = (Vec::new(), Vec::new());
        for node in devices.children().filter(|n| n.is_element()) {
            match node.tag_name().name() {
                "disk" if node.attribute("device").unwrap_or("disk") == "disk" => disks.extend(target(node)),
                "interface" => {
                    let child = |name: &str| node.children().find(|c| c.has_tag_name(name));
                    let mac = child("mac").and_then(|m| m.attribute("address")).unwrap_or_default();
                    let filter = child("filterref");
                    let parameters: Vec<(&str, &str)> = filter
                        .iter()
                        .flat_map(|f| f.children().filter(|p| p.has_tag_name("parameter")))
                        .filter_map(|p| Some((p.attribute("name")?, p.attribute("value")?)))
                        .collect();
                    if let Some(device) = target(node) {
                        interfaces.push(Vnic::new(
                            device,
                            mac,
                            filter.and_then(|f| f.attribute("filter")),
                            &parameters,
                        ));
                    }
                }
                _ => {}
            }
        }
        Self { disks: disks.join("\0").into(), interfaces: interfaces.into() }
    }

    /// Target device names of disks (`vda`).
    pub fn disks(&self) -> impl Iterator<Item = &str> {
        self.disks.split('\0').filter(|disk| !disk.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_read_from_domain_xml() {
        let xml = r#"<domain><devices>
            <disk type='file' device='disk'><target dev='vda'/></disk>
            <disk type='file' device='cdrom'><target dev='hdc'/></disk>
            <interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='tap1'/>
              <filterref filter='nova-instance-1'><parameter name='IP' value='10.0.0.5'/></filterref></interface>
        </devices></domain>"#;
        let devices = Devices::from_xml(xml);
        assert_eq!(devices.disks().collect::<Vec<_>>(), ["vda"]);
        let vnic = devices.interfaces[0].stats();
        assert_eq!((vnic.device.as_str(), vnic.mac.as_str()), ("tap1", "52:54:00:00:00:01"));
        assert_eq!(vnic.filter_ref.as_deref(), Some("nova-instance-1"));
        assert_eq!(vnic.filter_parameters, vec![("IP".to_string(), "10.0.0.5".to_string())]);
    }
}
