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
        sync_tree(&self.staging)?;
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

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        if entry
            .file_type()
            .map_err(|e| Error::io("inspect", &path, e))?
            .is_dir()
        {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("sync", &path, e))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        fs::write(first.path().join("a"), "one").unwrap();
        first.commit().unwrap();
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "one");

        let second = StagingDir::create(&target).unwrap();
        fs::write(second.path().join("b"), "two").unwrap();
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
        fs::write(first.path().join("a"), "one").unwrap();
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
