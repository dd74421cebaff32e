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

/// The table's meters and instance metadata keys.
pub fn ceilometer_compute() -> (Vec<OracleMeter>, Vec<OracleKey>) {
    let path = repo().join("tests/data/ceilometer/compute-meters.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut meters, mut keys) = (Vec::new(), Vec::new());
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
            ["instance", key, presence, source] => {
                keys.push(OracleKey { key: key.to_string(), always: *presence == "always", source: source.to_string() })
            }
            _ => panic!("{}: malformed line {line:?}", path.display()),
        }
    }
    assert!(meters.len() > 30 && keys.len() > 15, "{}: too short", path.display());
    (meters, keys)
}
