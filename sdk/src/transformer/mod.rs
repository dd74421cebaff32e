//! The `transformer-plugin` world: implement [`Transformer`] and export it with
//! [`export_transformer!`]`(YourType)`.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
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

mod lookups;
mod params;
pub use lookups::{Lookups, Owner};
pub use params::{meter_type_param, number_param, Params};

#[cfg(feature = "conversion")]
mod conversion;
#[cfg(feature = "conversion")]
pub use conversion::{Conversion, Mapping};

/// A transformer's state, set by `configure` and used by the other calls; keep it in
/// a `thread_local!` (`static STATE: Configured<State> = const { Configured::new() };`).
pub struct Configured<S>(std::cell::RefCell<Option<S>>);

impl<S> Configured<S> {
    /// Empty until `configure` sets it.
    pub const fn new() -> Self {
        Self(std::cell::RefCell::new(None))
    }

    /// Sets the state (in `configure`).
    pub fn set(&self, state: S) {
        *self.0.borrow_mut() = Some(state);
    }

    /// Runs `f` on the state; an error if `configure` has not run.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> Result<R, Error>) -> Result<R, Error> {
        match self.0.borrow_mut().as_mut() {
            Some(state) => f(state),
            None => Err(Error::Other("called before configure".into())),
        }
    }
}

impl<S> Default for Configured<S> {
    fn default() -> Self {
        Self::new()
    }
}
