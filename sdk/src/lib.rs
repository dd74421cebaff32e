//! # pollen-sdk: write Pollen plugins in Rust
//!
//! A Pollen plugin is a WebAssembly component that the `pollen` agent loads from its
//! plugin directory and runs in a sandbox. There are three kinds, one per WIT world of
//! the `pollen:plugin@0.2.0` contract (the `wit/` folder of the Pollen repository):
//!
//! | kind | module | you implement | then call |
//! |---|---|---|---|
//! | pollster (measures meters) | [`pollster`] | `pollster::Pollster` | `export_pollster!(T)` |
//! | discoverer (finds resources) | [`discoverer`] | `discoverer::Discoverer` | `export_discoverer!(T)` |
//! | transformer (turns samples into samples) | [`transformer`] | `transformer::Transformer` | `export_transformer!(T)` |
//!
//! The export macro embeds that world's type information into your component; the
//! agent decides what your plugin is from what it exports.
//!
//! ## A pollster in a dozen lines
//!
//! `Cargo.toml`:
//! ```toml
//! [package]
//! name = "memory_usage"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! # From a checkout of Pollen's repository (until the crate is on crates.io):
//! pollen-sdk = { path = "/path/to/pollen/sdk" }
//!
//! # What Pollen builds its own plugins with: about 40 % smaller than a plain release
//! # build, and quicker for the agent to compile at load.
//! [profile.release]
//! opt-level = "s"
//! strip = true
//! codegen-units = 1
//! lto = true
//! panic = "abort"
//! ```
//!
//! `src/lib.rs`:
//! ```ignore
//! use pollen_sdk::pollster::*;
//!
//! struct MemoryUsage;
//!
//! impl Pollster for MemoryUsage {
//!     fn describe() -> Vec<Meter> {
//!         vec![Meter::gauge("memory.usage", "MB").discovered_by("local_instances")]
//!     }
//!
//!     fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
//!         Ok(each_domain(&resources, |index, stats| {
//!             let memory = stats.memory_stats.as_ref()?;
//!             let used_kib = memory.available?.saturating_sub(memory.usable.or(memory.unused)?);
//!             Some(vec![Sample::new(0, index, used_kib as f64 / 1024.0)])
//!         }))
//!     }
//! }
//!
//! export_pollster!(MemoryUsage);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`, drop the `.wasm` into
//! the agent's plugin directory, grant it the hypervisor in `pipeline.yaml`
//! (`agent.plugins.memory_usage.grants: [hypervisor]`), and check it with
//! `pollen plugins inspect memory_usage.wasm`.
//!
//! ## What a plugin may do
//! Nothing but compute, unless the pipeline grants more: no files, no network, no
//! environment, and a frozen clock. The host functions are `log`, `config` (the
//! plugin's `params` from the pipeline file), `hypervisor` (pollsters and
//! discoverers, when granted), [`http`] (pollsters and discoverers granted `http`,
//! to the origins the pipeline lists), `resources` and `sub-meters` (pollsters naming
//! their own resources, and a multi-metric pollster's meters:
//! [`pollster::name_resource`], [`pollster::name_sub_meter`]) and `samples`
//! (transformers). Each call runs under a
//! memory limit and a CPU deadline; a plugin that traps or overruns is thrown away and
//! re-made for the next cycle.
#![warn(missing_docs)]

extern crate self as pollen_sdk;

#[doc(hidden)]
pub use wit_bindgen;

mod helpers;

pub mod pollster;

pub mod discoverer;

pub mod transformer;

pub mod http;

#[cfg(feature = "openstack")]
pub mod openstack;

pub mod expr;

mod recent;
pub use recent::{key_of, Recent};

#[cfg(feature = "nova")]
pub mod nova;
