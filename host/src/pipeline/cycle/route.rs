//! Where a pollster's samples go: each checked (a malformed one is refused and
//! counted), put on its resource or a device of it, and handed to the sources that
//! asked for its meter and resource.

use super::plan::{Interned, PollPlan, Targets};
use super::CycleOutput;
use crate::bindings::types;
use crate::caps::bounds::{metadata_size, MAX_ID as MAX_RESOURCE_ID, MAX_METADATA};
use crate::convert;
use crate::plugin::plugin_text;
use crate::registry::{Namespace, Registry, ResourceHandle};
#[cfg(test)]
use crate::sample::Handed;
use crate::sample::{now_ns, Metadata, Resource, Sample};
use std::sync::Arc;

/// Hands a pollster's samples to the sources that asked for their meter and resource
/// (a resource the pollster named: every source it was polled for).
pub(super) fn route(
    plan: &PollPlan,
    targets: &Targets,
    named: &[Interned],
    raw: Vec<types::Sample>,
    registry: &Registry,
    output: &mut CycleOutput,
) {
    let timestamp = now_ns();
    // The device of the previous sample: its base resource, id and handle.
    let mut last_device: Option<(usize, String, ResourceHandle)> = None;
    let sub_meters = plan.pollster.sub_meters.all();
    let described = plan.pollster.info.meters.len();
    let handle_of = |index: usize| match index.checked_sub(described) {
        None => plan.pollster.info.meters[index].handle,
        Some(sub) => sub_meters[sub].handle,
    };
    // Samples per meter (its index), for `pollen_samples_polled_total`.
    let mut polled = vec![0u64; described + sub_meters.len()];
    for sample in raw {
        let given = targets.resources.len();
        let (meter_index, base) = match check_sample(described + sub_meters.len(), given + named.len(), &sample) {
            Ok(indices) => indices,
            Err(fault) => {
                output.malformed += 1;
                output.refusals.add(plan.pollster.name(), || fault.to_string());
                continue;
            }
        };
        let volume = sample.volume;
        let base_resource = if base < given { &targets.resources[base] } else { &named[base - given] };
        let base_handle = base_resource.0;
        let resource = match (&last_device, &sample.resource_id) {
            (Some((last_base, last_id, handle)), Some(id))
                if *last_base == base && last_id == id && sample.metadata.is_empty() =>
            {
                *handle
            }
            _ => {
                let id = sample.resource_id.clone();
                let handle = match device_resource(registry, base_resource, sample) {
                    Ok(handle) => handle,
                    Err(fault) => {
                        output.malformed += 1;
                        output.refusals.add(plan.pollster.name(), || fault.to_string());
                        continue;
                    }
                };
                last_device = id.map(|id| (base, id, handle));
                handle
            }
        };
        polled[meter_index] += 1;
        // A sub-meter goes where the meter it is a sub-meter of goes.
        let meter = handle_of(meter_index);
        let selected_as = meter_index.checked_sub(described).map_or(meter_index, |sub| sub_meters[sub].parent);
        for (source, meters) in &plan.selections {
            let polled_for_source = base >= given
                || targets.per_source.iter().any(|(s, handles)| s == source && handles.contains(&base_handle));
            if polled_for_source && meters.contains(&selected_as) {
                output.samples[*source].push(Sample { meter, resource, volume, timestamp });
            }
        }
    }
    let metrics = crate::self_metrics::get();
    if metrics.enabled() {
        for (index, count) in polled.into_iter().enumerate().filter(|(_, count)| *count > 0) {
            if let Some(meter) = registry.meter(handle_of(index)) {
                metrics.samples_polled.with_label_values(&[meter.name.as_str()]).inc_by(count);
            }
        }
    }
}

/// What makes a sample a pollster returned malformed.
#[derive(Debug)]
enum Fault {
    Meter {
        meter: usize,
        meters: usize,
    },
    Resource {
        resource: usize,
        resources: usize,
    },
    Volume(f64),
    ResourceId(usize),
    Metadata(usize),
    /// A device id that does not carry the id of the resource it is a device of.
    NotItsDevice {
        id: String,
        of: String,
    },
    /// A device id that is another resource's.
    Taken(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Meter { meter, meters } => {
                write!(f, "meter index {meter} but the pollster describes {meters} meters")
            }
            Self::Resource { resource, resources } => {
                write!(f, "resource index {resource} but it was given {resources} resources")
            }
            Self::Volume(volume) => write!(f, "volume {volume} is not a finite number"),
            Self::ResourceId(length) => write!(f, "resource id of {length} bytes; it must have 1 to {MAX_RESOURCE_ID}"),
            Self::Metadata(size) => write!(f, "{size} bytes of metadata; at most {MAX_METADATA}"),
            Self::NotItsDevice { id, of } => write!(
                f,
                "resource id `{}` carries neither the id nor the name of the resource `{}` it was given (a device's id does: `<id>-vda`)",
                plugin_text(id, 64),
                plugin_text(of, 64)
            ),
            Self::Taken(id) => write!(f, "resource id `{}` is another resource's", plugin_text(id, 64)),
        }
    }
}

/// The meter and resource indices of a sample, if it is well formed (its pollster
/// has `meters` meters, described and sub-meters, and was given or named `resources`).
fn check_sample(meters: usize, resources: usize, sample: &types::Sample) -> Result<(usize, usize), Fault> {
    let (meter, resource) = (sample.meter as usize, sample.resource as usize);
    if meter >= meters {
        return Err(Fault::Meter { meter, meters });
    }
    if resource >= resources {
        return Err(Fault::Resource { resource, resources });
    }
    if !sample.volume.is_finite() {
        return Err(Fault::Volume(sample.volume));
    }
    if let Some(length) = sample.resource_id.as_ref().map(String::len) {
        if length == 0 || length > MAX_RESOURCE_ID {
            return Err(Fault::ResourceId(length));
        }
    }
    match metadata_size(&sample.metadata) {
        size if size > MAX_METADATA => Err(Fault::Metadata(size)),
        _ => Ok((meter, resource)),
    }
}

/// The resource a sample is about: its base resource, or, when the pollster gave it
/// an id or metadata of its own (a disk, a vNIC), that device of it, sharing the
/// base's owner, metadata and namespace (each resource's devices are its own: see
/// [`Registry::intern_device`]). The id it gives must carry its base's id or name, as
/// Ceilometer's do (`<uuid>-vda`, `<name>-<uuid>-tap…`, a filter reference
/// `nova-instance-<name>-<mac>`), and must not be another resource's of the base's
/// discoverer: a pollster names devices of the resources it was given, it does not
/// publish under others' ids.
fn device_resource(
    registry: &Registry,
    (handle, base): &(ResourceHandle, Arc<Resource>),
    sample: types::Sample,
) -> Result<ResourceHandle, Fault> {
    if sample.resource_id.is_none() && sample.metadata.is_empty() {
        return Ok(*handle);
    }
    let namespace = registry.namespace(*handle).unwrap_or(Namespace::STATIC);
    if let Some(id) = sample.resource_id.as_deref().filter(|id| *id != &*base.id) {
        if !id.contains(&*base.id) && !id.contains(base.name()) {
            return Err(Fault::NotItsDevice { id: id.to_string(), of: base.id.to_string() });
        }
        if registry.resource_handle(namespace, id).is_some_and(|other| other != *handle) {
            return Err(Fault::Taken(id.to_string()));
        }
    }
    Ok(registry.intern_device(
        *handle,
        namespace,
        Resource {
            id: sample.resource_id.map_or_else(|| base.id.clone(), Into::into),
            handed: base.handed.clone(),
            owner: base.owner.clone(),
            metadata: base.metadata.clone(),
            extra: Metadata::from_map(&convert::metadata_to_json(sample.metadata)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Owner;

    /// A resource of `local_instances`, interned.
    fn owned(registry: &Registry, id: &str, user: &str) -> Interned {
        let resource = Resource { owner: Owner::of(Some(user), None), ..Resource::bare(id) };
        let handle = registry.intern_in(registry.namespace_of_plugin("local_instances"), resource);
        (handle, registry.resource(handle).unwrap())
    }

    fn on_device(id: &str) -> types::Sample {
        types::Sample {
            meter: 0,
            resource: 0,
            volume: 1.0,
            resource_id: Some(id.into()),
            metadata: vec![types::MetadataEntry { key: "disk_name".into(), value: types::Value::Text("vda".into()) }],
        }
    }

    /// A pollster given instance `a` names a disk of `b`, which has the same owner:
    /// refused (the disk would have taken `a`'s metadata), and `b`'s disk keeps its own.
    #[test]
    fn a_pollster_names_devices_of_its_own_resources_only() {
        let registry = Registry::new();
        let [a, b] = ["aaaa", "bbbb"].map(|id| owned(&registry, id, "same-user"));
        let b_disk = device_resource(&registry, &b, on_device("bbbb-vda")).expect("b names its own disk");
        let refused = device_resource(&registry, &a, on_device("bbbb-vda"));
        assert!(
            matches!(&refused, Err(Fault::NotItsDevice { id, of }) if id == "bbbb-vda" && of == "aaaa"),
            "{refused:?}"
        );
        assert_eq!(registry.resource(b_disk).unwrap().name(), "bbbb", "b's disk is still b's");
        let a_disk = device_resource(&registry, &a, on_device("aaaa-vda")).expect("a names its own disk");
        assert_ne!(a_disk, b_disk);
        // An id that carries `a`'s but is another resource's of the same discoverer.
        owned(&registry, "aaaa-other", "someone-else");
        let sample = types::Sample { metadata: Vec::new(), ..on_device("aaaa-other") };
        assert!(matches!(device_resource(&registry, &a, sample), Err(Fault::Taken(_))));
        // A device id of another resource that happens to carry `a`'s id: `a`'s own
        // entry, the other's device untouched.
        let c = owned(&registry, "aaaa-x", "other");
        let c_disk = device_resource(&registry, &c, on_device("aaaa-x-vda")).unwrap();
        let lookalike = device_resource(&registry, &a, on_device("aaaa-x-vda")).unwrap();
        assert_ne!(lookalike, c_disk);
        assert_eq!(registry.resource(c_disk).unwrap().user_id(), Some("other"), "c's disk keeps its owner");
    }

    /// A vNIC named by its filter reference (Ceilometer's `fref`), which carries the
    /// instance's name, not its id.
    #[test]
    fn a_device_id_may_carry_the_resource_s_name() {
        let registry = Registry::new();
        let resource = Resource { handed: Handed::named("instance-00000001"), ..Resource::bare("11111111-2222") };
        let handle = registry.intern_in(registry.namespace_of_plugin("local_instances"), resource);
        let base = (handle, registry.resource(handle).unwrap());
        let vnic = device_resource(&registry, &base, on_device("nova-instance-instance-00000001-fa163e000001"));
        assert!(vnic.is_ok(), "{vnic:?}");
    }
}
