//! systemd's service protocol (`Type=notify`), through the `sd-notify` crate: `READY=1`
//! once the agent or collector serves, `RELOADING=1` then `READY=1` around a reload,
//! `STOPPING=1` at shutdown, a `STATUS=` line, and `WATCHDOG=1` at half the unit's
//! `WatchdogSec` from a task of the async runtime, so that a runtime that stops making
//! progress stops feeding it and systemd restarts the process. Without
//! `NOTIFY_SOCKET` (not run by systemd) each call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// The service is up; `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins.
pub fn reloading() {
    notify(&[NotifyState::Reloading, NotifyState::Status("reloading the configuration")]);
}

/// The service is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping: flushing publishers")]);
}

/// Starts feeding systemd's watchdog, if the unit has one (`WATCHDOG_USEC`), at half
/// its interval, from the current async runtime.
pub fn feed_watchdog() {
    // As libsystemd's `sd_watchdog_enabled`: a `WATCHDOG_PID` that is not this
    // process's means the watchdog is another's; none means it is ours.
    let usec: u64 = match std::env::var("WATCHDOG_USEC").ok().and_then(|u| u.parse().ok()) {
        Some(usec) if usec > 0 => usec,
        _ => return,
    };
    let pid = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok());
    if pid.is_some_and(|pid| pid != std::process::id()) {
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(10));
    tracing::info!(every_ms = period.as_millis() as u64, "feeding systemd's watchdog");
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
}
