//! The data directory's lock: `flock` on `<data-dir>/LOCK`, held for as long
//! as the [`DirLock`] lives (the kernel drops it when the process dies, so a
//! crash never leaves a stale lock). The file records the holder's pid for
//! the message a second server prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name.
pub const NAME: &str = "LOCK";

/// A held lock on a data directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another process (or another open of the same directory) holds it.
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The pid written by the holder, when readable.
        holder: Option<u32>,
    },
    /// The file could not be opened or locked.
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { path, holder } => {
                write!(
                    f,
                    "the data directory {} is in use by another server",
                    path.parent().unwrap_or(path).display()
                )?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                write!(
                    f,
                    ": {} is locked; stop that server or choose another --data-dir",
                    path.display()
                )
            }
            LockError::Io(m) => f.write_str(m),
        }
    }
}

impl DirLock {
    /// Locks `dir` (which must exist), without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Io(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: `file` is an open descriptor owned by this function; flock
        // only reads the descriptor number.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(LockError::Busy {
                    path,
                    holder: s.trim().parse().ok(),
                });
            }
            return Err(LockError::Io(format!(
                "cannot lock {}: {err}",
                path.display()
            )));
        }
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_goes() {
        let dir = std::env::temp_dir().join(format!("rustydb-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = DirLock::acquire(&dir).unwrap();
        // flock locks belong to the open file: a second open is refused even
        // in the same process.
        match DirLock::acquire(&dir) {
            Err(e @ LockError::Busy { .. }) => {
                let LockError::Busy { holder, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*holder, Some(std::process::id()));
                assert!(e.to_string().contains("in use by another server"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        drop(a);
        let b = DirLock::acquire(&dir).unwrap();
        assert!(b.path().ends_with(NAME));
        drop(b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
