#![warn(missing_docs)]
//! Pollen's host: loads WebAssembly plugins, polls through them, publishes samples.
//!
//! The pieces, each in its module: [`config`] (the pipeline file), [`plugin`] (loading
//! and sandboxing components), [`caps`] (the host functions plugins may call),
//! [`hypervisor`] (libvirt), [`pipeline`] (scheduling and one polling cycle),
//! [`coordination`] (several agents sharing the work),
//! [`publish`] (where samples go), [`store`] (samples kept in a database, for the
//! collector), [`collect`] (the collector), [`registry`] (interned meters and resources).

pub mod allocator;
pub mod api;
pub mod bindings;
pub mod caps;
pub mod cli;
pub mod collect;
pub mod config;
pub mod convert;
pub mod coordination;
pub mod health;
pub mod hypervisor;
pub mod metadata;
pub mod openstack;
pub mod pipeline;
pub mod plugin;
pub mod publish;
pub mod registry;
pub mod sample;
pub mod scaffold;
pub mod self_metrics;
pub mod service;
pub mod store;
pub mod suggest;
