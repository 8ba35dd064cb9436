//! Where the golden cases come from: the copy of `plugins/conformance`
//! embedded in the binary, or a folder of the same layout
//! (`<dialect>/adapter/*.json`, `<dialect>/dialect/*.json`).

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde_json::Value;

/// The conformance cases at build time. Only `*/adapter/*.json` and
/// `*/dialect/*.json` are read.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../plugins/conformance");

/// The kinds of case folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `<dialect>/adapter/`.
    Adapter,
    /// `<dialect>/dialect/`.
    Dialect,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Adapter => "adapter",
            Kind::Dialect => "dialect",
        }
    }
}

/// Where cases are read from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// The cases embedded at build time.
    Embedded,
    /// A conformance root on disk.
    Folder(PathBuf),
}

/// One case file: its name (the file name without `.json`) and its parsed
/// document, or why it could not be read.
#[derive(Debug)]
pub(crate) struct CaseFile {
    /// The file name without `.json`.
    pub(crate) name: String,
    /// The parsed file, or the reason it is unusable.
    pub(crate) doc: Result<Value, String>,
}

/// One readable case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// The file name without `.json`.
    pub(crate) name: String,
    /// The parsed file.
    pub(crate) doc: Value,
}

impl Case {
    /// A field of the case, or an error naming it.
    pub(crate) fn field(&self, key: &str) -> Result<&Value, String> {
        self.opt(key)
            .ok_or_else(|| format!("case file: missing field `{key}`"))
    }

    /// A field of the case, if present and not null.
    pub(crate) fn opt(&self, key: &str) -> Option<&Value> {
        self.doc.get(key).filter(|v| !v.is_null())
    }
}

impl Source {
    /// Every case of `dialect` and `kind`, sorted by name; empty when there
    /// are none. An error only when a given folder cannot be read at all.
    pub(crate) fn cases(&self, dialect: &str, kind: Kind) -> Result<Vec<CaseFile>, String> {
        let mut out = match self {
            Source::Embedded => embedded(dialect, kind),
            Source::Folder(root) => folder(root, dialect, kind)?,
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The dialects that have cases of `kind`, sorted.
    pub(crate) fn dialects(&self, kind: Kind) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Source::Embedded => EMBEDDED
                .dirs()
                .filter(|d| d.get_dir(d.path().join(kind.folder())).is_some())
                .filter_map(|d| d.path().file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
            Source::Folder(root) => std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().join(kind.folder()).is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
        };
        out.sort();
        out
    }

    /// How to name this source in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Embedded => "the built-in conformance cases".to_owned(),
            Source::Folder(root) => root.display().to_string(),
        }
    }
}

fn case_name(path: &Path) -> Option<String> {
    if path.extension().is_some_and(|e| e == "json") {
        path.file_stem().map(|s| s.to_string_lossy().into_owned())
    } else {
        None
    }
}

fn parse(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("case file is not JSON: {e}"))
}

fn embedded(dialect: &str, kind: Kind) -> Vec<CaseFile> {
    let Some(dir) = EMBEDDED.get_dir(Path::new(dialect).join(kind.folder())) else {
        return Vec::new();
    };
    dir.files()
        .filter_map(|file| {
            let name = case_name(file.path())?;
            Some(CaseFile {
                name,
                doc: parse(file.contents()),
            })
        })
        .collect()
}

fn folder(root: &Path, dialect: &str, kind: Kind) -> Result<Vec<CaseFile>, String> {
    if !root.is_dir() {
        return Err(format!(
            "the conformance folder {} does not exist",
            root.display()
        ));
    }
    let dir = root.join(dialect).join(kind.folder());
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    Ok(entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = case_name(&path)?;
            let doc = std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|bytes| parse(&bytes));
            Some(CaseFile { name, doc })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_cases_cover_both_dialects_and_kinds() {
        let source = Source::Embedded;
        for kind in [Kind::Adapter, Kind::Dialect] {
            assert_eq!(source.dialects(kind), ["anthropic", "gemini"]);
            for dialect in ["anthropic", "gemini"] {
                let cases = source.cases(dialect, kind).unwrap();
                assert!(cases.len() >= 18, "{dialect} {kind:?}: {}", cases.len());
                assert!(cases.iter().all(|c| c.doc.is_ok()));
                assert!(cases.windows(2).all(|w| w[0].name < w[1].name));
            }
        }
        assert!(source.cases("openai", Kind::Adapter).unwrap().is_empty());
    }

    #[test]
    fn a_folder_reads_the_same_layout() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("acme").join("adapter");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.json"), "{\"description\": \"x\"}").unwrap();
        std::fs::write(dir.join("a.json"), "not json").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let source = Source::Folder(root.path().to_path_buf());
        let cases = source.cases("acme", Kind::Adapter).unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(cases[0].doc.as_ref().unwrap_err().contains("not JSON"));
        assert!(source.cases("acme", Kind::Dialect).unwrap().is_empty());
        assert_eq!(source.dialects(Kind::Adapter), ["acme"]);
        let missing = Source::Folder(root.path().join("nope"));
        assert!(missing.cases("acme", Kind::Adapter).is_err());
    }
}
