//! `pollen:plugin/log`: plugin log lines into the agent's log, tagged with the plugin,
//! through its rate-limited, escaping [`PluginLog`](crate::plugin::PluginLog).

use crate::bindings::agent::pollen::plugin::log::{Host, Level};
use crate::plugin::{LogLevel, PluginState};

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.context.log.line(level, &message);
    }
}
