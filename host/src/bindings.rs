//! The host side of the WIT contract (`wit/`, `pollen:plugin@0.2.0`): the only
//! place bindings are generated. The `agent` world yields the host interfaces (one
//! `Host` trait each, implemented in [`crate::caps`]); the three plugin worlds reuse
//! them and add their exports.

/// Host interfaces: `hypervisor`, `log`, `config`, `samples`, and the shared types.
#[allow(missing_docs)]
pub mod agent {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "agent",
    });
}

/// The `pollster-plugin` world.
#[allow(missing_docs)]
pub mod pollster {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "pollster-plugin",
        with: {
            "pollen:plugin": crate::bindings::agent::pollen::plugin,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `discoverer-plugin` world.
#[allow(missing_docs)]
pub mod discoverer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "discoverer-plugin",
        with: {
            "pollen:plugin": crate::bindings::agent::pollen::plugin,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `transformer-plugin` world.
#[allow(missing_docs)]
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer-plugin",
        with: { "pollen:plugin": crate::bindings::agent::pollen::plugin },
    });
}

pub use agent::pollen::plugin::types;
