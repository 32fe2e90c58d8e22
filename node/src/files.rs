//! The node's files are private to its service account: the data directory
//! holds the node key, raw numbers this organization submitted and its peers'
//! records. Directories are 0700 and files 0600 whatever the umask the node
//! was started with (the `sightline` binary also sets its umask to 0077, so
//! files sled creates later are born private).

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode bits a private file or directory must not have.
const OTHERS: u32 = 0o077;

/// Creates `dir` (and missing parents) as 0700, and takes group and other
/// access away from it if it already existed.
///
/// # Errors
/// I/O errors, naming nothing: callers add the path.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    restrict(dir)
}

/// Takes group and other access away from every directory and file under
/// `dir`, `dir` included (symbolic links are neither followed nor changed).
/// Returns how many entries were changed.
///
/// # Errors
/// I/O errors.
pub(crate) fn private_tree(dir: &Path) -> io::Result<usize> {
    let mut changed = usize::from(restrict_if_needed(dir)?);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            changed += private_tree(&entry.path())?;
        } else if kind.is_file() {
            changed += usize::from(restrict_if_needed(&entry.path())?);
        }
    }
    Ok(changed)
}

fn restrict(path: &Path) -> io::Result<()> {
    restrict_if_needed(path).map(drop)
}

fn restrict_if_needed(path: &Path) -> io::Result<bool> {
    let mode = std::fs::symlink_metadata(path)?.permissions().mode();
    if mode & OTHERS == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn directories_and_files_become_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/store");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

        // data (if the umask left it open), store and db.
        assert!(private_tree(&root.path().join("data")).unwrap() >= 2);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        // A link's target is not the node's to change.
        assert_eq!(mode(&outside), 0o644);
        // Already private: nothing to do.
        assert_eq!(private_tree(&root.path().join("data")).unwrap(), 0);

        let fresh = root.path().join("a/b");
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
    }
}
