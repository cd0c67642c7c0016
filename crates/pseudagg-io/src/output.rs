//! Atomic outputs: everything is written into a staging folder beside the target and moved into
//! place with one rename (or, when an earlier output exists, one atomic exchange of the two folders)
//! only after everything succeeded.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pseudagg_core::{Error, Result};
use rustix::fs::{FlockOperation, RenameFlags};

/// Called just before a staged output goes live, with the staging folder and the target: the
/// command records the publication there (the protocol's announcement), and an error stops the
/// publication, so nothing goes live that is not on record.
pub type PublishHook<'a> = dyn Fn(&Path, &Path) -> Result<()> + Sync + 'a;

/// An exclusive lock on a folder, held while a run writes into it. Runs of the same pipeline never
/// interleave: a second one is refused at once instead of waiting.
#[derive(Debug)]
pub struct OutputLock {
    _dir: File,
}

impl OutputLock {
    /// Locks `dir` (which must exist), or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<Self> {
        let handle = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        rustix::fs::flock(&handle, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
            Error::Locked(format!(
                "another pseudagg run is writing into {}; wait until it has finished and run again",
                dir.display()
            ))
        })?;
        Ok(Self { _dir: handle })
    }
}

/// A staging folder for one output. Dropped without [`StagingDir::commit`], it removes itself and
/// any folder it created, so a failed run leaves nothing behind.
#[derive(Debug)]
pub struct StagingDir {
    target: PathBuf,
    staging: PathBuf,
    created: Vec<PathBuf>,
    committed: bool,
    /// The mode the folder had when created (the umask's), restored when it goes live.
    mode: fs::Permissions,
    _lock: OutputLock,
}

impl StagingDir {
    /// Prepares to write `target` (for example `out/vkb/2025-03`): creates its parent, locks it,
    /// removes staging folders that an interrupted run left, and creates a fresh staging folder.
    pub fn create(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{} is not a usable output folder",
                    target.display()
                ))
            })?
            .to_owned();
        let parent = target.parent().unwrap_or(Path::new(".")).to_owned();
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };

        check_replaceable(target)?;
        let mut created = Vec::new();
        let mut missing = parent.clone();
        while !missing.exists() {
            created.push(missing.clone());
            if !missing.pop() || missing.as_os_str().is_empty() {
                break;
            }
        }
        fs::create_dir_all(&parent).map_err(|e| Error::io("create folder", &parent, e))?;
        let guard = CreatedDirs(created);
        let lock = OutputLock::acquire(&parent)?;

        let prefix = format!(".{name}.staging-");
        if let Ok(entries) = fs::read_dir(&parent) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    tracing::warn!(folder = %entry.path().display(), "removing a staging folder an interrupted run left behind");
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staging = parent.join(format!("{prefix}{}-{nanos}", std::process::id()));
        fs::create_dir(&staging).map_err(|e| Error::io("create folder", &staging, e))?;
        // While it holds rows that are not yet checked (before k-anonymity, before verify), and
        // after a `kill -9` until the next run removes it, only the owner may enter the folder.
        // It gets the mode the site's umask gave it back just before it goes live.
        let mode = fs::metadata(&staging)
            .map_err(|e| Error::io("read the mode of", &staging, e))?
            .permissions();
        let private = fs::Permissions::from_mode(0o700);
        fs::set_permissions(&staging, private)
            .map_err(|e| Error::io("make private", &staging, e))?;
        Ok(Self {
            target: target.to_owned(),
            staging,
            created: guard.disarm(),
            committed: false,
            mode,
            _lock: lock,
        })
    }

    /// The folder to write into.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final location.
    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staging folder into place atomically, replacing an earlier output.
    pub fn commit(self) -> Result<()> {
        self.commit_after(None)
    }

    /// [`StagingDir::commit`], after `hook` has accepted the staged output (an error from it
    /// publishes nothing).
    pub fn commit_after(mut self, hook: Option<&PublishHook<'_>>) -> Result<()> {
        sync_staged(&self.staging)?;
        if let Some(hook) = hook {
            hook(&self.staging, &self.target)?;
        }
        fs::set_permissions(&self.staging, self.mode.clone())
            .map_err(|e| Error::io("set the mode of", &self.staging, e))?;
        if self.target.exists() {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.staging,
                rustix::fs::CWD,
                &self.target,
                RenameFlags::EXCHANGE,
            )
            .map_err(|e| Error::io("replace", &self.target, e.into()))?;
            // The staging path now holds the earlier output.
            self.committed = true;
            fs::remove_dir_all(&self.staging)
                .map_err(|e| Error::io("remove the earlier output", &self.staging, e))?;
        } else {
            fs::rename(&self.staging, &self.target)
                .map_err(|e| Error::io("move into place", &self.target, e))?;
            self.committed = true;
        }
        if let Some(parent) = self.target.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            })?;
        }
        Ok(())
    }
}

/// Refuses to replace an existing `target` that holds anything pseudagg did not write there: a
/// folder with no `manifest.json`, or a file its manifest does not list. Replacing it would delete
/// those files without a word.
pub fn check_replaceable(target: &Path) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    let refuse = |what: String| {
        Err(Error::Refused(format!(
            "{} already exists and {what}; it is not replaced, so nothing of it is lost: move it \
             away, or choose another output root",
            target.display()
        )))
    };
    if !target.is_dir() {
        return refuse("is not a folder".into());
    }
    let manifest = target.join("manifest.json");
    let listed: std::collections::HashSet<String> = match fs::read(&manifest) {
        Ok(bytes) => {
            #[derive(serde::Deserialize)]
            struct Listed {
                #[serde(default)]
                files: Vec<Entry>,
            }
            #[derive(serde::Deserialize)]
            struct Entry {
                path: String,
            }
            let Ok(m) = serde_json::from_slice::<Listed>(&bytes) else {
                return refuse("its manifest.json is not one pseudagg wrote".into());
            };
            m.files.into_iter().map(|f| f.path).collect()
        }
        Err(_) => return refuse("holds no manifest.json: it is not a pseudagg output".into()),
    };
    let mut stack = vec![target.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io("read", &path, e))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(target).map_or_else(
                |_| path.display().to_string(),
                |r| r.to_string_lossy().into_owned(),
            );
            if rel != "manifest.json" && !listed.contains(&rel) {
                return refuse(format!("holds {rel}, which its manifest does not list"));
            }
        }
    }
    Ok(())
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
            CreatedDirs(std::mem::take(&mut self.created)).remove();
        }
    }
}

/// Folders created for an output, removed again (when empty) if the output is abandoned.
struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    fn disarm(mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.0)
    }

    fn remove(&mut self) {
        // Deepest first; remove_dir fails (harmlessly) on a folder something else wrote into.
        for dir in self.0.drain(..) {
            let _ = fs::remove_dir(&dir);
        }
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        self.remove();
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// Writes the staged tree to disk before it is published: every file and folder is synced, by
/// several threads at once, so that the filesystem's journal commits many of them together. A
/// report's 1,647 files and their folders took 2,890 `fsync`s, about 0.9 s one after the other.
/// (One `syncfs` of the whole filesystem would be quicker alone, but it also waits for whatever
/// else is pending there, so its time depends on what other programs write.)
fn sync_staged(dir: &Path) -> Result<()> {
    /// Syncs in flight at once: enough for the journal to gather them, few for the machine.
    const SYNCING: usize = 8;
    let mut paths = Vec::new();
    list_tree(dir, &mut paths)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..SYNCING.min(paths.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    if let Err(e) = File::open(path).and_then(|f| f.sync_all()) {
                        let mut slot = failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        slot.get_or_insert(Error::io("sync", path, e));
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    Ok(())
}

/// Every file and folder under `dir`, and `dir` itself last.
fn list_tree(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        if entry
            .file_type()
            .map_err(|e| Error::io("inspect", &path, e))?
            .is_dir()
        {
            list_tree(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `name` into `dir` with a manifest that lists it, as every pseudagg output has.
    fn write_listed(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
        let manifest = format!(r#"{{"files": [{{"path": "{name}"}}]}}"#);
        fs::write(dir.join("manifest.json"), manifest).unwrap();
    }

    /// Issue 18: a month folder holding files pseudagg did not write is not replaced (those files
    /// would be deleted without a word); one holding only what its manifest lists is.
    #[test]
    fn a_target_with_foreign_files_is_not_replaced() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out/vkb/2025-03");
        fs::create_dir_all(target.join("rd=BY")).unwrap();
        fs::write(target.join("notes.txt"), "mine").unwrap();
        let err = StagingDir::create(&target).unwrap_err();
        assert!(err.to_string().contains("no manifest.json"), "{err}");
        fs::write(
            target.join("manifest.json"),
            r#"{"files": [{"path": "rd=BY/part-00000.parquet"}]}"#,
        )
        .unwrap();
        fs::write(target.join("rd=BY/part-00000.parquet"), "x").unwrap();
        let err = StagingDir::create(&target).unwrap_err();
        assert!(err.to_string().contains("holds notes.txt"), "{err}");
        assert!(target.join("notes.txt").exists(), "nothing is lost");
        fs::remove_file(target.join("notes.txt")).unwrap();
        let staging = StagingDir::create(&target).unwrap();
        staging.commit().unwrap();
        assert!(
            !target.join("manifest.json").exists(),
            "the old output was replaced"
        );
    }

    /// Issue 18: rows not yet checked are for the owner only, also when a killed run leaves them;
    /// the published folder has the mode the umask gives any new folder.
    #[test]
    fn the_staging_folder_is_private_until_it_goes_live() {
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain");
        fs::create_dir(&plain).unwrap();
        let umask_mode = fs::metadata(&plain).unwrap().permissions().mode() & 0o7777;
        let target = root.path().join("out/vkb/2025-03");
        let staging = StagingDir::create(&target).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(staging.path()), 0o700);
        fs::write(staging.path().join("a"), "rows").unwrap();
        staging.commit().unwrap();
        assert_eq!(mode(&target), umask_mode);
    }

    #[test]
    fn commit_replaces_earlier_output() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out/vkb/2025-03");
        let first = StagingDir::create(&target).unwrap();
        write_listed(first.path(), "a", "one");
        first.commit().unwrap();
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "one");

        let second = StagingDir::create(&target).unwrap();
        write_listed(second.path(), "b", "two");
        second.commit().unwrap();
        assert!(!target.join("a").exists());
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(root.path().join("out/vkb"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2025-03")]);
    }

    #[test]
    fn abandoned_output_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out/vkb/2025-03");
        let staging = StagingDir::create(&target).unwrap();
        fs::write(staging.path().join("a"), "partial").unwrap();
        drop(staging);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn abandoned_rerun_keeps_the_earlier_output() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("2025-03");
        let first = StagingDir::create(&target).unwrap();
        write_listed(first.path(), "a", "one");
        first.commit().unwrap();
        let second = StagingDir::create(&target).unwrap();
        fs::write(second.path().join("a"), "partial").unwrap();
        drop(second);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "one");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn second_writer_is_refused_while_the_first_holds_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("2025-03");
        let first = StagingDir::create(&target).unwrap();
        let err = StagingDir::create(&target).unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err}");
        drop(first);
        assert!(StagingDir::create(&target).is_ok());
    }

    #[test]
    fn leftover_staging_folders_are_cleaned() {
        let root = tempfile::tempdir().unwrap();
        let stale = root.path().join(".2025-03.staging-1-2");
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join("x"), "half").unwrap();
        let staging = StagingDir::create(&root.path().join("2025-03")).unwrap();
        assert!(!stale.exists());
        staging.commit().unwrap();
    }
}
