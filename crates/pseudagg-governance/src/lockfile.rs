//! Lock files that are gone when their holder is done: an exclusive `flock` on a file beside what
//! it guards, removed by the holder before it lets go.
//!
//! Removing a lock file is safe only with a check after locking: a waiter may have opened the file
//! just before the holder removed it, and then holds a lock on a file nobody else can find. So the
//! lock counts only when the file locked is still the one at the path (same device and inode);
//! otherwise it is opened again.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// A held lock; dropping it removes the file and releases the lock.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    // Closed after `drop` has removed the path: the lock is released only then.
    _file: File,
}

impl LockFile {
    /// Locks `path` (created with mode 0600 when missing, never through a symbolic link). With
    /// `wait`, waits for another holder; without, returns `Ok(None)` when the lock is held.
    /// A path that is not a regular file gives an error of kind `InvalidInput`.
    pub fn acquire(path: &Path, wait: bool) -> io::Result<Option<Self>> {
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(path)
                .map_err(|e| {
                    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                        io::Error::new(io::ErrorKind::InvalidInput, "a symbolic link")
                    } else {
                        e
                    }
                })?;
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ));
            }
            let op = if wait {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::NonBlockingLockExclusive
            };
            match rustix::fs::flock(&file, op) {
                Ok(()) => {}
                Err(e) if !wait && e == rustix::io::Errno::WOULDBLOCK => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            // The holder before us may have removed the file while we waited on it.
            match fs::symlink_metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                    return Ok(Some(Self {
                        path: path.to_owned(),
                        _file: file,
                    }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Still holding the lock: a waiter that locks the removed file sees it is gone.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_excludes_a_second_holder_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = LockFile::acquire(&path, false).unwrap().unwrap();
        assert!(path.exists());
        assert!(LockFile::acquire(&path, false).unwrap().is_none());
        drop(held);
        assert!(!path.exists(), "the lock file is removed with the lock");
        let again = LockFile::acquire(&path, false).unwrap();
        assert!(again.is_some());
    }

    #[test]
    fn waiters_take_turns_one_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _l = LockFile::acquire(&path, true).unwrap().unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
        assert!(!path.exists());
    }

    #[test]
    fn a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        let e = LockFile::acquire(&path, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
