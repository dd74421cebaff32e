//! `pollen:plugin/openstack`: the catalog of the agent's Keystone session, for
//! plugins the pipeline grants `openstack`. Denied (as an error value, not a trap) to
//! others. Authenticating is a wait on the network: it does not count against the
//! plugin's own time, and it ends by the call's wall deadline.

use crate::bindings::agent::pollen::plugin::openstack as wit;
use crate::bindings::types::Error;
use crate::openstack::{Keystone, Token};
use crate::plugin::PluginState;
use std::sync::Arc;

impl PluginState {
    /// The session's token, if this plugin may use it.
    fn openstack_token(&mut self) -> Result<(Arc<Keystone>, Arc<Token>), Error> {
        let Some(keystone) = self.context.openstack.clone() else {
            return Err(Error::Host(format!(
                "access denied: the pipeline does not grant `openstack` to plugin `{}`",
                self.name()
            )));
        };
        let deadline = self.http_hooks.wall_deadline;
        let token = match wasmtime_wasi::runtime::in_tokio(tokio::time::timeout_at(deadline, keystone.token())) {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => return Err(self.keystone_failed(error.to_string())),
            Err(_) => return Err(self.keystone_failed("Keystone did not answer before the call's deadline".into())),
        };
        Ok((keystone, token))
    }

    /// `message` for the plugin, and remembered as why its call may fail.
    fn keystone_failed(&mut self, message: String) -> Error {
        self.keystone_failure = Some(message.clone());
        Error::Host(message)
    }
}

impl wit::Host for PluginState {
    fn endpoints(&mut self, service_type: String) -> Result<Vec<wit::Endpoint>, Error> {
        let (keystone, token) = self.openstack_token()?;
        let credentials = keystone.credentials();
        let found = token.catalog.endpoints(&service_type, credentials.interface(), credentials.region_name.as_deref());
        Ok(found
            .into_iter()
            .map(|e| wit::Endpoint {
                service_type: e.service_type,
                url: e.url,
                region: e.region,
                interface: e.interface,
            })
            .collect())
    }

    fn scope(&mut self) -> Result<(String, String), Error> {
        let (_, token) = self.openstack_token()?;
        Ok((token.user_id.clone(), token.project_id.clone()))
    }
}
