//! Process-wide allocator settings for the daemon.
//!
//! glibc gives each thread that allocates its own arena (up to eight per core), and
//! the agent's many short plugin and libvirt threads each leave freed memory behind in
//! theirs: at 10000 domains that fragmentation was a third of the agent's peak RSS
//! (439 MiB against 301 MiB with two arenas; `docs/benchmarks.md`). Two arenas are
//! plenty for a process whose threads mostly wait on libvirt and plugins.
//!
//! Large blocks (a cycle's sample lists, lifted plugin output) are also kept out of the
//! arenas: glibc's default raises its mmap threshold as large blocks are freed, after
//! which they come from, and fragment, the arenas; a fixed 128 KiB threshold and trim
//! threshold hand them back to the system when freed (at 10000 domains: 268 → 245 MiB
//! peak, about 1 % more CPU).

/// Limits glibc to two malloc arenas and fixes its mmap and trim thresholds at
/// 128 KiB. Call once, at start, before threads exist. A no-op on other C libraries.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tunables; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
