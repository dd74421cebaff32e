//! Conveniences over the generated bindings. Each world generates its own copy of the
//! shared WIT types, so these are macros expanded once inside each world's module.

/// Constructors and conversions for `types.value` and `types.metadata-entry`.
macro_rules! value_helpers {
    () => {
        impl From<&str> for Value {
            fn from(text: &str) -> Self {
                Value::Text(text.into())
            }
        }
        impl From<String> for Value {
            fn from(text: String) -> Self {
                Value::Text(text)
            }
        }
        impl From<i64> for Value {
            fn from(number: i64) -> Self {
                Value::Integer(number)
            }
        }
        impl From<u32> for Value {
            fn from(number: u32) -> Self {
                Value::Integer(number.into())
            }
        }
        impl From<f64> for Value {
            fn from(number: f64) -> Self {
                Value::Float(number)
            }
        }
        impl From<bool> for Value {
            fn from(flag: bool) -> Self {
                Value::Boolean(flag)
            }
        }
        impl<T: Into<Value>> From<Option<T>> for Value {
            fn from(value: Option<T>) -> Self {
                value.map_or(Value::Null, Into::into)
            }
        }
    };
}

/// `Value`s from JSON (an API's answer), for worlds that import `openstack`.
#[cfg(feature = "openstack")]
macro_rules! json_helpers {
    () => {
        impl From<&serde_json::Value> for Value {
            /// Null, booleans, integers, floats and strings as themselves; objects and
            /// arrays as JSON text.
            fn from(json: &serde_json::Value) -> Self {
                match json {
                    serde_json::Value::Null => Value::Null,
                    serde_json::Value::Bool(flag) => Value::Boolean(*flag),
                    serde_json::Value::Number(number) => match number.as_i64() {
                        Some(integer) => Value::Integer(integer),
                        None => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(text) => Value::Text(text.clone()),
                    other => Value::Json(other.to_string()),
                }
            }
        }
    };
}

/// `entry(key, value)` for `types.metadata-entry`.
macro_rules! metadata_helpers {
    () => {
        /// One metadata entry, e.g. `entry("disk_name", "vda")`.
        pub fn entry(key: &str, value: impl Into<Value>) -> bindings::pollen::plugin::types::MetadataEntry {
            bindings::pollen::plugin::types::MetadataEntry { key: key.into(), value: value.into() }
        }
    };
}

/// Constructors for `types.meter`.
macro_rules! meter_helpers {
    () => {
        impl Meter {
            /// A meter of any type, e.g. `Meter::of("cpu", MeterType::Cumulative, "ns")`.
            pub fn of(name: &str, type_: MeterType, unit: &str) -> Self {
                Meter { name: name.into(), type_, unit: unit.into(), default_discoverer: None }
            }

            /// A point-in-time meter, e.g. `Meter::gauge("memory.usage", "MB")`.
            pub fn gauge(name: &str, unit: &str) -> Self {
                Self::of(name, MeterType::Gauge, unit)
            }

            /// A counter that only grows, e.g. `Meter::cumulative("cpu", "ns")`.
            pub fn cumulative(name: &str, unit: &str) -> Self {
                Self::of(name, MeterType::Cumulative, unit)
            }

            /// A change since the previous reading.
            pub fn delta(name: &str, unit: &str) -> Self {
                Self::of(name, MeterType::Delta, unit)
            }

            /// Poll this meter on the resources of this discoverer unless the pipeline
            /// names another.
            pub fn discovered_by(mut self, discoverer: &str) -> Self {
                self.default_discoverer = Some(discoverer.into());
                self
            }
        }
    };
}

/// Constructors for `types.sample`.
macro_rules! sample_helpers {
    () => {
        impl Sample {
            /// A sample of the `meter`-th meter of `describe` on the `resource`-th
            /// resource handed to `poll`.
            pub fn new(meter: u32, resource: usize, volume: f64) -> Self {
                Sample {
                    meter,
                    resource: u32::try_from(resource).unwrap_or(u32::MAX),
                    volume,
                    resource_id: None,
                    metadata: Vec::new(),
                }
            }

            /// Give the sample a resource id of its own (per-device meters).
            pub fn with_resource_id(mut self, id: impl Into<String>) -> Self {
                self.resource_id = Some(id.into());
                self
            }

            /// Add one metadata key to the resource's metadata for this sample.
            pub fn with_metadata(mut self, key: &str, value: impl Into<Value>) -> Self {
                self.metadata.push(entry(key, value));
                self
            }
        }
    };
}

/// Shortcuts over the `hypervisor` interface.
macro_rules! hypervisor_helpers {
    () => {
        /// Calls `f` with each resource's index and its domain statistics, and gathers
        /// what it returns. Resources whose domain is gone or unreadable are skipped
        /// (logged at debug level): a pollster reports what it can.
        pub fn each_domain<T>(
            resources: &[bindings::pollen::plugin::types::ResourceInfo],
            mut f: impl FnMut(usize, &hypervisor::DomainStats) -> Option<Vec<T>>,
        ) -> Vec<T> {
            let mut out = Vec::with_capacity(resources.len());
            for (index, resource) in resources.iter().enumerate() {
                match hypervisor::get_stats(&resource.id) {
                    Ok(stats) => out.extend(f(index, &stats).unwrap_or_default()),
                    Err(error) => log::debug(&format!("no statistics for {}: {error:?}", resource.id)),
                }
            }
            out
        }

        /// What a plugin makes of each domain's XML (Nova's metadata, the flavor),
        /// kept between calls: the host sends a domain's XML again only when it
        /// changed, so an unchanged domain costs neither a copy nor a parse. Call
        /// [`FromXml::next_call`] at the start of each `poll` or `discover`; domains
        /// not asked for in `forget_after` calls are forgotten.
        pub struct FromXml<V> {
            /// By [`crate::key_of`] the UUID: a key that meets another's only costs a
            /// read of the XML (its stamp is the other domain's).
            known: crate::Recent<(u64, V), u64>,
        }

        impl<V> FromXml<V> {
            /// Nothing known yet.
            pub fn new(forget_after: u64) -> Self {
                Self { known: crate::Recent::new(forget_after) }
            }

            /// Starts a call (see [`crate::Recent::next_call`]).
            pub fn next_call(&mut self) {
                self.known.next_call();
            }

            /// What `make` made of domain `uuid`'s XML, made again now if the XML is
            /// new or changed (then `true`), else kept (`false`).
            pub fn get(
                &mut self,
                uuid: &str,
                make: impl FnOnce(&str) -> V,
            ) -> Result<(&V, bool), bindings::pollen::plugin::types::Error> {
                let key = crate::key_of(uuid);
                let known = self.known.get(&key).map_or(0, |(stamp, _)| *stamp);
                let changed = match hypervisor::get_xml(uuid, known)? {
                    Some(current) => {
                        self.known.insert(key, (current.stamp, make(&current.xml)));
                        true
                    }
                    None => false,
                };
                match self.known.get(&key) {
                    Some((_, value)) => Ok((value, changed)),
                    None => Err(bindings::pollen::plugin::types::Error::Host(format!("no XML for domain {uuid}"))),
                }
            }
        }
    };
}

/// `log::info("...")` and friends over the `log` interface.
macro_rules! log_helpers {
    () => {
        /// Writing to the agent's log, tagged with this plugin's name.
        pub mod log {
            use super::bindings::pollen::plugin::log::{log, Level};

            /// Log at trace level.
            pub fn trace(message: &str) {
                log(Level::Trace, message)
            }
            /// Log at debug level.
            pub fn debug(message: &str) {
                log(Level::Debug, message)
            }
            /// Log at info level.
            pub fn info(message: &str) {
                log(Level::Info, message)
            }
            /// Log at warn level.
            pub fn warn(message: &str) {
                log(Level::Warn, message)
            }
            /// Log at error level.
            pub fn error(message: &str) {
                log(Level::Error, message)
            }
        }
    };
}

#[cfg(feature = "openstack")]
pub(crate) use json_helpers;
pub(crate) use {hypervisor_helpers, log_helpers, metadata_helpers, meter_helpers, sample_helpers, value_helpers};
