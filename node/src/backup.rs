//! Backup archives: a consistent snapshot of a node's store and its key,
//! taken while the node runs ([`crate::NodeHandle::backup`]) and restored
//! into an empty data directory while it is stopped ([`restore`]). A
//! restored node is the same node: same peer id, same records, same
//! sequence counter.
//!
//! Format (all integers big-endian): `SIGHTLINE-BACKUP` `0x01`; u32 store
//! schema version; the 32-byte key seed; u32 tree count; per tree a u16
//! name length, the name, a u64 entry count and per entry u32 key length,
//! key, u32 value length, value; then the SHA-256 of everything before it.
//! The archive holds the private key: keep it like the key file (0600).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::NodeConfig;
use crate::identity::NodeIdentity;
use crate::store::{Store, StoreError, SCHEMA_VERSION};

const MAGIC: &[u8] = b"SIGHTLINE-BACKUP\x01";

/// Tree name → entries.
pub type Snapshot = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Why a backup cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a Sightline backup, truncated, or corrupted.
    #[error("not a valid Sightline backup: {0}")]
    Invalid(&'static str),
    /// Written by a build with another store schema.
    #[error("backup has store schema {found}; this build uses {expected}")]
    Schema {
        /// In the archive.
        found: u32,
        /// This build's.
        expected: u32,
    },
    /// The configured key file holds another key than the backup.
    #[error(
        "{0} holds a different key than the backup; move it away to restore this node's identity"
    )]
    KeyMismatch(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Encodes an archive.
///
/// # Panics
/// Never for sled data: names and keys/values are far below the length limits.
pub fn encode(seed: &[u8; 32], snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA_VERSION.to_be_bytes());
    out.extend_from_slice(seed);
    out.extend_from_slice(
        &u32::try_from(snapshot.len())
            .expect("few trees")
            .to_be_bytes(),
    );
    for (name, entries) in snapshot {
        out.extend_from_slice(
            &u16::try_from(name.len())
                .expect("short names")
                .to_be_bytes(),
        );
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(entries.len() as u64).to_be_bytes());
        for (k, v) in entries {
            for part in [k, v] {
                out.extend_from_slice(
                    &u32::try_from(part.len())
                        .expect("sled keys and values are small")
                        .to_be_bytes(),
                );
                out.extend_from_slice(part);
            }
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        if self.0.len() < n {
            return Err(BackupError::Invalid("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, BackupError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, BackupError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, BackupError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Decodes and checks an archive.
///
/// # Panics
/// Never: fixed-size slices are taken from checked lengths.
///
/// # Errors
/// [`BackupError::Invalid`] or [`BackupError::Schema`].
pub fn decode(bytes: &[u8]) -> Result<(Zeroizing<[u8; 32]>, Snapshot), BackupError> {
    if bytes.len() < MAGIC.len() + 32 || !bytes.starts_with(MAGIC) {
        return Err(BackupError::Invalid("wrong magic"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(BackupError::Invalid("checksum mismatch"));
    }
    let mut r = Reader(&body[MAGIC.len()..]);
    let schema = r.u32()?;
    if schema != SCHEMA_VERSION {
        return Err(BackupError::Schema {
            found: schema,
            expected: SCHEMA_VERSION,
        });
    }
    let seed = Zeroizing::new(<[u8; 32]>::try_from(r.take(32)?).expect("32 bytes"));
    let trees = r.u32()?;
    let mut snapshot = Vec::new();
    for _ in 0..trees {
        let len = usize::from(r.u16()?);
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| BackupError::Invalid("tree name"))?
            .to_owned();
        let count = r.u64()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let k = r.u32()? as usize;
            let k = r.take(k)?.to_vec();
            let v = r.u32()? as usize;
            let v = r.take(v)?.to_vec();
            entries.push((k, v));
        }
        snapshot.push((name, entries));
    }
    if !r.0.is_empty() {
        return Err(BackupError::Invalid("trailing bytes"));
    }
    Ok((seed, snapshot))
}

/// Restores an archive for the node `config` describes, which must be
/// stopped, with an empty (or absent) store. Writes the key file (0600)
/// unless it already holds the same key.
///
/// # Errors
/// [`BackupError`].
pub fn restore(archive: &[u8], config: &NodeConfig) -> Result<(), BackupError> {
    let (seed, snapshot) = decode(archive)?;
    let key_file = &config.key_file;
    if key_file.exists() {
        let existing = NodeIdentity::load_or_create(key_file).map_err(|e| BackupError::Io {
            path: key_file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if existing.peer_id() != NodeIdentity::from_seed(&seed).peer_id() {
            return Err(BackupError::KeyMismatch(key_file.display().to_string()));
        }
    } else {
        NodeIdentity::create(key_file, &seed).map_err(|e| BackupError::Io {
            path: key_file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let store = Store::open(&config.data_dir.join("store"))?;
    store.restore(&snapshot)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let snapshot: Snapshot = vec![
            ("records".into(), vec![(vec![1, 2], vec![3; 300])]),
            ("meta".into(), vec![]),
        ];
        let bytes = encode(&[9; 32], &snapshot);
        let (seed, back) = decode(&bytes).unwrap();
        assert_eq!((*seed, back), ([9; 32], snapshot));
        for i in [0, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
