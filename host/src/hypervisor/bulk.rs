//! libvirt's bulk statistics read (`virDomainListGetStats`): the state, CPU, balloon,
//! vCPU, block, interface and perf statistics of many domains in one call, which for a
//! remote daemon is one round trip instead of several per domain.
//!
//! The `virt` crate exposes the records only as raw pointers (and frees the list
//! without its records), so this module reads them through `virt::sys` and frees them
//! with `virDomainStatsRecordListFree`.

use super::stats::{
    counter, BlockStats, CpuStats, Devices, DomainState, DomainStats, InterfaceStats, MemoryStats, PerfStats, Vnic,
};
use std::collections::HashMap;
use std::ffi::CStr;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

/// Statistic groups asked for; a driver that lacks one leaves it out (best effort:
/// `ENFORCE_STATS` is not set).
const GROUPS: sys::virDomainStatsTypes = sys::VIR_DOMAIN_STATS_STATE
    | sys::VIR_DOMAIN_STATS_CPU_TOTAL
    | sys::VIR_DOMAIN_STATS_BALLOON
    | sys::VIR_DOMAIN_STATS_VCPU
    | sys::VIR_DOMAIN_STATS_INTERFACE
    | sys::VIR_DOMAIN_STATS_BLOCK
    | sys::VIR_DOMAIN_STATS_PERF;

/// One typed value of a stats record.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    /// A signed or unsigned integer.
    Integer(i128),
    /// A float.
    Float(f64),
    /// A string.
    Text(String),
}

/// One domain's statistics as the bulk read returned them (`"block.0.rd.bytes"` →
/// value).
#[derive(Debug, Clone, Default)]
pub struct BulkRecord {
    params: HashMap<String, Param>,
}

/// Which parts of [`DomainStats`] a bulk record filled.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Filled {
    /// vCPUs and memory sizes.
    pub info: bool,
    /// CPU times.
    pub cpu: bool,
    /// Balloon statistics.
    pub balloon: bool,
    /// Disks.
    pub blocks: bool,
    /// vNICs.
    pub interfaces: bool,
    /// Whether the domain is active.
    pub active: bool,
}

impl Filled {
    /// Whether nothing is left to read per domain.
    pub fn complete(self) -> bool {
        self.info && self.blocks && self.interfaces && (!self.active || (self.cpu && self.balloon))
    }
}

/// Reads the statistics of the domains at `indices` of `handles` in one call, keyed
/// by UUID. `NOWAIT` keeps a domain whose monitor is busy from stalling the read (it
/// reports what it can).
pub(super) fn domain_stats(
    handles: &[Domain],
    indices: &[usize],
) -> Result<HashMap<String, BulkRecord>, virt::error::Error> {
    if indices.is_empty() {
        return Ok(HashMap::new());
    }
    let mut domains: Vec<sys::virDomainPtr> = indices.iter().map(|i| handles[*i].as_ptr()).collect();
    domains.push(std::ptr::null_mut());
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    // SAFETY: `domains` is a NULL-terminated array of valid domain pointers (kept
    // alive by `handles`); libvirt fills `records` with `count` record pointers and a
    // NULL terminator, which `each_record` frees.
    let count = unsafe {
        sys::virDomainListGetStats(
            domains.as_mut_ptr(),
            GROUPS,
            &mut records,
            sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT,
        )
    };
    let mut out = HashMap::with_capacity(count.max(0) as usize);
    // SAFETY: what virDomainListGetStats returned, read once.
    unsafe {
        each_record(records, count, |domain, record| {
            if let Some(uuid) = uuid_of(domain) {
                out.insert(uuid, BulkRecord { params: params(record, |_| true) });
            }
        })
    }?;
    Ok(out)
}

/// Every domain of the host with its state (`state.state`, if the driver gave it), in
/// one call: `virConnectGetAllDomainStats` with only the state group. For a remote
/// daemon that is one round trip, where listing the domains and asking each its state
/// took one per domain. The handles are libvirt's references of their own.
pub(super) fn all_domains(connection: &Connect) -> Result<Vec<(Domain, Option<u64>)>, virt::error::Error> {
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    // SAFETY: the connection is open; libvirt fills `records` with `count` record
    // pointers and a NULL terminator, which `each_record` frees.
    let count =
        unsafe { sys::virConnectGetAllDomainStats(connection.as_ptr(), sys::VIR_DOMAIN_STATS_STATE, &mut records, 0) };
    let mut out = Vec::with_capacity(count.max(0) as usize);
    // SAFETY: what virConnectGetAllDomainStats returned, read once.
    unsafe {
        each_record(records, count, |domain, record| {
            // SAFETY: `domain` is valid while the list lives; the reference taken here
            // is the handle's own (released when the handle is dropped).
            if sys::virDomainRef(domain) == 0 {
                let state = BulkRecord { params: params(record, |field| field == "state.state") };
                out.push((Domain::from_ptr(domain), state.integer("state.state")));
            }
        })
    }?;
    Ok(out)
}

/// Calls `f` with each of the `count` records of a list libvirt returned (`count`
/// negative: the call failed, its error is returned), then frees the list.
///
/// # Safety
/// `records` and `count` must be what one of libvirt's stats calls returned, and the
/// list must not be used after.
unsafe fn each_record(
    records: *mut sys::virDomainStatsRecordPtr,
    count: i32,
    mut f: impl FnMut(sys::virDomainPtr, &sys::virDomainStatsRecord),
) -> Result<(), virt::error::Error> {
    if count < 0 {
        return Err(virt::error::Error::last_error());
    }
    for index in 0..count as usize {
        // SAFETY: `index < count`, so the pointer is one of the records libvirt made.
        let record = unsafe { &**records.add(index) };
        f(record.dom, record);
    }
    // SAFETY: the list is freed once, with its records and their domain references.
    unsafe { sys::virDomainStatsRecordListFree(records) };
    Ok(())
}

/// A domain's UUID as libvirt writes it (lower case, hyphenated).
fn uuid_of(domain: sys::virDomainPtr) -> Option<String> {
    let mut uuid = [0u8; sys::VIR_UUID_BUFLEN as usize];
    // SAFETY: `domain` is valid; the buffer has the size libvirt requires.
    (unsafe { sys::virDomainGetUUID(domain, uuid.as_mut_ptr()) } == 0)
        .then(|| uuid::Uuid::from_bytes(uuid).hyphenated().to_string())
}

/// The typed parameters of a record whose field `keep` accepts.
fn params(record: &sys::virDomainStatsRecord, keep: impl Fn(&str) -> bool) -> HashMap<String, Param> {
    let mut params = HashMap::with_capacity(record.nparams.max(0) as usize);
    for i in 0..record.nparams.max(0) as usize {
        // SAFETY: `i < nparams`.
        let param = unsafe { &*record.params.add(i) };
        // SAFETY: `field` is NUL-terminated within its 80 bytes.
        let field = unsafe { CStr::from_ptr(param.field.as_ptr()) }.to_string_lossy();
        if !keep(&field) {
            continue;
        }
        // SAFETY: `type_` says which member of the union is set.
        let value = unsafe {
            match param.type_ as sys::virTypedParameterType {
                sys::VIR_TYPED_PARAM_INT => Param::Integer(param.value.i.into()),
                sys::VIR_TYPED_PARAM_UINT => Param::Integer(param.value.ui.into()),
                sys::VIR_TYPED_PARAM_LLONG => Param::Integer(param.value.l.into()),
                sys::VIR_TYPED_PARAM_ULLONG => Param::Integer(param.value.ul.into()),
                sys::VIR_TYPED_PARAM_DOUBLE => Param::Float(param.value.d),
                sys::VIR_TYPED_PARAM_BOOLEAN => Param::Integer((param.value.b != 0).into()),
                sys::VIR_TYPED_PARAM_STRING if !param.value.s.is_null() => {
                    Param::Text(CStr::from_ptr(param.value.s).to_string_lossy().into_owned())
                }
                _ => continue,
            }
        };
        params.insert(field.into_owned(), value);
    }
    params
}

impl BulkRecord {
    /// A record from its parameters (for tests).
    #[cfg(test)]
    pub(super) fn from_params(params: impl IntoIterator<Item = (&'static str, Param)>) -> Self {
        Self { params: params.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }

    fn integer(&self, key: &str) -> Option<u64> {
        match self.params.get(key)? {
            Param::Integer(value) => u64::try_from(*value).ok(),
            Param::Float(value) if *value >= 0.0 => Some(*value as u64),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.params.get(key)? {
            Param::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Fills what this record has into `stats`; `devices` (from the domain's XML)
    /// says which block devices are disks and gives each vNIC its MAC and filter.
    pub(super) fn fill(&self, stats: &mut DomainStats, devices: &Devices) -> Filled {
        let mut filled = Filled::default();
        if let Some(state) = self.integer("state.state") {
            stats.domain.state = DomainState::from_libvirt(state as sys::virDomainState);
        }
        filled.active = stats.domain.state.is_active();
        if let (Some(vcpus), Some(current), Some(maximum)) =
            (self.integer("vcpu.current"), self.integer("balloon.current"), self.integer("balloon.maximum"))
        {
            (stats.vcpus, stats.memory, stats.max_memory) = (vcpus as u32, current, maximum);
            filled.info = true;
        }
        if let Some(time) = self.integer("cpu.time") {
            let vcpus = self.integer("vcpu.maximum").or(self.integer("vcpu.current")).unwrap_or(0);
            let mut vcpu_time = None;
            for n in 0..vcpus {
                if let Some(run) = self.integer(&format!("vcpu.{n}.time")) {
                    let wait = self.integer(&format!("vcpu.{n}.wait")).unwrap_or(0);
                    *vcpu_time.get_or_insert(0) += run + wait;
                }
            }
            stats.cpu =
                Some(CpuStats { time, user: self.integer("cpu.user"), system: self.integer("cpu.system"), vcpu_time });
            filled.cpu = true;
        }
        if let Some(actual) = self.integer("balloon.current") {
            stats.memory_stats = Some(MemoryStats {
                actual: Some(actual),
                available: self.integer("balloon.available"),
                unused: self.integer("balloon.unused"),
                usable: self.integer("balloon.usable"),
                rss: self.integer("balloon.rss"),
                swap_in: self.integer("balloon.swap_in"),
                swap_out: self.integer("balloon.swap_out"),
            });
            filled.balloon = true;
        }
        if let Some(count) = self.integer("block.count") {
            for n in 0..count {
                let key = |name: &str| format!("block.{n}.{name}");
                let Some(device) = self.text(&key("name")) else { continue };
                if !devices.disks().any(|d| d == device) {
                    continue; // a cdrom, or a backing image
                }
                let number = |name: &str| self.integer(&key(name));
                stats.blocks.push(BlockStats {
                    device: device.to_string(),
                    read_requests: number("rd.reqs").unwrap_or(0),
                    read_bytes: number("rd.bytes").unwrap_or(0),
                    write_requests: number("wr.reqs").unwrap_or(0),
                    write_bytes: number("wr.bytes").unwrap_or(0),
                    errors: number("errors").unwrap_or(0),
                    read_time: number("rd.times"),
                    write_time: number("wr.times"),
                    capacity: number("capacity"),
                    allocation: number("allocation"),
                    physical: number("physical"),
                });
            }
            filled.blocks = true;
        }
        if let Some(count) = self.integer("net.count") {
            for n in 0..count {
                let key = |name: &str| format!("net.{n}.{name}");
                let Some(device) = self.text(&key("name")) else { continue };
                let number = |name: &str| counter(self.integer(&key(name)).map_or(-1, |v| v as i64));
                let known = devices.interfaces.iter().find(|i| i.device() == device);
                stats.interfaces.push(InterfaceStats {
                    device: device.to_string(),
                    rx_bytes: number("rx.bytes"),
                    rx_packets: number("rx.pkts"),
                    rx_errors: number("rx.errs"),
                    rx_drops: number("rx.drop"),
                    tx_bytes: number("tx.bytes"),
                    tx_packets: number("tx.pkts"),
                    tx_errors: number("tx.errs"),
                    tx_drops: number("tx.drop"),
                    ..known.map(Vnic::stats).unwrap_or_default()
                });
            }
            filled.interfaces = true;
        }
        let perf = PerfStats {
            cpu_cycles: self.integer("perf.cpu_cycles"),
            instructions: self.integer("perf.instructions"),
            cache_references: self.integer("perf.cache_references"),
            cache_misses: self.integer("perf.cache_misses"),
        };
        if perf != PerfStats::default() {
            stats.perf = Some(perf);
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::DomainSummary;

    fn unknown_domain() -> DomainSummary {
        DomainSummary { uuid: "u".into(), name: "n".into(), state: DomainState::NoState, id: None }
    }

    /// What QEMU's bulk read gives for a running domain fills every part; cdroms are
    /// left out, vNICs get their MAC from the XML.
    #[test]
    fn a_qemu_record_fills_everything() {
        let record = BulkRecord::from_params([
            ("state.state", Param::Integer(1)),
            ("cpu.time", Param::Integer(5_000)),
            ("vcpu.current", Param::Integer(2)),
            ("vcpu.maximum", Param::Integer(2)),
            ("vcpu.0.time", Param::Integer(1_000)),
            ("vcpu.0.wait", Param::Integer(10)),
            ("vcpu.1.time", Param::Integer(2_000)),
            ("balloon.current", Param::Integer(65_536)),
            ("balloon.maximum", Param::Integer(65_536)),
            ("balloon.rss", Param::Integer(40_000)),
            ("block.count", Param::Integer(2)),
            ("block.0.name", Param::Text("vda".into())),
            ("block.0.rd.reqs", Param::Integer(7)),
            ("block.0.rd.times", Param::Integer(900)),
            ("block.0.capacity", Param::Integer(1 << 20)),
            ("block.1.name", Param::Text("hdc".into())),
            ("net.count", Param::Integer(1)),
            ("net.0.name", Param::Text("tap1".into())),
            ("net.0.rx.bytes", Param::Integer(1234)),
            ("perf.cpu_cycles", Param::Integer(99)),
        ]);
        let devices = Devices::from_xml(
            "<domain><devices><disk device='disk'><target dev='vda'/></disk>\
             <interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='tap1'/></interface>\
             </devices></domain>",
        );
        let mut stats = DomainStats::empty(unknown_domain());
        let filled = record.fill(&mut stats, &devices);
        assert!(filled.complete(), "{filled:?}");
        assert_eq!(stats.domain.state, DomainState::Running);
        assert_eq!(stats.cpu.unwrap().vcpu_time, Some(3_010));
        assert_eq!((stats.vcpus, stats.memory), (2, 65_536));
        assert_eq!(stats.memory_stats.unwrap().rss, Some(40_000));
        assert_eq!(stats.blocks.len(), 1, "the cdrom is not a disk");
        assert_eq!((stats.blocks[0].read_requests, stats.blocks[0].read_time), (7, Some(900)));
        assert_eq!(stats.interfaces[0].mac, "52:54:00:00:00:01");
        assert_eq!(stats.interfaces[0].rx_bytes, 1234);
        assert_eq!(stats.perf.unwrap().cpu_cycles, Some(99));
    }

    /// The test driver's bulk read has the state alone: everything else is read per
    /// domain.
    #[test]
    fn a_state_only_record_is_incomplete() {
        let record = BulkRecord::from_params([("state.state", Param::Integer(1))]);
        let mut stats = DomainStats::empty(unknown_domain());
        assert!(!record.fill(&mut stats, &Devices::default()).complete());
        assert_eq!(stats.domain.state, DomainState::Running);
    }
}
