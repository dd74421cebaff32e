//! The `transformer-plugin` world: implement [`Transformer`] and export it with
//! [`export_transformer!`]`(YourType)`.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transformer-plugin",
        pub_export_macro: true,
        export_macro_name: "export_transformer",
        default_bindings_module: "pollen_sdk::transformer::bindings",
        runtime_path: "pollen_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing [`Transformer`] as this component's transformer.
pub use bindings::export_transformer;
/// The trait a transformer implements (the WIT interface `pollen:plugin/transformer`).
pub use bindings::exports::pollen::plugin::transformer::Guest as Transformer;
pub use bindings::pollen::plugin::config;
pub use bindings::pollen::plugin::samples;
pub use bindings::pollen::plugin::types::{Error, Meter, MeterType, SampleRef, Value};
crate::helpers::meter_helpers!();
crate::helpers::value_helpers!();
crate::helpers::log_helpers!();
