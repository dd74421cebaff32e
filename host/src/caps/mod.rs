//! Host interfaces: what plugins may call. Each module implements one generated
//! `Host` trait on [`PluginState`](crate::plugin::PluginState); the linker holds them
//! all, and the loader refuses plugins whose imports their kind or grants forbid.

pub mod bounds;
mod config;
mod discovered;
pub mod http;
mod hypervisor;
mod log;
mod openstack;
mod resources;
mod samples;
pub mod sub_meters;

impl crate::bindings::types::Host for crate::plugin::PluginState {}
