//! [`LocalObjectStore`]: archive objects as files under one root directory (the
//! type's docs tell how keys map to paths, and why a reader never sees a torn file).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flyhigh_core::StoreError;
use flyhigh_core::ports::{ObjectInfo, ObjectStore};

/// How many times a put or promotion creates its directory again after a concurrent
/// delete pruned it (see [`LocalObjectStore`], *Directories*).
const DIRECTORY_ATTEMPTS: u32 = 8;

/// Most bytes of an object's name kept in its temporary file's name, so that with the
/// `.`, `.tmp-`, a pid and a counter it stays within the 255 bytes a file name may
/// have even when the object's name is close to that.
const TEMP_NAME_KEEP: usize = 200;

/// Makes every temporary name of this process unique (with the pid, across processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Archive objects as files under a root directory, with the same keys as in S3.
///
/// Every call runs its file system work on Tokio's blocking pool when called inside
/// a Tokio runtime (a put of a compacted file writes and `fsync`s 128 MiB, which
/// must not stall a runtime worker), and inline otherwise. Cloning is cheap and
/// clones share the root; several stores (and processes) on one root are safe.
///
/// # Keys and paths
///
/// A key is a relative, `/`-separated path: `a/b/c.parquet` is `<root>/a/b/c.parquet`.
/// Keys are checked before anything touches the disk, so no key reaches outside the
/// root: an empty key or component (`a//b`, a trailing `/`), a leading `/`, a `.` or
/// `..` component, a backslash or a NUL is refused with [`StoreError::Permanent`]
/// naming the key. So is any component that starts with `.`: those names are the
/// store's temporary files, which [`list`](ObjectStore::list) never shows (the
/// archive's keys never start a component with `.`). A listing's prefix that no valid
/// key can start with lists nothing, as in S3.
///
/// # Atomic replacement
///
/// A put writes `<dir>/.<name>.tmp-<pid>-<n>`, `fsync`s it, renames it over
/// `<dir>/<name>` (atomic on POSIX: an open reader keeps the old file, a new one gets
/// the new) and `fsync`s the directory, so a put that returned survives a power loss.
/// The temporary name starts with `.` and does not end with `.parquet`, so neither
/// `list` nor a DuckDB glob (`*.parquet`) ever reads a half-written file. A process
/// killed in the middle of a put leaves its temporary file behind; it is invisible
/// to both, and safe to delete by hand when no put is running. A promotion is a
/// rename too, and a delete `fsync`s the directories it removed files from (a
/// compaction's deletes must not come back after a power loss: their rows are in the
/// compacted file).
///
/// # Directories
///
/// Directories are created as puts and promotions need them, and a delete (and a
/// promotion, for the directory it moved a file out of, typically under `_staging/`)
/// removes the ones it left empty, up to but not including the root, so an archive
/// compacted or promoted away leaves no empty partitions behind. That pruning races
/// with a put or promotion into the same directory (another shard's batch, say):
/// whichever loses finds its directory gone (`ENOENT`) and creates it again, a few
/// times, before giving up with [`StoreError::Transient`].
///
/// # Errors
///
/// A refusal by the file system (permissions, a read-only mount, a name it cannot
/// hold, a file or directory in the way) is [`StoreError::Permanent`]; anything else
/// (a full disk, an interrupted call, an I/O error) [`StoreError::Transient`]. Every
/// message names the operation, the key and the path.
///
/// # Differences from the in-memory store
///
/// - Keys are validated (see [Keys and paths](#keys-and-paths)); the memory store
///   takes any string.
/// - A key cannot be both an object and a "directory" of other objects: with an
///   object at `a/b`, a put at `a/b/c` fails ([`StoreError::Permanent`]), and with one
///   at `a/b/c`, a put at `a/b` does. S3 and the memory store allow both. The
///   archive's layout never does this.
/// - [`delete`](ObjectStore::delete) removes its keys one by one, so a failure part
///   way leaves the earlier ones deleted (as S3's `DeleteObjects` may); a retry
///   finishes the rest.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    root: Arc<Path>,
}

impl LocalObjectStore {
    /// The store at `root`, creating the directory if missing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the directory cannot be created (permissions, a
    /// file in the way), [`StoreError::Transient`] for other I/O failures.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalObjectStore, StoreError> {
        let root = root.as_ref();
        fs::create_dir_all(root)
            .map_err(|e| io_error("open", "", "creating directory", root, &e))?;
        Ok(LocalObjectStore {
            root: Arc::from(root),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds (or would hold) the object at `key`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] for an invalid key.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(file_of(&self.root, key))
    }
}

impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        validate_key(key)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || put_now(&root, &key, &bytes)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key(key)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || get_now(&root, &key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        // A prefix no valid key can start with lists nothing, as in S3 (it is not an
        // error: a listing names no object).
        if !prefix_can_match(prefix) {
            return Ok(Vec::new());
        }
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || list_now(&root, &prefix)).await
    }

    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        validate_key(from)?;
        validate_key(to)?;
        let (root, from, to) = (self.root.clone(), from.to_owned(), to.to_owned());
        blocking(move || promote_now(&root, &from, &to)).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        // Every key is checked before the first is deleted.
        for key in keys {
            validate_key(key)?;
        }
        if keys.is_empty() {
            return Ok(());
        }
        let (root, keys) = (self.root.clone(), keys.to_vec());
        blocking(move || delete_now(&root, &keys)).await
    }
}

/// Runs `work` on Tokio's blocking pool when there is a runtime, inline when not
/// (there is nothing to stall then, and no runtime to panic for).
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(StoreError::Transient(
                "file system task cancelled: the runtime is shutting down".into(),
            )),
            Err(e) => Err(StoreError::Permanent(format!(
                "file system task panicked: {e}"
            ))),
        },
        Err(_) => work(),
    }
}

fn put_now(root: &Path, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = file_of(root, key);
    let (dir, name) = split(&path);
    let mut attempt = 0;
    let (mut file, temp) = loop {
        attempt += 1;
        let again = attempt < DIRECTORY_ATTEMPTS;
        if let Err(e) = fs::create_dir_all(dir) {
            if again && e.kind() == ErrorKind::NotFound {
                continue;
            }
            return Err(io_error("put", key, "creating directory", dir, &e));
        }
        let temp = dir.join(temp_name(name));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => break (file, temp),
            // NotFound: the directory was pruned meanwhile. AlreadyExists: a file of a
            // dead process with the same pid; the next name is another.
            Err(e)
                if again && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(io_error("put", key, "creating", &temp, &e)),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("put", key, "writing", &temp, &e));
    drop(file);
    let renamed = written.and_then(|()| {
        fs::rename(&temp, &path).map_err(|e| {
            io_error(
                "put",
                key,
                &format!("renaming {} over", temp.display()),
                &path,
                &e,
            )
        })
    });
    if let Err(e) = renamed {
        // Best effort: a leftover temporary file is invisible anyway.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir).map_err(|e| io_error("put", key, "syncing directory", dir, &e))
}

fn get_now(root: &Path, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let path = file_of(root, key);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(io_error("get", key, "reading", &path, &e)),
    }
}

fn list_now(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    // Only the directory the prefix's complete components name can hold matches,
    // and in it only entries whose names start with the rest.
    let (dir_key, partial) = match prefix.rfind('/') {
        Some(slash) => prefix.split_at(slash + 1),
        None => ("", prefix),
    };
    let mut dir = root.to_path_buf();
    dir.extend(dir_key.split('/').filter(|c| !c.is_empty()));
    let mut out = Vec::new();
    walk(&dir, dir_key, partial, prefix, &mut out)?;
    out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Adds every object under `dir` (whose key prefix is `dir_key`, ending with `/` or
/// empty) whose name starts with `name_prefix` to `out`, descending into directories.
/// Entries that vanish while they are read (a promotion, a delete) are skipped.
fn walk(
    dir: &Path,
    dir_key: &str,
    name_prefix: &str,
    prefix: &str,
    out: &mut Vec<ObjectInfo>,
) -> Result<(), StoreError> {
    let failed =
        |action: &str, path: &Path, e: &io::Error| io_error("list", prefix, action, path, e);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(failed("reading directory", dir, &e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| failed("reading directory", dir, &e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            tracing::warn!(
                dir = %dir.display(),
                name = ?file_name,
                "archive listing skips a name that is not UTF-8"
            );
            continue;
        };
        // Temporary files, and anything else no key can name.
        if component_problem(name).is_some() || !name.starts_with(name_prefix) {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if absent(&e) => continue,
            Err(e) => return Err(failed("reading the type of", &entry.path(), &e)),
        };
        let key = format!("{dir_key}{name}");
        if file_type.is_dir() {
            walk(&entry.path(), &format!("{key}/"), "", prefix, out)?;
        } else if file_type.is_file() {
            let size = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if absent(&e) => continue,
                Err(e) => return Err(failed("reading the size of", &entry.path(), &e)),
            };
            out.push(ObjectInfo { key, size });
        }
        // Symbolic links and special files are not objects.
    }
    Ok(())
}

fn promote_now(root: &Path, from: &str, to: &str) -> Result<bool, StoreError> {
    let source = file_of(root, from);
    let target = file_of(root, to);
    let (source_dir, _) = split(&source);
    let (target_dir, _) = split(&target);
    let failed = |action: &str, path: &Path, e: &io::Error| {
        io_error("promote", &format!("{from} to {to}"), action, path, e)
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let again = attempt < DIRECTORY_ATTEMPTS;
        match fs::symlink_metadata(&source) {
            Ok(m) if m.is_file() => {}
            // A directory or a link is no object: nothing at `from`.
            Ok(_) => return Ok(false),
            Err(e) if absent(&e) => return Ok(false),
            Err(e) => return Err(failed("reading", &source, &e)),
        }
        if let Err(e) = fs::create_dir_all(target_dir) {
            if again && e.kind() == ErrorKind::NotFound {
                continue;
            }
            return Err(failed("creating directory", target_dir, &e));
        }
        match fs::rename(&source, &target) {
            Ok(()) => break,
            // The source was moved meanwhile (checked again above), or the target's
            // directory was pruned (created again above).
            Err(e) if again && e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(failed(
                    &format!("renaming {} to", source.display()),
                    &target,
                    &e,
                ));
            }
        }
    }
    sync_dir(target_dir).map_err(|e| failed("syncing directory", target_dir, &e))?;
    if source_dir != target_dir {
        // Another promotion may have pruned the emptied directory already: then
        // there is nothing left to sync.
        match sync_dir(source_dir) {
            Err(e) if !absent(&e) => return Err(failed("syncing directory", source_dir, &e)),
            _ => {}
        }
        prune(root, source_dir);
    }
    Ok(true)
}

fn delete_now(root: &Path, keys: &[String]) -> Result<(), StoreError> {
    let mut dirs = BTreeSet::new();
    for key in keys {
        let path = file_of(root, key);
        match fs::remove_file(&path) {
            Ok(()) => {
                dirs.insert(split(&path).0.to_path_buf());
            }
            Err(e) if absent(&e) => {}
            Err(e) => return Err(io_error("delete", key, "removing", &path, &e)),
        }
    }
    // In reverse order a directory comes before its parent, so a parent emptied only
    // by pruning its children goes too.
    for dir in dirs.iter().rev() {
        match sync_dir(dir) {
            Ok(()) => {}
            Err(e) if absent(&e) => {}
            Err(e) => return Err(io_error("delete", "", "syncing directory", dir, &e)),
        }
        prune(root, dir);
    }
    Ok(())
}

/// Removes `dir` and then each parent while they are empty, stopping below `root`.
/// Best effort: the first directory that is not empty (or any other failure) stops
/// it; one already gone (another delete pruned it) does not.
fn prune(root: &Path, dir: &Path) {
    let mut dir = dir;
    while dir != root && dir.starts_with(root) {
        match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(_) => return,
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => return,
        }
    }
}

/// Makes the directory's entries (a rename, a new or removed file) durable. Linux
/// and the BSDs sync a directory opened read-only; elsewhere there is no equivalent.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// Whether an error means "no such object": nothing there, a file where a directory
/// of the path should be, or a directory where the file should be.
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

/// An I/O failure as a [`StoreError`], classified by what the caller must do: a
/// refusal by the file system (permissions, a read-only mount, a name it cannot hold,
/// a file or directory in the way) needs an operator; anything else (a full disk, an
/// interrupted call, an I/O error) may pass.
fn io_error(op: &str, key: &str, action: &str, path: &Path, e: &io::Error) -> StoreError {
    let message = if key.is_empty() {
        format!("{op}: {action} {}: {e}", path.display())
    } else {
        format!("{op} {key:?}: {action} {}: {e}", path.display())
    };
    let permanent = matches!(
        e.kind(),
        ErrorKind::PermissionDenied
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::InvalidFilename
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::DirectoryNotEmpty
            | ErrorKind::AlreadyExists
            | ErrorKind::CrossesDevices
            | ErrorKind::FileTooLarge
            | ErrorKind::TooManyLinks
            | ErrorKind::Unsupported
    );
    if permanent {
        StoreError::Permanent(message)
    } else {
        StoreError::Transient(message)
    }
}

/// The path of a valid key.
fn file_of(root: &Path, key: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(key.split('/'));
    path
}

/// The directory and file name of a valid key's path (it has both: the key has at
/// least one non-empty component).
fn split(path: &Path) -> (&Path, &str) {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (dir, name)
}

/// `.<name>.tmp-<pid>-<n>`: hidden from `list` by its `.`, from `*.parquet` globs by
/// its end, unique per put.
fn temp_name(name: &str) -> String {
    let mut keep = name.len().min(TEMP_NAME_KEEP);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{}.tmp-{}-{n}", &name[..keep], std::process::id())
}

/// Refuses a key that is not a relative path of plain components.
fn validate_key(key: &str) -> Result<(), StoreError> {
    match key_problem(key) {
        None => Ok(()),
        Some(problem) => Err(StoreError::Permanent(format!(
            "invalid object key {key:?}: {problem}"
        ))),
    }
}

fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("it is empty");
    }
    if key.starts_with('/') {
        return Some("it is absolute; keys are relative to the store's root");
    }
    key.split('/').find_map(component_problem)
}

fn component_problem(component: &str) -> Option<&'static str> {
    if component.is_empty() {
        Some("it has an empty component (`//`, or a `/` at the end)")
    } else if component == "." || component == ".." {
        Some("it has a `.` or `..` component")
    } else if component.starts_with('.') {
        Some("a component starts with `.`, which marks the store's temporary files")
    } else if component.contains('\\') {
        Some("it contains a backslash; components are separated by `/`")
    } else if component.contains('\0') {
        Some("it contains a NUL")
    } else {
        None
    }
}

/// Whether some valid key starts with `prefix`: its complete components are valid,
/// and the rest (a partial name) has no backslash or NUL and does not start with `.`.
fn prefix_can_match(prefix: &str) -> bool {
    let (complete, partial) = match prefix.rsplit_once('/') {
        Some((complete, partial)) => (Some(complete), partial),
        None => (None, prefix),
    };
    let valid = |c: &str| component_problem(c).is_none();
    complete.is_none_or(|c| c.split('/').all(valid)) && (partial.is_empty() || valid(partial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_of_plain_components() {
        for ok in [
            "x",
            "event_type=booking/dt=2026-12-01/hour=09/b_x.parquet",
            "_staging/a/b",
            "a..b/c.",
        ] {
            assert_eq!(key_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            "a/..",
            ".hidden",
            "a/.x.tmp-1-2",
            "a\\b",
            "a\0b",
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_prefix_matches_only_if_some_valid_key_can_start_with_it() {
        for ok in ["", "a", "a/", "a/b", "event_type=book", "_staging/"] {
            assert!(prefix_can_match(ok), "{ok:?}");
        }
        for bad in ["/", "/a", "a//", "../", "a/.", "a/.x", "a\\", "./a"] {
            assert!(!prefix_can_match(bad), "{bad:?}");
        }
    }

    #[test]
    fn temporary_names_are_hidden_unique_and_short() {
        let a = temp_name("b_x.parquet");
        let b = temp_name("b_x.parquet");
        assert_ne!(a, b);
        assert!(a.starts_with(".b_x.parquet.tmp-"));
        assert!(!a.ends_with(".parquet"));
        let long = "é".repeat(127); // 254 bytes
        assert!(temp_name(&long).len() <= 255);
    }

    #[test]
    fn refusals_need_an_operator_and_the_rest_may_pass() {
        let path = Path::new("/archive/x");
        let refused = io::Error::from(ErrorKind::PermissionDenied);
        assert!(matches!(
            io_error("put", "x", "writing", path, &refused),
            StoreError::Permanent(m) if m.contains("/archive/x") && m.contains("\"x\"")
        ));
        for kind in [ErrorKind::ReadOnlyFilesystem, ErrorKind::InvalidInput] {
            assert!(matches!(
                io_error("put", "x", "writing", path, &io::Error::from(kind)),
                StoreError::Permanent(_)
            ));
        }
        for kind in [
            ErrorKind::Interrupted,
            ErrorKind::StorageFull,
            ErrorKind::TimedOut,
        ] {
            assert!(matches!(
                io_error("put", "x", "writing", path, &io::Error::from(kind)),
                StoreError::Transient(_)
            ));
        }
    }
}
