//! What the benches share (each uses part of it).
#![allow(dead_code)]

/// Peak resident memory (`VmHWM`) of a process (`self`, or a pid), MiB.
pub fn peak_rss_mib(process: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Cycles measured after the warm-up one.
pub const CYCLES: u32 = 3;

/// CPU seconds of `pid` and of its children it waited for.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: utime is the 14th field of the line.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11..15].iter().map(|f| f.parse::<f64>().unwrap()).sum();
    // SAFETY: sysconf only reads a constant of the system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Stops a child with SIGTERM and waits for it.
pub fn stop(mut child: Child) {
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

/// What `pollen run` cost per cycle.
pub struct RunFigures {
    /// Samples per cycle.
    pub samples: u64,
    /// CPU seconds per cycle (user + system).
    pub cpu: f64,
    /// Wall time of a cycle, seconds (from its `cycle done` line).
    pub wall: f64,
    /// Peak RSS, MiB.
    pub peak: f64,
}

/// `pollen run --config config` (this build's binary): samples, CPU, wall time and
/// peak over [`CYCLES`] cycles after a warm-up one, counted from its own `cycle done`
/// log lines; `None` if it does not get there within `patience`.
pub fn run_pollen(config: &Path, patience: Duration) -> Option<RunFigures> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let (lines, cycles) = mpsc::channel();
    let stderr = child.stderr.take()?;
    std::thread::spawn(move || {
        let field =
            |line: &str, name: &str| line.split_whitespace().find_map(|f| f.strip_prefix(name)?.parse::<u64>().ok());
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // The shipped pipeline's sources share one cycle (one interval).
            if let Some(rest) = line.split("cycle done").nth(1) {
                let _ = lines.send((field(rest, "samples=").unwrap_or(0), field(rest, "elapsed_ms=").unwrap_or(0)));
            } else if line.contains("ERROR") {
                eprintln!("{line}");
            }
        }
    });
    let started = Instant::now();
    let next = || cycles.recv_timeout(patience.saturating_sub(started.elapsed())).ok();
    next()?;
    let before = cpu_seconds(child.id());
    let (mut samples, mut wall_ms) = (0, 0);
    for _ in 0..CYCLES {
        let (count, elapsed) = next()?;
        samples += count;
        wall_ms += elapsed;
    }
    let cpu = (cpu_seconds(child.id()) - before) / f64::from(CYCLES);
    let peak = peak_rss_mib(&child.id().to_string());
    stop(child);
    Some(RunFigures {
        samples: samples / u64::from(CYCLES),
        cpu,
        wall: wall_ms as f64 / 1000.0 / f64::from(CYCLES),
        peak,
    })
}
