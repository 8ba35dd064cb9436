//! The compile cache: a second start maps what the first compiled, a
//! damaged entry is compiled again, entries of replaced plugins go, and a
//! cache the plugins folder could write to is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orch_core::contract::{Operation, PayloadForm, ProviderView, RequestContext};
use orch_plugin_host::{CacheOutcome, Limits, LoadedPlugin, PluginHost};

fn context() -> RequestContext {
    RequestContext {
        request_id: "cache-test".into(),
        operation: Operation::Chat,
        requested_model: "m".into(),
        upstream_model: "fake-model".into(),
        streaming: false,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".into(),
        received_at_ms: 0,
        provider: ProviderView {
            name: "fake".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            options_json: "{}".into(),
        },
    }
}

/// A plugins folder holding the bundled OpenAI adapter.
fn plugins_with_openai() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        orch_test_support::plugins_dir().join("openai.wasm"),
        dir.path().join("openai.wasm"),
    )
    .unwrap();
    dir
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

async fn start(plugins: &Path, cache: &Path) -> (Arc<PluginHost>, Arc<LoadedPlugin>) {
    let host = PluginHost::with_compile_cache(plugins, Limits::default(), cache).unwrap();
    let report = host.reload().await;
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let adapter = host.snapshot().adapter("openai").unwrap().clone();
    (host, adapter)
}

/// The adapter works: it builds a request to its provider.
async fn builds_a_request(adapter: &Arc<LoadedPlugin>) {
    let mut instance = adapter.adapter(&context()).await.unwrap();
    let request = instance
        .build_request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .await
        .unwrap();
    assert!(
        request.url.ends_with("/chat/completions"),
        "{}",
        request.url
    );
}

#[tokio::test]
async fn a_second_start_maps_what_the_first_compiled() {
    let plugins = plugins_with_openai();
    let cache_root = tempfile::tempdir().unwrap();
    let cache = cache_root.path().join("cache");

    let (_first, adapter) = start(plugins.path(), &cache).await;
    assert_eq!(adapter.compiled, CacheOutcome::Stored);
    builds_a_request(&adapter).await;
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let name = stored[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(&adapter.sha256), "{name}");
    assert!(name.ends_with(".cwasm"), "{name}");

    let (_second, adapter) = start(plugins.path(), &cache).await;
    assert_eq!(adapter.compiled, CacheOutcome::Hit);
    builds_a_request(&adapter).await;
    assert_eq!(entries(&cache), stored);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "cache folder mode {mode:o}");
    }
}

#[tokio::test]
async fn a_damaged_entry_is_compiled_again() {
    let plugins = plugins_with_openai();
    let cache_root = tempfile::tempdir().unwrap();
    let cache = cache_root.path().join("cache");
    // Entries are damaged between runs: a running gateway maps its entries,
    // and the folder is its own (see `CompileCache`).
    drop(start(plugins.path(), &cache).await);
    let entry = entries(&cache).remove(0);

    // One flipped byte in the code: the entry no longer matches its name.
    let mut content = std::fs::read(&entry).unwrap();
    let middle = content.len() / 2;
    content[middle] ^= 0xff;
    std::fs::write(&entry, &content).unwrap();
    {
        let (_host, adapter) = start(plugins.path(), &cache).await;
        assert_eq!(adapter.compiled, CacheOutcome::Stored);
        builds_a_request(&adapter).await;
        assert_eq!(
            entries(&cache),
            vec![entry.clone()],
            "rewritten under its name"
        );
    }

    // A truncated entry (a crash mid-write would leave at most this).
    std::fs::write(&entry, &content[..100]).unwrap();
    let (_host, adapter) = start(plugins.path(), &cache).await;
    assert_eq!(adapter.compiled, CacheOutcome::Stored);
    builds_a_request(&adapter).await;
}

#[tokio::test]
async fn entries_of_replaced_plugins_are_deleted() {
    let plugins = plugins_with_openai();
    let cache_root = tempfile::tempdir().unwrap();
    let cache = cache_root.path().join("cache");
    let (host, old) = start(plugins.path(), &cache).await;
    // Leftovers the cache does not know: an interrupted write and an entry
    // of another engine configuration.
    std::fs::write(cache.join(".tmp-1-0"), b"partial").unwrap();
    let stranger = cache.join(format!(
        "{}-{}-{}.cwasm",
        old.sha256,
        "0".repeat(16),
        "0".repeat(32)
    ));
    std::fs::write(&stranger, b"not ours").unwrap();

    let next = orch_test_support::component("openai_next.wasm");
    let tmp = plugins.path().join(".incoming");
    std::fs::copy(&next, &tmp).unwrap();
    std::fs::rename(&tmp, plugins.path().join("openai.wasm")).unwrap();
    let report = host.reload().await;
    assert_eq!(report.activated.len(), 1, "{report:?}");
    let new = host.snapshot().adapter("openai").unwrap().clone();
    assert_ne!(new.sha256, old.sha256);

    let left = entries(&cache);
    assert_eq!(left.len(), 1, "{left:?}");
    let name = left[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&new.sha256), "{name}");
    // The replaced version still serves what is in flight: its code stays
    // mapped after its entry is gone.
    builds_a_request(&old).await;
}

#[tokio::test]
async fn a_cache_the_plugins_folder_could_write_is_refused() {
    let plugins = plugins_with_openai();
    for inside in [plugins.path().to_path_buf(), plugins.path().join("cache")] {
        let err = PluginHost::with_compile_cache(plugins.path(), Limits::default(), &inside)
            .err()
            .expect("refused");
        assert!(err.contains("inside the plugins folder"), "{err}");
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = PluginHost::with_compile_cache(plugins.path(), Limits::default(), &shared)
            .err()
            .expect("refused");
        assert!(err.contains("writable by others"), "{err}");
    }
}

#[tokio::test]
async fn a_precompiled_file_in_the_plugins_folder_is_still_refused() {
    let plugins = plugins_with_openai();
    let cache_root = tempfile::tempdir().unwrap();
    let cache = cache_root.path().join("cache");
    let (_host, _) = start(plugins.path(), &cache).await;
    // Copy the gateway's own compiled entry into the plugins folder.
    let entry = entries(&cache).remove(0);
    std::fs::copy(&entry, plugins.path().join("planted.wasm")).unwrap();
    let host = PluginHost::with_compile_cache(plugins.path(), Limits::default(), &cache).unwrap();
    let report = host.reload().await;
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(
        report.rejected[0].1.contains("precompiled artifact"),
        "{:?}",
        report.rejected
    );
}
