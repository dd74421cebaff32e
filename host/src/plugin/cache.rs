//! Precompiled components on disk, so that a second start does not recompile.
//!
//! The key is a hash of the component's bytes and of the engine's compatibility hash
//! (wasmtime version and settings): a changed plugin or a new agent build compiles
//! afresh, anything else loads the native code as it is.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where a component's native code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read back from the cache.
    Hit,
    /// Compiled now (and written to the cache where possible).
    Compiled,
}

/// A folder of `<key>.cwasm` files.
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: u64,
}

impl ComponentCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine_key: hasher.finish() }
    }

    /// The component for these bytes, from the cache or compiled.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, CacheOutcome)> {
        let digest = Sha256::new().chain_update(self.engine_key.to_le_bytes()).chain_update(bytes).finalize();
        let path = self.dir.join(format!("{}.cwasm", hex::encode(digest)));
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with
            // the same compatibility hash (it is part of the key), into the agent's own
            // cache folder.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable precompiled component; compiling again");
                }
            }
        }
        let native = engine.precompile_component(bytes)?;
        if let Err(error) = self.store(&path, &native) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compiled-component cache; the next start compiles again");
        }
        // SAFETY: `native` was produced just now by `precompile_component` of this engine.
        let component = unsafe { Component::deserialize(engine, &native)? };
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &std::path::Path, native: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, native)?;
        std::fs::rename(&temporary, path)
    }
}
