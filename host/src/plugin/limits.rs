//! Per-instance memory limit, enforced when the guest grows a memory or table.

use wasmtime::ResourceLimiter;

/// Largest table a plugin may grow (function references; generous for Rust guests).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Refuses memory growth past a limit, and remembers that it did.
pub struct MemoryLimiter {
    limit: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory per memory.
    pub fn new(limit: usize) -> Self {
        Self { limit, exceeded: false }
    }

    /// Whether the guest tried to grow past the limit since the instance was made.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The limit, bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: the plugin asked for {desired} bytes, its limit is {} bytes",
                self.limit
            );
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
