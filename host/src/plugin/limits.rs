//! Per-instance memory budget: all the linear memories and tables of a plugin
//! instance together (a component may hold many core instances, each with memories
//! of its own), enforced whenever the guest makes or grows one.

use wasmtime::ResourceLimiter;

/// Table elements an instance may hold in all its tables together (function
/// references; generous for Rust guests).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances, linear memories and tables one plugin instance may make. A Rust
/// component has a handful of each; a bound keeps a component from spreading its
/// memory over thousands of small ones.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

/// Refuses memory growth past a budget shared by every memory of an instance, and
/// remembers that it did.
pub struct MemoryLimiter {
    limit: usize,
    /// Bytes of linear memory the instance holds, all memories together.
    memory: usize,
    /// Elements in all its tables together.
    table_elements: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory, all memories together.
    pub fn new(limit: usize) -> Self {
        Self { limit, memory: 0, table_elements: 0, exceeded: false }
    }

    /// Whether the guest tried to grow past the limit since the instance was made.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The limit, bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of linear memory the instance holds now, all memories together.
    pub fn memory(&self) -> usize {
        self.memory
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = (self.memory - current.min(self.memory)).saturating_add(desired);
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: the plugin asked for {total} bytes in all (its memories together), its limit is {} bytes",
                self.limit
            );
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_limit_holds_for_all_memories_together() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        // A dozen memories of 8 MiB each: each under the limit, together 96 MiB.
        let made: Vec<bool> = (0..12).map(|_| limiter.memory_growing(0, 8 * MIB, None).is_ok()).collect();
        assert_eq!(made.iter().filter(|ok| **ok).count(), 8, "{made:?}");
        assert!(limiter.exceeded());
    }

    #[test]
    fn growing_one_memory_counts_only_its_growth() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 16 * MIB, None).unwrap());
        assert!(limiter.memory_growing(16 * MIB, 48 * MIB, None).unwrap(), "48 MiB in all, not 64");
        assert!(limiter.memory_growing(0, 16 * MIB, None).unwrap(), "a second memory: 64 MiB in all");
        assert!(!limiter.exceeded());
        assert!(limiter.memory_growing(16 * MIB, 16 * MIB + 65536, None).is_err(), "one page more");
        assert!(limiter.exceeded());
    }

    #[test]
    fn tables_share_one_element_budget() {
        let mut limiter = MemoryLimiter::new(64 * MIB);
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(!limiter.table_growing(0, 1, None).unwrap(), "the budget is spent");
    }
}
