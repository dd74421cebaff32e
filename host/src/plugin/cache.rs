//! Precompiled components on disk, so that a second start does not recompile.
//!
//! The key is a hash of the component's bytes and of the engine's compatibility hash
//! (wasmtime version and settings): a changed plugin or a new agent build compiles
//! afresh, anything else loads the native code as it is. Entries are written whole
//! (to a temporary file, then renamed) under a lock file of their own.

use super::compiler::{self, CompileBudget, CompileError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
#[derive(Clone)]
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

    /// The component for these bytes (of the plugin file `path`), from the cache or
    /// compiled within `budget`. Agents (and tests) that share a cache compile each
    /// component once: whoever compiles it holds the entry's lock file, and the others
    /// wait for it and read its result.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        budget: CompileBudget,
        plugin: &Path,
    ) -> Result<(Component, CacheOutcome), CompileError> {
        let path = self.entry(bytes);
        if let Some(component) = Self::read(engine, &path) {
            return Ok((component, CacheOutcome::Hit));
        }
        let _lock = self.lock(&path);
        if let Some(component) = Self::read(engine, &path) {
            return Ok((component, CacheOutcome::Hit));
        }
        let native = compiler::compile(engine, bytes, budget, plugin)?;
        if let Err(error) = self.store(&path, &native) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compiled-component cache; the next start compiles again");
        }
        // SAFETY: `native` was produced just now by `precompile_component` of this
        // engine, or of one with the same configuration in a child process running this
        // very build (`compiler`).
        let component = unsafe { Component::deserialize(engine, &native)? };
        Ok((component, CacheOutcome::Compiled))
    }

    /// The cache file of these bytes.
    pub fn entry(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::new().chain_update(self.engine_key.to_le_bytes()).chain_update(bytes).finalize();
        self.dir.join(format!("{}.cwasm", hex::encode(digest)))
    }

    /// Compiles these bytes into the cache unless they are there already (ahead of
    /// [`ComponentCache::load`], which then reads them back). Where the folder cannot
    /// be written, the native code is thrown away and `load` compiles again.
    pub fn compile_ahead(
        &self,
        engine: &Engine,
        bytes: &[u8],
        budget: CompileBudget,
        plugin: &Path,
    ) -> Result<(), CompileError> {
        let path = self.entry(bytes);
        if path.exists() {
            return Ok(());
        }
        let _lock = self.lock(&path);
        if path.exists() {
            return Ok(());
        }
        let native = compiler::compile(engine, bytes, budget, plugin)?;
        if let Err(error) = self.store(&path, &native) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compiled-component cache; the plugin is compiled again to load it");
        }
        Ok(())
    }

    /// The cached component at `path`, if there is a readable one.
    fn read(engine: &Engine, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `precompile_component` of an engine with the
        // same compatibility hash (it is part of the key), into the agent's own cache
        // folder, and renamed into place only once complete.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "unreadable precompiled component; compiling again");
                None
            }
        }
    }

    /// An exclusive lock on the entry's lock file, held until dropped; `None` (compile
    /// anyway) where the folder cannot be written.
    fn lock(&self, entry: &Path) -> Option<File> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let file = File::options().create(true).truncate(false).write(true).open(entry.with_extension("lock")).ok()?;
        file.lock().ok()?;
        Some(file)
    }

    fn store(&self, path: &Path, native: &[u8]) -> std::io::Result<()> {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let write = WRITES.fetch_add(1, Ordering::Relaxed);
        let temporary = path.with_extension(format!("tmp{}-{write}", std::process::id()));
        std::fs::write(&temporary, native)?;
        std::fs::rename(&temporary, path)
    }
}
