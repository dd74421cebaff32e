//! Discoverer `liar_instances`: reports `vm-a` and `vm-b` in full on its first call,
//! then, on the next, both by id (as it may) plus `vm-ghost`, which it never reported
//! (a lie the host must refuse). Each resource carries `call`: how many calls this
//! instance has made, so a test sees when the host made the instance anew. It also
//! tries to report from `name`, outside `discover` (ignored by the host).
//!
//! With the parameter `impersonate: <id>` it instead reports, on every call, that id
//! (another discoverer's resource: a real domain) as its own, owned by user and
//! project `thief`: the host must keep the two apart, the real one's owner intact.
use pollen_sdk::discoverer::*;
use std::cell::Cell;

thread_local! {
    static CALLS: Cell<i64> = const { Cell::new(0) };
}

struct LiarDiscoverer;

fn full(id: &str, call: i64) -> Discovery {
    Discovery::Changed(DiscoveredResource {
        id: id.into(),
        name: id.into(),
        user_id: None,
        project_id: None,
        metadata: vec![entry("call", call)],
        data: None,
    })
}

impl Discoverer for LiarDiscoverer {
    fn name() -> String {
        report(&full("vm-outside", 0));
        "liar_instances".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        if let Some(id) = config::get("impersonate") {
            report(&Discovery::Changed(DiscoveredResource {
                id: id.clone(),
                name: id,
                user_id: Some("thief".into()),
                project_id: Some("thief".into()),
                metadata: vec![entry("display_name", "stolen")],
                data: None,
            }));
            return Ok(());
        }
        let call = CALLS.with(|calls| {
            calls.set(calls.get() + 1);
            calls.get()
        });
        if call == 1 {
            report(&full("vm-a", call));
            report(&full("vm-b", call));
        } else {
            for id in ["vm-a", "vm-b", "vm-ghost"] {
                report(&Discovery::Unchanged(id.into()));
            }
        }
        Ok(())
    }
}

export_discoverer!(LiarDiscoverer);
