//! The time, for `extra_metadata_fields_cache_seconds`: the sandbox's clock is frozen,
//! so the cache goes by the APIs' own clocks, the `Date` of the latest response
//! (RFC 9110 §6.6.1: origin servers with a clock send it). Until a response has
//! one, nothing is kept past the poll.

use std::cell::Cell;

thread_local! {
    static LATEST: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Notes a response's `Date` header.
pub(crate) fn saw(date: &str) {
    if let Some(seconds) = pollen_dynamic::http_date::parse(date) {
        LATEST.with(|latest| latest.set(Some(seconds)));
    }
}

/// Seconds since the epoch, as the latest response's `Date` said.
pub(crate) fn now() -> Option<u64> {
    LATEST.with(Cell::get)
}
