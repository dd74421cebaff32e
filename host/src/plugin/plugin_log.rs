//! A plugin's lines in the agent's log (its `log` calls and its stderr): at most
//! `log_lines_per_second` per plugin (with bursts of ten seconds' worth), each cut to
//! [`MAX_LINE`] bytes, with newlines and other control characters escaped so that no
//! plugin can forge a line of the agent's own. What is held back is counted, and the
//! count logged with the next line let through.

use crate::bindings::agent::pollen::plugin::log::Level;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest line a plugin may log, bytes (longer ones are cut, and say so).
pub const MAX_LINE: usize = 2048;

/// Seconds' worth of lines a plugin may log at once.
const BURST_SECONDS: f64 = 10.0;

/// One plugin's way into the agent's log, shared by all its instances.
pub struct PluginLog {
    plugin: Arc<str>,
    budget: Mutex<Budget>,
    /// Lines held back since the last one let through (read without the lock: a call
    /// that logged nothing costs one atomic load).
    suppressed: AtomicU64,
}

struct Budget {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl PluginLog {
    /// The log of plugin `plugin`, letting through `per_second` lines a second.
    pub fn new(plugin: Arc<str>, per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        let budget = Budget { per_second, tokens: per_second * BURST_SECONDS, refilled: Instant::now() };
        Self { plugin, budget: Mutex::new(budget), suppressed: AtomicU64::new(0) }
    }

    /// Logs `text` at `level` with the plugin's name, escaped and cut, if the plugin's
    /// budget allows; otherwise counts it.
    pub fn line(&self, level: Level, text: &str) {
        let suppressed = {
            let mut budget = self.budget.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(budget.refilled).as_secs_f64() * budget.per_second;
            budget.tokens = (budget.tokens + refill).min(budget.per_second * BURST_SECONDS);
            budget.refilled = now;
            if budget.tokens < 1.0 {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            budget.tokens -= 1.0;
            self.suppressed.swap(0, Ordering::Relaxed)
        };
        let plugin = &*self.plugin;
        Self::report(plugin, suppressed);
        let message = plugin_text(text, MAX_LINE);
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    /// Logs how many lines were held back since the last line let through, if any (at
    /// the end of every call, so that a flood is reported even if nothing follows it).
    pub fn report_held_back(&self) {
        if self.suppressed.load(Ordering::Relaxed) > 0 {
            Self::report(&self.plugin, self.suppressed.swap(0, Ordering::Relaxed));
        }
    }

    fn report(plugin: &str, suppressed: u64) {
        if suppressed > 0 {
            tracing::warn!(plugin, suppressed, "plugin log lines held back (over its log_lines_per_second)");
        }
    }
}

/// Text that came from a plugin, fit for one log line: control characters (newlines,
/// carriage returns, escape sequences) escaped as `\n`, `\u{1b}`, and at most `max`
/// bytes of the original kept (cut at a character boundary, with a note).
pub fn plugin_text(text: &str, max: usize) -> Cow<'_, str> {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let kept = &text[..end];
    if end == text.len() && !kept.chars().any(char::is_control) {
        return Cow::Borrowed(kept);
    }
    let mut escaped = String::with_capacity(kept.len() + 16);
    for c in kept.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if end < text.len() {
        escaped.push_str(&format!("… ({} bytes cut)", text.len() - end));
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_so_no_line_can_be_forged() {
        let forged = "done\n2026-12-01T00:00:00Z ERROR pollen_host: plugin=cpu fake\r\x1b[31m";
        let text = plugin_text(forged, MAX_LINE);
        assert!(!text.contains('\n') && !text.contains('\r') && !text.contains('\x1b'), "{text}");
        assert_eq!(text, "done\\n2026-12-01T00:00:00Z ERROR pollen_host: plugin=cpu fake\\r\\u{1b}[31m");
        assert!(matches!(plugin_text("plain text", MAX_LINE), Cow::Borrowed("plain text")));
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_and_say_so() {
        let long = "é".repeat(2000);
        let text = plugin_text(&long, 3001);
        assert!(text.starts_with(&"é".repeat(1500)) && text.ends_with("… (1000 bytes cut)"), "{text}");
    }

    #[test]
    fn the_budget_lets_a_burst_through_then_counts_what_it_holds_back() {
        let log = PluginLog::new(Arc::from("flood"), 2);
        for _ in 0..1000 {
            log.line(Level::Info, "line");
        }
        // Two lines a second, bursts of ten seconds' worth: 20 let through (a few more
        // if the loop is slow enough to earn them), the rest counted.
        let suppressed = log.suppressed.load(Ordering::Relaxed);
        assert!((975..=980).contains(&suppressed), "{suppressed}");
    }
}
