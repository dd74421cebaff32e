//! Floods the agent's log from `poll`: `lines` (default 20000) lines of 64 KiB each
//! through `log`, the same on stderr, every one of them trying to forge an agent line
//! of its own after a newline; then returns `samples` (default 100000) samples, all
//! malformed (a meter index it never described). The host must rate-limit, cut and
//! escape the lines, and log the refusals once per cycle, not once per sample. A few
//! lines on stdout too, as Python's `print` writes them.
use pollen_sdk::pollster::*;
use std::io::Write;

struct LogFlood;

/// What each line tries to slip into the agent's log after its newline.
const FORGED: &str = "2026-12-01T00:00:00.000000Z ERROR pollen_host::forged: plugin=cpu the forged line";

fn param(name: &str, default: usize) -> usize {
    config::get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Pollster for LogFlood {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.flood", "1").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let line = format!("flood\n{FORGED}\n{}", "x".repeat(64 * 1024));
        for _ in 0..param("lines", 20_000) {
            log::error(&line);
        }
        for _ in 0..4 {
            println!("stdout flood\n{FORGED}");
        }
        let mut stderr = std::io::stderr();
        for _ in 0..16 {
            let _ = writeln!(stderr, "stderr flood\n{FORGED}");
        }
        let count = param("samples", 100_000);
        Ok((0..count).map(|i| Sample::new(7, i % resources.len().max(1), 1.0)).collect())
    }
}

export_pollster!(LogFlood);
