//! `pollen:plugin/config`: the plugin's own `params` from the pipeline file.

use crate::bindings::agent::pollen::plugin::config::Host;
use crate::plugin::PluginState;

impl Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        self.context.params.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.context.params.to_vec()
    }
}
