//! The manifest: read as plain JSON (not through the writers' types), and checked against the
//! files that are really there.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use pseudagg_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::finding::{Finding, Rule, Verdict};

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FileEntry {
    pub path: String,
    #[serde(default)]
    pub rows: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
    /// A report table's sum of published values (the steward's manifest, layout 2).
    #[serde(default)]
    pub value_sum: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub kind: String,
    pub month: Option<String>,
    pub files: Vec<FileEntry>,
    /// The whole document, for the kind-specific parts.
    pub raw: Value,
}

impl Manifest {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }
}

pub(crate) fn load(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a folder; give the output folder of one month, such as OUT/vkb/2025-03",
            dir.display()
        )));
    }
    let path = dir.join("manifest.json");
    let text = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    let raw: Value = serde_json::from_slice(&text).map_err(|e| Error::Format {
        path: path.clone(),
        reason: format!(
            "is not JSON (line {}, column {}); a manifest is written by pseudagg and must not be edited",
            e.line(),
            e.column()
        ),
    })?;
    let kind = raw
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Format {
            path: path.clone(),
            reason: "has no `kind`".into(),
        })?
        .to_owned();
    let files = match raw.get("files") {
        Some(v) => Vec::<FileEntry>::deserialize(v).map_err(|e| Error::Format {
            path: path.clone(),
            reason: format!("`files` is not a list of path, bytes and sha256: {e}"),
        })?,
        None => Vec::new(),
    };
    Ok(Manifest {
        kind,
        month: raw.get("month").and_then(Value::as_str).map(str::to_owned),
        files,
        raw,
    })
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Every listed file is there with its size and hash; every file there is listed. Returns the
/// listed files that are missing or changed: their content is not checked further.
pub(crate) fn check_files(
    dir: &Path,
    m: &Manifest,
    verdict: &mut Verdict,
) -> Result<BTreeSet<String>> {
    let mut unusable = BTreeSet::new();
    verdict.check("manifest");
    if m.files.is_empty() {
        verdict.push(Finding::new(Rule::Manifest, "the manifest lists no file"));
    }
    if m.month.is_none() {
        verdict.push(Finding::new(
            Rule::Manifest,
            "the manifest records no month",
        ));
    }
    let mut listed = BTreeSet::new();
    for f in &m.files {
        if !is_safe_relative(&f.path) {
            verdict.push(
                Finding::new(
                    Rule::Manifest,
                    "a listed path leaves the output folder; paths are relative, without `..`",
                )
                .file(&f.path),
            );
            continue;
        }
        listed.insert(f.path.clone());
        let path = dir.join(&f.path);
        let bad_before = verdict.counts.get(&Rule::FileHash).copied();
        match fs::metadata(&path) {
            Err(_) => verdict.push(
                Finding::new(Rule::FileHash, "listed in the manifest but missing").file(&f.path),
            ),
            Ok(meta) if meta.len() != f.bytes => verdict.push(
                Finding::new(
                    Rule::FileHash,
                    format!(
                        "{} bytes, the manifest says {}: the file was changed after it was written",
                        meta.len(),
                        f.bytes
                    ),
                )
                .file(&f.path),
            ),
            Ok(_) => {
                let actual = sha256_of(&path).map_err(|e| Error::io("read", &path, e))?;
                if actual != f.sha256 {
                    verdict.push(
                        Finding::new(
                            Rule::FileHash,
                            "SHA-256 differs from the manifest: the file was changed after it was written",
                        )
                        .file(&f.path),
                    );
                }
            }
        }
        if verdict.counts.get(&Rule::FileHash).copied() != bad_before {
            unusable.insert(f.path.clone());
        }
    }
    let mut present = Vec::new();
    walk(dir, dir, &mut present)?;
    for rel in present {
        if rel != "manifest.json" && !listed.contains(&rel) {
            verdict.push(
                Finding::new(
                    Rule::UnlistedFile,
                    "not listed in the manifest: nothing may be published beside what was verified",
                )
                .file(rel),
            );
        }
    }
    verdict.fact("files", &m.files.len());
    Ok(unusable)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("list", dir, e))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let ty = e
            .file_type()
            .map_err(|err| Error::io("inspect", &path, err))?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("below root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push(rel);
        }
    }
    Ok(())
}
