//! Ceilometer's compute meters as its own source has them: the table
//! `scripts/ceilometer_oracle.py` reads out of Ceilometer 27's wheel
//! (`tests/data/ceilometer/compute-meters.tsv`, each row citing its file and line).

use super::repo;
use pollen_host::sample::MeterType;

/// One compute meter of Ceilometer's.
#[derive(Debug, Clone)]
pub struct OracleMeter {
    pub name: String,
    pub kind: MeterType,
    pub unit: String,
    /// The Python expression of its resource id (`instance.id`, ...).
    pub resource_id: String,
    /// Metadata keys its pollster adds to the instance's.
    pub added: Vec<String>,
    /// Whether Ceilometer's libvirt inspector implements what it reads.
    pub on_libvirt: bool,
    /// Where Ceilometer says so.
    pub source: String,
}

/// One key of the instance metadata every compute sample carries.
#[derive(Debug, Clone)]
pub struct OracleKey {
    pub key: String,
    /// Always there, or only where the domain's Nova metadata has what it needs.
    pub always: bool,
    pub source: String,
}

/// The `state` and `status` metadata Ceilometer guesses from a libvirt state.
#[derive(Debug, Clone)]
pub struct OracleState {
    /// libvirt's state number (`power.state`'s volume).
    pub libvirt: u32,
    pub state: String,
    pub status: String,
}

/// The whole table.
pub struct Oracle {
    pub meters: Vec<OracleMeter>,
    pub instance_keys: Vec<OracleKey>,
    pub states: Vec<OracleState>,
}

impl Oracle {
    /// Ceilometer's `state` and `status` for a libvirt state number.
    pub fn state_of(&self, libvirt: u32) -> (&str, &str) {
        let row = self.states.iter().find(|s| s.libvirt == libvirt).unwrap_or_else(|| panic!("no state {libvirt}"));
        (&row.state, &row.status)
    }
}

/// The table's meters, instance metadata keys and states.
pub fn ceilometer_compute() -> Oracle {
    let path = repo().join("tests/data/ceilometer/compute-meters.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut meters, mut keys, mut states) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["meter", name, kind, unit, resource_id, added, libvirt, source] => meters.push(OracleMeter {
                name: name.to_string(),
                kind: match *kind {
                    "gauge" => MeterType::Gauge,
                    "cumulative" => MeterType::Cumulative,
                    "delta" => MeterType::Delta,
                    other => panic!("{}: unknown type {other}", path.display()),
                },
                unit: unit.to_string(),
                resource_id: resource_id.to_string(),
                added: added.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect(),
                on_libvirt: *libvirt == "yes",
                source: source.to_string(),
            }),
            ["state", number, _, state, status, _] => states.push(OracleState {
                libvirt: number.parse().unwrap_or_else(|_| panic!("{}: state {number:?}", path.display())),
                state: state.to_string(),
                status: status.to_string(),
            }),
            ["instance", key, presence, source] => {
                keys.push(OracleKey { key: key.to_string(), always: *presence == "always", source: source.to_string() })
            }
            _ => panic!("{}: malformed line {line:?}", path.display()),
        }
    }
    assert!(meters.len() > 30 && keys.len() > 15 && states.len() >= 8, "{}: too short", path.display());
    Oracle { meters, instance_keys: keys, states }
}
