//! The compile cache: plugins compiled once, kept in a gateway-owned folder
//! and mapped from there.
//!
//! An entry is `<wasm sha256>-<engine key>-<entry sha256 prefix>.cwasm`: the
//! plugin file's content hash, a hash of everything in the engine's
//! configuration that compiled code depends on, and a hash of the entry
//! itself, checked before every use (a truncated or altered entry is deleted
//! and the plugin compiled again). Only entries this gateway wrote are ever
//! read, from a folder it created owner-only and that is neither the plugins
//! folder nor inside it: a precompiled file dropped among the plugins is
//! never trusted.
//!
//! A component loaded from an entry runs from a read-only file mapping, so
//! its code is paged in as it is used instead of held in anonymous memory,
//! and a start with a warm cache compiles nothing. Any failure of the cache
//! itself (a full disk, a read-only folder) falls back to compiling in
//! memory: the cache never fails a load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::runtime::Runtime;

const EXTENSION: &str = "cwasm";
/// Hex digits of an entry's own hash kept in its name.
const ENTRY_HASH_DIGITS: usize = 32;
/// Numbers this process's temporary files (the process id tells processes
/// sharing a folder apart).
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Where a component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid cache entry: nothing compiled.
    Hit,
    /// Compiled and stored; loaded from the new entry.
    Stored,
    /// Compiled in memory (no cache, or the cache could not be used).
    Compiled,
}

/// A compile-cache folder for one engine configuration.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// Hex hash of the engine's compatibility hash.
    engine_key: String,
}

impl CompileCache {
    /// Open (creating it owner-only) the cache folder `dir` for an engine of
    /// `compatibility`. Refused when it is or lies inside `plugins_dir`, or
    /// when others may write to it.
    pub(crate) fn open(dir: &Path, plugins_dir: &Path, compatibility: u64) -> Result<Self, String> {
        create_private_dir(dir)
            .map_err(|e| format!("cannot create the compile cache {}: {e}", dir.display()))?;
        let canonical = dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve the compile cache {}: {e}", dir.display()))?;
        if let Ok(plugins) = plugins_dir.canonicalize()
            && canonical.starts_with(&plugins)
        {
            return Err(format!(
                "the compile cache {} is inside the plugins folder {}: anyone who can add a plugin could plant compiled code there",
                dir.display(),
                plugins_dir.display()
            ));
        }
        check_private(&canonical)?;
        Ok(CompileCache {
            dir: canonical,
            engine_key: format!("{compatibility:016x}"),
        })
    }

    /// The compiled form of `bytes` (whose sha256 is `sha256`): mapped from a
    /// valid entry, else compiled, stored and mapped from the new entry.
    /// Blocking: call it off the async workers.
    pub(crate) fn component(
        &self,
        runtime: &Runtime,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        if let Some(component) = self.lookup(&runtime.engine, sha256) {
            return Ok((component, CacheOutcome::Hit));
        }
        let artifact = runtime.compile(bytes)?;
        match self.store(&runtime.engine, &artifact, sha256) {
            Ok(component) => Ok((component, CacheOutcome::Stored)),
            Err(e) => {
                tracing::warn!(cache = %self.dir.display(), "compile cache not written: {e}");
                Ok((
                    load_compiled(&runtime.engine, &artifact)?,
                    CacheOutcome::Compiled,
                ))
            }
        }
    }

    /// Delete every entry but those of `live` plugin hashes under this
    /// engine configuration, and leftovers of interrupted writes.
    pub(crate) fn retain(&self, live: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let keep = match parse_name(name) {
                Some((sha, engine, _)) => engine == self.engine_key && live.contains(sha),
                None => !name.starts_with(".tmp-"),
            };
            if !keep && let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::debug!(entry = name, "cannot delete a compile cache entry: {e}");
            }
        }
    }

    /// The entry for `sha256`, if one exists and its content matches its name.
    fn lookup(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let prefix = format!("{sha256}-{}-", self.engine_key);
        let entries = std::fs::read_dir(&self.dir).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((_, _, expected)) = parse_name(name).filter(|_| name.starts_with(&prefix))
            else {
                continue;
            };
            let path = entry.path();
            let valid = std::fs::read(&path)
                .map(|content| entry_hash(&content) == expected)
                .unwrap_or(false);
            if valid {
                match load(engine, &path) {
                    Ok(component) => return Some(component),
                    Err(e) => {
                        tracing::warn!(
                            entry = name,
                            "compile cache entry unusable, compiling again: {e}"
                        );
                    }
                }
            } else {
                tracing::warn!(
                    entry = name,
                    "compile cache entry does not match its hash; compiling again"
                );
            }
            let _ = std::fs::remove_file(&path);
        }
        None
    }

    /// Write the artifact `content` as the entry for `sha256` (atomically: a temporary
    /// file renamed into place) and load it back from there.
    fn store(&self, engine: &Engine, content: &[u8], sha256: &str) -> Result<Component, String> {
        let name = format!(
            "{sha256}-{}-{}.{EXTENSION}",
            self.engine_key,
            entry_hash(content)
        );
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let path = self.dir.join(name);
        std::fs::write(&tmp, content)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                e.to_string()
            })?;
        load(engine, &path).map_err(|e| e.to_string())
    }
}

/// Map an entry this cache wrote.
#[expect(
    unsafe_code,
    reason = "wasmtime cannot check that a compiled artifact is one it produced"
)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` runs the code in the file, so the file must
    // be one wasmtime serialised. Every entry read here was written by
    // `CompileCache::store` into a folder this gateway created owner-only,
    // outside the plugins folder, and its content was just checked against
    // the hash in its name; wasmtime itself refuses artifacts of another
    // version or engine configuration. The file is never modified in place
    // (entries are renamed into place and deleted, never rewritten), so the
    // mapping stays valid for the component's life.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Compile `bytes` and load the result, without a cache.
pub(crate) fn compile_in_memory(runtime: &Runtime, bytes: &[u8]) -> wasmtime::Result<Component> {
    load_compiled(&runtime.engine, &runtime.compile(bytes)?)
}

/// Load an artifact [`Runtime::compile`] just returned.
#[expect(
    unsafe_code,
    reason = "wasmtime cannot check that a compiled artifact is one it produced"
)]
fn load_compiled(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` is what wasmtime's own compiler returned moments ago
    // in this process; it never left memory.
    unsafe { Component::deserialize(engine, artifact) }
}

/// `(wasm sha256, engine key, entry hash)` of an entry's file name.
fn parse_name(name: &str) -> Option<(&str, &str, &str)> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    let mut parts = stem.split('-');
    let (sha, engine, entry) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (parts.next().is_none() && hex(sha, 64) && hex(engine, 16) && hex(entry, ENTRY_HASH_DIGITS))
        .then_some((sha, engine, entry))
}

fn entry_hash(content: &[u8]) -> String {
    let mut hex = hex::encode(Sha256::digest(content));
    hex.truncate(ENTRY_HASH_DIGITS);
    hex
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refuse a folder others may write to.
#[cfg(unix)]
fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("cannot read the compile cache {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "the compile cache {} is writable by others (mode {:o}); make it owner-only (chmod 700)",
            dir.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_strangers() {
        let sha = "a".repeat(64);
        let name = format!("{sha}-0123456789abcdef-{}.cwasm", "b".repeat(32));
        assert_eq!(
            parse_name(&name),
            Some((sha.as_str(), "0123456789abcdef", "b".repeat(32).as_str()))
        );
        for bad in [
            "plugin.cwasm",
            "x.wasm",
            &format!("{sha}-0123456789abcdef.cwasm"),
            &format!("{sha}-0123456789abcdef-{}-extra.cwasm", "b".repeat(32)),
            &format!("{sha}-0123456789abcdeg-{}.cwasm", "b".repeat(32)),
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
