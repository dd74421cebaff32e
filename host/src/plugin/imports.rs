//! What each kind of plugin may import, and what the pipeline must grant for it: one
//! table, read by the loader (which refuses) and by `pollen plugins inspect` (which
//! marks every import allowed, granted, ungranted or refused).

use super::{PluginKind, CONTRACT_VERSION};
use crate::config::Grant;

/// What one import is for one plugin with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Needs no grant (its kind's own interfaces, `log`, `config`, a WASI that grants
    /// nothing).
    Allowed,
    /// Needs this grant, which the plugin has.
    Granted(Grant),
    /// Needs this grant, which the plugin lacks: it is refused until it is granted.
    Ungranted(Grant),
    /// Never allowed to a plugin of this kind; the text says why or what to do.
    Refused(&'static str),
    /// Another version of Pollen's contract.
    OtherVersion,
}

impl Verdict {
    /// Whether the plugin may load with this import.
    pub fn loads(&self) -> bool {
        matches!(self, Self::Allowed | Self::Granted(_))
    }

    /// A word for it: `allowed`, `granted`, `ungranted`, `refused`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Granted(_) => "granted",
            Self::Ungranted(_) => "ungranted",
            Self::Refused(_) | Self::OtherVersion => "refused",
        }
    }
}

/// The verdict on `import` (`pollen:plugin/hypervisor@0.2.0`, `wasi:http/types@0.2.12`)
/// for a plugin of `kind` granted `grants`.
pub fn verdict(kind: PluginKind, import: &str, grants: &[Grant]) -> Verdict {
    let needs = |grant: Grant| {
        // The catalog's endpoints are reachable with `openstack` alone.
        let has = grants.contains(&grant) || (grant == Grant::Http && grants.contains(&Grant::Openstack));
        if has {
            Verdict::Granted(grant)
        } else {
            Verdict::Ungranted(grant)
        }
    };
    if import.starts_with("wasi:http/") {
        return match kind {
            PluginKind::Transformer => Verdict::Refused("transformers never reach the network; fetch in a pollster"),
            _ => needs(Grant::Http),
        };
    }
    if import.starts_with("wasi:") {
        return Verdict::Allowed;
    }
    let (interface, version) = import.split_once('@').map_or((import, None), |(i, v)| (i, Some(v)));
    let Some(pollen_interface) = interface.strip_prefix("pollen:plugin/") else {
        return Verdict::Refused("plugins may import only `pollen:plugin/*` host interfaces and WASI");
    };
    if version != Some(CONTRACT_VERSION) {
        return Verdict::OtherVersion;
    }
    match (pollen_interface, kind) {
        ("types" | "log" | "config", _) => Verdict::Allowed,
        ("hypervisor", PluginKind::Pollster | PluginKind::Discoverer) => needs(Grant::Hypervisor),
        ("openstack", PluginKind::Pollster | PluginKind::Discoverer) => needs(Grant::Openstack),
        ("samples", PluginKind::Transformer)
        | ("discovered", PluginKind::Discoverer)
        | ("resources" | "sub-meters", PluginKind::Pollster) => Verdict::Allowed,
        ("hypervisor" | "openstack", PluginKind::Transformer) => {
            Verdict::Refused("transformers never reach the hypervisor or the cloud; poll them in a pollster")
        }
        _ => Verdict::Refused(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PluginKind::*;

    /// The table of docs/plugins.md ("What each kind may import"), row by row.
    #[test]
    fn each_kind_imports_what_the_docs_say() {
        let v = |kind, import: &str, grants: &[Grant]| verdict(kind, import, grants).word();
        let contract = |name: &str| format!("pollen:plugin/{name}@{CONTRACT_VERSION}");
        for kind in [Pollster, Discoverer, Transformer] {
            for free in ["types", "log", "config"] {
                assert_eq!(v(kind, &contract(free), &[]), "allowed");
            }
            assert_eq!(v(kind, "wasi:random/random@0.2.12", &[]), "allowed");
            assert_eq!(v(kind, "acme:evil/steal@1.0.0", &[Grant::Hypervisor]), "refused");
            assert_eq!(v(kind, "pollen:plugin/log@0.1.0", &[]), "refused");
        }
        for kind in [Pollster, Discoverer] {
            assert_eq!(v(kind, &contract("hypervisor"), &[]), "ungranted");
            assert_eq!(v(kind, &contract("hypervisor"), &[Grant::Hypervisor]), "granted");
            assert_eq!(v(kind, &contract("openstack"), &[Grant::Hypervisor]), "ungranted");
            assert_eq!(v(kind, &contract("openstack"), &[Grant::Openstack]), "granted");
            assert_eq!(v(kind, "wasi:http/outgoing-handler@0.2.12", &[]), "ungranted");
            assert_eq!(v(kind, "wasi:http/outgoing-handler@0.2.12", &[Grant::Http]), "granted");
            assert_eq!(v(kind, "wasi:http/outgoing-handler@0.2.12", &[Grant::Openstack]), "granted");
            assert_eq!(v(kind, &contract("samples"), &[]), "refused");
        }
        assert_eq!(v(Pollster, &contract("resources"), &[]), "allowed");
        assert_eq!(v(Pollster, &contract("sub-meters"), &[]), "allowed");
        assert_eq!(v(Pollster, &contract("discovered"), &[]), "refused");
        assert_eq!(v(Discoverer, &contract("discovered"), &[]), "allowed");
        assert_eq!(v(Discoverer, &contract("resources"), &[]), "refused");
        assert_eq!(v(Transformer, &contract("samples"), &[]), "allowed");
        let all = [Grant::Hypervisor, Grant::Http, Grant::Openstack];
        for refused in ["hypervisor", "openstack", "resources", "discovered"] {
            assert_eq!(v(Transformer, &contract(refused), &all), "refused");
        }
        assert_eq!(v(Transformer, "wasi:http/types@0.2.12", &all), "refused");
    }
}
