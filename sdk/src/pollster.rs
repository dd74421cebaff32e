//! The `pollster-plugin` world: implement [`Pollster`] and export it with
//! [`export_pollster!`]`(YourType)`.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "pollster-plugin",
        // The WASI interfaces it imports (wasi:http and what it uses); the other
        // worlds share these.
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_pollster",
        default_bindings_module: "pollen_sdk::pollster::bindings",
        runtime_path: "pollen_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing [`Pollster`] as this component's pollster.
pub use bindings::export_pollster;
/// The trait a pollster implements (the WIT interface `pollen:plugin/pollster`).
pub use bindings::exports::pollen::plugin::pollster::Guest as Pollster;
pub use bindings::pollen::plugin::config;
pub use bindings::pollen::plugin::hypervisor;
pub use bindings::pollen::plugin::types::{
    DiscoveredResource, Error, MetadataEntry, Meter, MeterType, ResourceInfo as Resource, Sample, Value,
};

/// Names a resource for this `poll` call's samples (an API pollster's, found in its
/// responses; a host-level meter's one resource) and returns the index its samples
/// give as their `resource`; `None` if the host refused it (over its bounds). The
/// host attaches its user, project and metadata to its samples, as for a
/// discoverer's.
pub fn name_resource(resource: &DiscoveredResource) -> Option<u32> {
    bindings::pollen::plugin::resources::add(resource)
}
/// Names this host as a resource of this `poll` call, for a host-level meter (one
/// described without a discoverer), and returns its index; `None` if the host refused
/// it. Its id is the agent's host name, or the plugin's `host` parameter.
pub fn this_host() -> Option<u32> {
    let host = config::get("host").unwrap_or_else(|| "localhost".into());
    name_resource(&DiscoveredResource {
        id: host.clone(),
        name: host,
        user_id: None,
        project_id: None,
        metadata: Vec::new(),
        data: None,
    })
}

/// Names the sub-meter of described meter `meter` for `part` (a multi-metric
/// pollster's: `prefix.{category}` and `get_obj` give `prefix.get_obj`, with the
/// described meter's type and unit) and returns the index its samples give as their
/// `meter`; the same index for the same part again. `None` if the host refused it
/// (no `{...}` placeholder, a part that is not a word, over its bound).
pub fn name_sub_meter(meter: u32, part: &str) -> Option<u32> {
    bindings::pollen::plugin::sub_meters::add(meter, part)
}

crate::helpers::hypervisor_helpers!();
crate::helpers::meter_helpers!();
crate::helpers::sample_helpers!();
crate::helpers::value_helpers!();
#[cfg(feature = "openstack")]
crate::helpers::json_helpers!();
crate::helpers::metadata_helpers!();
crate::helpers::log_helpers!();

impl From<crate::http::HttpError> for Error {
    /// A failed request fails the call, with its reason as the host logs it.
    fn from(error: crate::http::HttpError) -> Self {
        Error::Host(error.to_string())
    }
}

/// One sample of `meter` per resource whose discoverer gave a number as its `data`
/// (an image's size, a volume's): the resources without one are left out.
pub fn samples_from_data(meter: u32, resources: &[Resource]) -> Vec<Sample> {
    resources
        .iter()
        .enumerate()
        .filter_map(|(index, resource)| {
            let volume: f64 = resource.data.as_deref()?.trim().parse().ok()?;
            Some(Sample::new(meter, index, volume))
        })
        .collect()
}
