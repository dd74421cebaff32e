//! `pollen:plugin/log`: plugin log lines into the agent's log, tagged with the plugin.

use super::MAX_GUEST_STRING;
use crate::bindings::agent::pollen::plugin::log::{Host, Level};
use crate::plugin::PluginState;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        let message = truncate(&message, MAX_GUEST_STRING);
        let plugin = self.name();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
