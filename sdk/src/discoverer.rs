//! The `discoverer-plugin` world: implement [`Discoverer`] and export it with
//! [`export_discoverer!`]`(YourType)`.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "discoverer-plugin",
        pub_export_macro: true,
        export_macro_name: "export_discoverer",
        default_bindings_module: "pollen_sdk::discoverer::bindings",
        runtime_path: "pollen_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing [`Discoverer`] as this component's discoverer.
pub use bindings::export_discoverer;
/// The trait a discoverer implements (the WIT interface `pollen:plugin/discoverer`).
pub use bindings::exports::pollen::plugin::discoverer::Guest as Discoverer;
pub use bindings::pollen::plugin::config;
pub use bindings::pollen::plugin::hypervisor;
pub use bindings::pollen::plugin::types::{DiscoveredResource, Error, MetadataEntry, Value};
crate::helpers::hypervisor_helpers!();
crate::helpers::value_helpers!();
crate::helpers::metadata_helpers!();
crate::helpers::log_helpers!();
