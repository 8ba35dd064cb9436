//! `llm-orchestrator plugin new`: a ready-to-build plugin crate from the
//! templates in `templates/`.

use std::path::{Path, PathBuf};

/// The kinds of plugin a template exists for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A provider adapter (an OpenAI-compatible provider to start from).
    Adapter,
    /// A transformer (tags requests with their client key to start from).
    Transformer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Adapter => "adapter",
            Kind::Transformer => "transformer",
        }
    }

    fn lib(self) -> &'static str {
        match self {
            Kind::Adapter => include_str!("../templates/adapter/lib.rs.in"),
            Kind::Transformer => include_str!("../templates/transformer/lib.rs.in"),
        }
    }
}

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.in");
const CARGO_CONFIG: &str = include_str!("../templates/cargo-config.toml.in");
/// The gateway's own toolchain pin: the SDK is built and tested with it, and
/// it brings the `wasm32-wasip2` target.
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// Where the guest SDK is: `--sdk`, else `plugins/sdk` under the current
/// folder or above the binary (a checkout's `target/<profile>/`).
fn find_sdk(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let mut c = vec![PathBuf::from("plugins/sdk")];
            if let Ok(exe) = std::env::current_exe() {
                c.extend(exe.ancestors().skip(1).map(|a| a.join("plugins/sdk")));
            }
            c
        }
    };
    for c in &candidates {
        if c.join("Cargo.toml").is_file() {
            return std::path::absolute(c)
                .map_err(|e| format!("cannot resolve {}: {e}", c.display()));
        }
    }
    Err(match explicit {
        Some(p) => format!(
            "{} is not the plugin SDK (no Cargo.toml there)",
            p.display()
        ),
        None => "cannot find the plugin SDK (plugins/sdk of a checkout): pass --sdk <path>".into(),
    })
}

/// A TOML basic string (JSON string escapes are valid TOML escapes).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("{{{{{name}}}}}"), value)
        })
}

/// Create the crate of a new `kind` plugin called `name` in `dir` (default
/// `./<name>`). Returns the folder.
pub fn create(
    kind: Kind,
    name: &str,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<PathBuf, String> {
    if !orch_core::config::is_valid_plugin_id(name) {
        return Err(format!(
            "{name:?} is not a plugin id: lower-case letters, digits and '-', at most 64, not starting with '-'"
        ));
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let sdk = find_sdk(sdk)?;
    let sdk = sdk.to_string_lossy();
    let sdk_toml = toml_string(&sdk);
    let description = format!("LLM Orchestrator {} `{name}`", kind.as_str());
    let description_toml = toml_string(&description);
    let cargo = fill(CARGO_TOML, &[("crate", name), ("kind", kind.as_str())])
        .replace("\"{{sdk}}\"", &sdk_toml)
        .replace("\"{{description}}\"", &description_toml);
    let lib = fill(kind.lib(), &[("id", name)]);
    let write = |path: PathBuf, text: &str| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(dir.join("Cargo.toml"), &cargo)?;
    write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
    write(dir.join("rust-toolchain.toml"), TOOLCHAIN)?;
    write(dir.join("src/lib.rs"), &lib)?;
    write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_are_filled_in_and_names_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let sdk = tmp.path().join("sdk \"q\"");
        std::fs::create_dir_all(&sdk).unwrap();
        std::fs::write(sdk.join("Cargo.toml"), "").unwrap();
        let dir = tmp.path().join("acme");
        let out = create(Kind::Adapter, "acme", Some(&dir), Some(&sdk)).unwrap();
        assert_eq!(out, dir);
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"acme\""), "{cargo}");
        assert!(cargo.contains("features = [\"adapter\"]"), "{cargo}");
        assert!(cargo.contains(r#"sdk \"q\""#), "{cargo}");
        assert!(!cargo.contains("{{"), "{cargo}");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("PluginInfo::adapter(\"acme\""), "{lib}");
        assert!(dir.join(".cargo/config.toml").is_file());

        let again = create(Kind::Transformer, "acme", Some(&dir), Some(&sdk)).unwrap_err();
        assert!(again.contains("not empty"), "{again}");
        let bad = create(Kind::Transformer, "Acme!", None, Some(&sdk)).unwrap_err();
        assert!(bad.contains("not a plugin id"), "{bad}");
        let no_sdk = create(
            Kind::Transformer,
            "t",
            Some(&tmp.path().join("t")),
            Some(tmp.path()),
        )
        .unwrap_err();
        assert!(no_sdk.contains("not the plugin SDK"), "{no_sdk}");
    }
}
