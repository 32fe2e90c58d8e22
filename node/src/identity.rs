//! The node's ed25519 key: one 32-byte seed that is both its libp2p identity
//! and the signing key of its records. Created on first start with mode
//! 0600; a key file other users can read is refused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use rand_core::OsRng;
use sightline_protocol::SigningKey;
use zeroize::Zeroizing;

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the file failed.
    #[error("key file {file}: {source}")]
    Io {
        /// The key file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Group or others can access the file.
    #[error("key file {file} has mode {mode:o}; it must be readable by its owner only (chmod 600 {file})")]
    Permissions {
        /// The key file.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others can write the directory that holds the key, so
    /// they could replace the key.
    #[error("the directory {dir} of the key file has mode {mode:o}; only its owner may write it (chmod 700 {dir})")]
    DirPermissions {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a 32-byte seed.
    #[error("key file {file} is {len} bytes; expected a 32-byte ed25519 seed")]
    Format {
        /// The key file.
        file: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// The node's key in the two forms the node needs.
pub struct NodeIdentity {
    /// Signs records.
    pub signing: SigningKey,
    /// The libp2p identity (same seed).
    pub keypair: Keypair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.keypair.public().to_peer_id())
    }
}

impl NodeIdentity {
    /// The identity for a seed.
    ///
    /// # Panics
    /// Never: every 32-byte string is an ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let keypair = Keypair::ed25519_from_bytes(*seed).expect("any 32 bytes are an ed25519 seed");
        NodeIdentity {
            signing: SigningKey::from_seed(seed),
            keypair,
        }
    }

    /// The libp2p peer id.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.keypair.public().to_peer_id()
    }

    /// Writes a new key file (mode 0600, parent directories created) holding
    /// `seed`; refuses to overwrite an existing file.
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn create(file: &Path, seed: &[u8; 32]) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            file: file.to_owned(),
            source,
        };
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::private_dir(dir).map_err(io)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(io)?;
        out.write_all(seed).map_err(io)?;
        out.sync_all().map_err(io)
    }

    /// Loads an existing key file.
    ///
    /// # Errors
    /// [`IdentityError`] if the file is missing, unreadable, too open, or
    /// malformed.
    pub fn load(file: &Path) -> Result<Self, IdentityError> {
        let io = |source| IdentityError::Io {
            file: file.to_owned(),
            source,
        };
        let meta = std::fs::metadata(file).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Permissions {
                file: file.to_owned(),
                mode,
            });
        }
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o022 != 0 {
                return Err(IdentityError::DirPermissions {
                    dir: dir.to_owned(),
                    mode,
                });
            }
        }
        let bytes = Zeroizing::new(std::fs::read(file).map_err(io)?);
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::Format {
                file: file.to_owned(),
                len: bytes.len(),
            })?;
        let seed = Zeroizing::new(seed);
        Ok(Self::from_seed(&seed))
    }

    /// Loads the key file, or creates it (mode 0600, parent directories too)
    /// if it does not exist.
    ///
    /// # Errors
    /// [`IdentityError`] if the file is unreadable, too open, or malformed.
    pub fn load_or_create(file: &Path) -> Result<Self, IdentityError> {
        match std::fs::metadata(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed = SigningKey::generate(&mut OsRng).to_seed();
                Self::create(file, &seed)?;
                Ok(Self::from_seed(&seed))
            }
            _ => Self::load(file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_loads_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/node.key");
        let first = NodeIdentity::load_or_create(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = NodeIdentity::load_or_create(&file).unwrap();
        assert_eq!(first.peer_id(), again.peer_id());
        assert_eq!(first.signing.origin(), again.signing.origin());
        assert_eq!(
            crate::config::origin_of(&first.peer_id()),
            Some(first.signing.origin())
        );
    }

    #[test]
    fn refuses_a_readable_key_file_and_a_malformed_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.key");
        NodeIdentity::load_or_create(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load_or_create(&file).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, b"short").unwrap();
        let err = NodeIdentity::load_or_create(&file).unwrap_err();
        assert!(matches!(err, IdentityError::Format { len: 5, .. }), "{err}");
    }

    #[test]
    fn refuses_a_key_in_a_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.key");
        NodeIdentity::load_or_create(&file).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = NodeIdentity::load(&file).unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        NodeIdentity::load(&file).unwrap();
    }
}
