//! Process-wide allocator settings for the daemon.
//!
//! glibc gives each thread that allocates its own arena (up to eight per core), and
//! the agent's many short plugin and libvirt threads each leave freed memory behind in
//! theirs: at 10000 domains that fragmentation was a third of the agent's peak RSS
//! (439 MiB against 301 MiB with two arenas; `docs/benchmarks.md`). Two arenas are
//! plenty for a process whose threads mostly wait on libvirt and plugins.

/// Limits glibc to two malloc arenas. Call once, at start, before threads exist. A
/// no-op on other C libraries.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
