//! The `discoverer-plugin` world: implement [`Discoverer`] and export it with
//! [`export_discoverer!`]`(YourType)`.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "discoverer-plugin",
        with: {
            "wasi:http/types@0.2.12": crate::pollster::bindings::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": crate::pollster::bindings::wasi::http::outgoing_handler,
            "wasi:io/poll@0.2.12": crate::pollster::bindings::wasi::io::poll,
            "wasi:io/error@0.2.12": crate::pollster::bindings::wasi::io::error,
            "wasi:io/streams@0.2.12": crate::pollster::bindings::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": crate::pollster::bindings::wasi::clocks::monotonic_clock,
        },
        pub_export_macro: true,
        export_macro_name: "export_discoverer",
        default_bindings_module: "pollen_sdk::discoverer::bindings",
        runtime_path: "pollen_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing [`Discoverer`] as this component's discoverer.
pub use bindings::export_discoverer;
/// The trait a discoverer implements (the WIT interface `pollen:plugin/discoverer`).
pub use bindings::exports::pollen::plugin::discoverer::Guest as Discoverer;
pub use bindings::pollen::plugin::config;
/// `report(&item)`: reports one resource during `discover`.
pub use bindings::pollen::plugin::discovered::report;
pub use bindings::pollen::plugin::hypervisor;
pub use bindings::pollen::plugin::types::{DiscoveredResource, Discovery, Error, MetadataEntry, Value};
crate::helpers::hypervisor_helpers!();
crate::helpers::value_helpers!();
#[cfg(feature = "openstack")]
crate::helpers::json_helpers!();
crate::helpers::metadata_helpers!();
crate::helpers::log_helpers!();

/// What this instance of a discoverer reported in its previous call, so that it
/// reports a resource in full only when it is new or changed, and by id otherwise (the
/// host keeps the rest: a large host's unchanged resources cost almost nothing). Call
/// [`Reports::next_call`] at the start of each `discover`, then [`Reports::report`] for
/// each resource present.
#[derive(Debug)]
pub struct Reports {
    /// A hash of what each resource was made from, for those reported in the previous
    /// call (the host knows only those).
    /// By [`crate::key_of`] the id: a key that meets another's could at worst report a
    /// resource unchanged that the host then refuses (it knows the ids it was sent).
    reported: crate::Recent<u64, u64>,
}

impl Default for Reports {
    fn default() -> Self {
        Self { reported: crate::Recent::new(1) }
    }
}

impl Reports {
    /// Nothing reported yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a call: what was not reported in the previous one is forgotten.
    pub fn next_call(&mut self) {
        self.reported.next_call();
    }

    /// Reports resource `id` (the id of the resource `make` builds): by id alone if
    /// the previous call reported it made from the same `source` (anything the
    /// resource is made from: an XML stamp, a state), else in full, as `make` builds
    /// it (none: the resource is left out, and `false` returned).
    pub fn report<S: std::hash::Hash + ?Sized>(
        &mut self,
        id: &str,
        source: &S,
        make: impl FnOnce() -> Option<DiscoveredResource>,
    ) -> bool {
        let (key, hash) = (crate::key_of(id), crate::key_of(source));
        if self.reported.get(&key) == Some(&hash) {
            report(&Discovery::Unchanged(id.to_string()));
            return true;
        }
        self.reported.remove(&key);
        let Some(resource) = make() else { return false };
        self.reported.insert(key, hash);
        report(&Discovery::Changed(resource));
        true
    }
}

impl From<crate::http::HttpError> for Error {
    /// A failed request fails the call, with its reason as the host logs it.
    fn from(error: crate::http::HttpError) -> Self {
        Error::Host(error.to_string())
    }
}

/// Reports resources as the host wants them: in full when new or changed since this
/// instance's previous `discover` call, by id otherwise (a listing of ten thousand
/// unchanged images then costs the host almost nothing). Keep one in the instance
/// (a `thread_local!`), call [`Changes::report`] for each resource found, then
/// [`Changes::finish`].
#[derive(Default)]
pub struct Changes {
    previous: std::collections::HashMap<String, u64>,
    current: std::collections::HashMap<String, u64>,
}

impl Changes {
    /// An empty record (everything is reported in full first).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports resource `id`, made by `full` if `what` (everything it is made from,
    /// e.g. the API's JSON text) differs from the previous call's.
    pub fn report(&mut self, id: &str, what: &[u8], full: impl FnOnce() -> DiscoveredResource) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        what.hash(&mut hasher);
        let fingerprint = hasher.finish();
        if self.previous.get(id) == Some(&fingerprint) {
            report(&Discovery::Unchanged(id.to_string()));
        } else {
            report(&Discovery::Changed(full()));
        }
        self.current.insert(id.to_string(), fingerprint);
    }

    /// Ends a call: what it reported is what the next one compares with.
    pub fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

/// A discoverer of an OpenStack listing (feature `openstack`): the first endpoint of
/// `service_type` in the catalog, `listing(endpoint)` read page by page
/// ([`crate::openstack::list`], the list under `collection`, `headers` on every
/// request), and each item with an `id` reported through `resource_of` (in full only
/// when new or changed since the previous call). A cloud without that service is
/// skipped with one warning, not an error every cycle.
#[cfg(feature = "openstack")]
pub fn discover_listing(
    service_type: &str,
    listing: impl FnOnce(&str) -> String,
    collection: &str,
    headers: &[(&str, &str)],
    resource_of: impl Fn(&str, &serde_json::Value) -> DiscoveredResource,
) -> Result<(), Error> {
    discover_listing_by(service_type, listing, collection, headers, id_field, resource_of)
}

/// An item's `id`, if it has one as text: the resource id of most OpenStack listings.
#[cfg(feature = "openstack")]
pub fn id_field(item: &serde_json::Value) -> Option<String> {
    item.get("id").and_then(serde_json::Value::as_str).map(str::to_string)
}

/// A discoverer of a Cinder listing, as Ceilometer's: `path` under the endpoint of the
/// plugin's `service_type` (default `volumev3`), at Ceilometer's microversion, reported
/// as [`discover_listing_by`] does.
#[cfg(feature = "openstack")]
pub fn discover_cinder_listing(
    path: &str,
    collection: &str,
    id_of: impl Fn(&serde_json::Value) -> Option<String>,
    resource_of: impl Fn(&str, &serde_json::Value) -> DiscoveredResource,
) -> Result<(), Error> {
    use crate::openstack::cinder;
    let listing = |endpoint: &str| format!("{endpoint}/{path}");
    discover_listing_by(&cinder::service_type(), listing, collection, &[cinder::MICROVERSION], id_of, resource_of)
}

/// The same for items whose resource id is made from their fields (a Cinder pool's
/// `name`, a service's `binary@host`): `id_of` makes it, an item without one is left
/// out.
#[cfg(feature = "openstack")]
pub fn discover_listing_by(
    service_type: &str,
    listing: impl FnOnce(&str) -> String,
    collection: &str,
    headers: &[(&str, &str)],
    id_of: impl Fn(&serde_json::Value) -> Option<String>,
    resource_of: impl Fn(&str, &serde_json::Value) -> DiscoveredResource,
) -> Result<(), Error> {
    use std::cell::Cell;
    thread_local! {
        static WARNED: Cell<bool> = const { Cell::new(false) };
    }
    let host_error = |error: crate::openstack::ListError| Error::Host(error.to_string());
    let Some(endpoint) = crate::openstack::endpoint(service_type).map_err(host_error)? else {
        if !WARNED.replace(true) {
            log::warn(&format!(
                "the catalog has no `{service_type}` service on this interface and region; nothing is discovered"
            ));
        }
        return Ok(());
    };
    let items = crate::openstack::list(&listing(&endpoint), collection, headers).map_err(host_error)?;
    report_items(&items, id_of, resource_of);
    Ok(())
}

/// Reports each of an API's items whose id `id_of` makes, through `resource_of` in
/// full only when it is new or changed since this instance's previous call (feature
/// `openstack`); what the discoverers of OpenStack listings share.
#[cfg(feature = "openstack")]
pub fn report_items(
    items: &[serde_json::Value],
    id_of: impl Fn(&serde_json::Value) -> Option<String>,
    resource_of: impl Fn(&str, &serde_json::Value) -> DiscoveredResource,
) {
    thread_local! {
        static CHANGES: std::cell::RefCell<Changes> = std::cell::RefCell::new(Changes::new());
    }
    CHANGES.with(|changes| {
        let mut changes = changes.borrow_mut();
        for item in items {
            let Some(id) = id_of(item) else { continue };
            changes.report(&id, item.to_string().as_bytes(), || resource_of(&id, item));
        }
        changes.finish();
    });
}
