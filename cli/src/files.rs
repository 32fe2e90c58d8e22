//! How the binary writes the files operators keep: new files private
//! (0600), and edits of existing ones (`sightline.toml`, `network.toml`)
//! atomic: staged beside the file, synced, validated, then renamed over it
//! with the old file's mode and owner. A rejected or interrupted edit leaves
//! the old file whole; a symbolic link is refused rather than followed.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{anyhow, Context};

use crate::exit::Failure;

/// Writes a new file with mode 0600 (creating its directory); refuses to
/// overwrite.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Replaces the existing file `path` with `text`, atomically: `validate`
/// checks the staged copy first, and only a copy it accepts is renamed
/// over `path`, keeping its owner and its mode less any bit for others,
/// write for group and execute (at most 0640). The directory is synced so the
/// rename survives a crash.
///
/// # Errors
/// Exit 2 when `path` is a symbolic link or `validate` refuses the text;
/// I/O errors otherwise.
pub(crate) fn replace_validated(
    path: &Path,
    text: &str,
    validate: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> Result<(), Failure> {
    let old = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(Failure::input)?;
    if old.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        return Err(Failure::input(anyhow!(
            "{} is a symbolic link (to {}); edit the file it points to instead",
            path.display(),
            target.display()
        )));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "edit".into(), |n| n.to_string_lossy().into_owned());
    let staged = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("staging an edit of {}", path.display()))?;
    (|| -> anyhow::Result<()> {
        let mut file = staged.as_file();
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // Owner first (a chown may clear mode bits), then the old mode.
        if old.uid() != rustix::process::geteuid().as_raw()
            || old.gid() != rustix::process::getegid().as_raw()
        {
            rustix::fs::fchown(
                file,
                Some(rustix::fs::Uid::from_raw(old.uid())),
                Some(rustix::fs::Gid::from_raw(old.gid())),
            )
            .map_err(std::io::Error::from)
            .with_context(|| format!("giving the edit {}'s owner", path.display()))?;
        }
        // Both files hold secrets (API tokens, the hash key): whatever the
        // old mode, the edit is readable by no one outside owner and group.
        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o640))?;
        Ok(())
    })()
    .with_context(|| format!("staging an edit of {}", path.display()))?;
    validate(staged.path()).map_err(|e| {
        Failure::input(anyhow!(
            "the edited {} would be invalid: {e:#}",
            path.display()
        ))
    })?;
    staged
        .persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// The passphrase that encrypts or decrypts backups: from `file` (its first
/// line), else from the environment variable `SIGHTLINE_BACKUP_PASSPHRASE`,
/// else none. Never from the command line, where `ps` shows it.
///
/// # Errors
/// Exit 2 when the file cannot be read or the passphrase is empty.
pub(crate) fn backup_passphrase(file: Option<&Path>) -> Result<Option<String>, Failure> {
    let passphrase = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(Failure::input)?;
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        None => std::env::var("SIGHTLINE_BACKUP_PASSPHRASE")
            .ok()
            .filter(|p| !p.is_empty()),
    };
    match passphrase {
        Some(p) if p.is_empty() => Err(Failure::input(anyhow!("the backup passphrase is empty"))),
        other => Ok(other),
    }
}
