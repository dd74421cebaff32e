//! # pollen-dynamic: Ceilometer's dynamic pollsters, read as they are
//!
//! Ceilometer lets operators define a meter over any REST API in YAML
//! (`pollsters.d/*.yaml`, "dynamic pollsters",
//! `ceilometer/polling/dynamic_pollster.py`). This crate is what Pollen shares
//! between the host, which reads and checks those files (`pollen validate`), and the
//! `dynamic` plugin, which runs them in the sandbox:
//!
//! - [`Definition`]: the schema, with Ceilometer's defaults, checked whole (unknown
//!   keys with a did-you-mean, types, required keys, every expression parsed);
//! - [`expr`]: the safe expression language that replaces Python's `eval`;
//! - [`Attribute`]: Ceilometer's `key.path | operation | ...` references;
//! - [`extract`]: how a response becomes entries, and entries samples.
#![warn(missing_docs)]

mod attribute;
pub mod definition;
pub mod expr;
pub mod extract;
pub mod http_date;
mod xml;

pub use attribute::Attribute;
pub use definition::{Definition, DefinitionError};
