//! `pollen:plugin/log`: plugin log lines into the agent's log, tagged with the plugin,
//! through its rate-limited, escaping [`PluginLog`](crate::plugin::PluginLog).

use crate::bindings::agent::pollen::plugin::log::{Host, Level};
use crate::plugin::PluginState;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        self.context.log.line(level, &message);
    }
}
