//! Compiling a component to native code within a time and memory budget.
//!
//! Cranelift cannot be interrupted, and what it needs grows with the code it is given
//! (the largest plugin the loader's caps let through, 64 functions of 255 KiB, took
//! 88 s and 690 MiB). The `pollen` binary therefore compiles in a child process of
//! its own (`pollen compile-plugin`, hidden): the child caps its own data memory
//! (`RLIMIT_DATA`) before it reads the component, and the agent kills it at the load
//! deadline. Past either bound the plugin is refused and nothing of it is left
//! running. A library user that has not called [`compile_in_child_processes`]
//! compiles on a thread: the deadline still holds for the agent (the thread finishes
//! on its own, its result thrown away), the memory budget does not.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::Engine;

/// What compiling one component may take.
#[derive(Debug, Clone, Copy)]
pub struct CompileBudget {
    /// Wall time.
    pub timeout: Duration,
    /// The compiler's data memory, bytes (child processes only).
    pub memory: u64,
}

/// Why a component could not be made.
#[derive(Debug)]
pub enum CompileError {
    /// Compiling took longer than the deadline.
    TimedOut(Duration),
    /// The compiler needed more memory than its budget (bytes).
    OverMemory(u64),
    /// wasmtime refused it.
    Wasmtime(wasmtime::Error),
}

impl From<wasmtime::Error> for CompileError {
    fn from(error: wasmtime::Error) -> Self {
        Self::Wasmtime(error)
    }
}

/// The program run as `<program> compile-plugin`, if set.
static CHILD_COMPILER: OnceLock<PathBuf> = OnceLock::new();

/// Compiles every component from now on in a child process running `program`
/// (a `pollen` binary: its `compile-plugin` subcommand). Set once, at start; later
/// calls change nothing.
pub fn compile_in_child_processes(program: PathBuf) {
    let _ = CHILD_COMPILER.set(program);
}

/// This process's own executable, as the child compiler: `/proc/self/exe` on Linux,
/// which runs the same build even after the file was replaced on disk (an upgrade),
/// so its compiled code matches this engine.
pub fn this_executable() -> std::io::Result<PathBuf> {
    let proc_self = Path::new("/proc/self/exe");
    if proc_self.exists() {
        return Ok(proc_self.to_path_buf());
    }
    std::env::current_exe()
}

/// The precompiled bytes of `bytes` for `engine` (whose configuration must be
/// [`super::engine::engine_config`]'s), within `budget`; `label` names the plugin in
/// the child's command line (`ps` shows what is compiling).
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    budget: CompileBudget,
    label: &Path,
) -> Result<Vec<u8>, CompileError> {
    match CHILD_COMPILER.get() {
        Some(program) => compile_in_child(program, bytes, budget, label),
        None => compile_on_thread(engine, bytes, budget.timeout),
    }
}

fn compile_on_thread(engine: &Engine, bytes: &[u8], timeout: Duration) -> Result<Vec<u8>, CompileError> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    std::thread::Builder::new()
        .name("pollen-compile".into())
        .spawn(move || {
            let _ = done.send(engine.precompile_component(&bytes));
        })
        .map_err(|error| CompileError::Wasmtime(error.into()))?;
    match result.recv_timeout(timeout) {
        Ok(native) => Ok(native?),
        Err(RecvTimeoutError::Timeout) => Err(CompileError::TimedOut(timeout)),
        Err(RecvTimeoutError::Disconnected) => {
            Err(wasmtime::format_err!("the compiler failed (its thread panicked)").into())
        }
    }
}

fn compile_in_child(
    program: &Path,
    bytes: &[u8],
    budget: CompileBudget,
    label: &Path,
) -> Result<Vec<u8>, CompileError> {
    let failed = |error: std::io::Error| {
        CompileError::Wasmtime(wasmtime::format_err!("cannot run the compiler `{}`: {error}", program.display()))
    };
    let mut child = Command::new(program)
        .arg("compile-plugin")
        .arg("--memory-bytes")
        .arg(budget.memory.to_string())
        .arg("--for")
        .arg(label)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    // Each pipe on a thread of its own; they end when the child does.
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let input = bytes.to_vec();
    let feeding = std::thread::spawn(move || {
        // A child that dies early closes the pipe: its status says why.
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let draining = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(stderr) = stderr {
            let _ = stderr.take(64 * 1024).read_to_end(&mut text);
        }
        text
    });
    let (done, native) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut native = Vec::new();
        let read = stdout.map_or(Ok(0), |mut stdout| stdout.read_to_end(&mut native));
        let _ = done.send(read.map(|_| native));
    });
    let native = match native.recv_timeout(budget.timeout) {
        Ok(native) => native,
        Err(_) => {
            // Ours and not yet waited for: the kill reaches the compiler, no other process.
            let _ = child.kill();
            let _ = child.wait();
            return Err(CompileError::TimedOut(budget.timeout));
        }
    };
    let status = child.wait().map_err(failed)?;
    let _ = feeding.join();
    let stderr = draining.join().unwrap_or_default();
    let native = native.map_err(failed)?;
    if status.success() {
        return Ok(native);
    }
    let message = String::from_utf8_lossy(&stderr);
    if message.contains("memory allocation of") || message.contains(OVER_BUDGET) {
        return Err(CompileError::OverMemory(budget.memory));
    }
    let message = message.trim();
    Err(wasmtime::format_err!("the compiler failed ({status}){}{message}", if message.is_empty() { "" } else { ": " })
        .into())
}

/// What the child writes when wasmtime reports running out of memory.
const OVER_BUDGET: &str = "over the compiler's memory budget";

/// The child's side (`pollen compile-plugin`): caps its data memory at
/// `memory_bytes`, reads a component on stdin, writes its native code on stdout.
pub fn serve(memory_bytes: u64) -> ExitCode {
    #[cfg(target_os = "linux")]
    {
        let limit = libc::rlimit { rlim_cur: memory_bytes as libc::rlim_t, rlim_max: memory_bytes as libc::rlim_t };
        // SAFETY: setrlimit reads the struct it is given and changes only this process.
        if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
            eprintln!("cannot cap the compiler's memory: {}", std::io::Error::last_os_error());
            return ExitCode::FAILURE;
        }
    }
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("cannot read the component: {error}");
        return ExitCode::FAILURE;
    }
    let native = Engine::new(&super::engine::engine_config()).and_then(|engine| engine.precompile_component(&bytes));
    match native {
        Ok(native) => match std::io::stdout().lock().write_all(&native) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("cannot write the native code: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            let text = format!("{error:#}");
            let over = text.contains("out of memory") || text.contains("Cannot allocate memory");
            eprintln!("{text}{}", if over { format!(" ({OVER_BUDGET})") } else { String::new() });
            ExitCode::FAILURE
        }
    }
}
