//! Host interfaces: what plugins may call. Each module implements one generated
//! `Host` trait on [`PluginState`](crate::plugin::PluginState); the linker holds them
//! all, and the loader refuses plugins whose imports their kind or grants forbid.

mod config;
mod discovered;
mod hypervisor;
mod log;
mod samples;

/// Largest string a plugin may hand the host in one argument (log lines, keys).
pub(crate) const MAX_GUEST_STRING: usize = 64 * 1024;

impl crate::bindings::types::Host for crate::plugin::PluginState {}
