//! Backup archives: encrypted, authenticated, streamed both ways.
//!
//! A backup is taken while the node runs ([`write`], through
//! [`crate::NodeHandle::backup`]) and restored into a stopped node's empty
//! store ([`restore`]). It is an [age] file, encrypted to the operator's age
//! recipients or to a passphrase: without one of their identities the
//! archive reveals nothing but its size, and any change to it makes
//! decryption fail. Inside (integers big-endian):
//!
//! ```text
//! "SIGHTLINE-BACKUP" 0x02, the node key's 32-byte seed, then sections
//! (u8 tag, u32 length, body) and a final tag 0:
//!   1 record     a stored record's wire bytes, in arrival order
//!   2 evidence   an equivocation's conflicting record
//!   3 own number 32-byte number hash, then the raw E.164 text
//!   4 own seq    u64: the highest own sequence number reserved
//! ```
//!
//! Restore trusts nothing it reads beyond the key: every record goes through
//! the checks records from peers pass (decoding, network, membership,
//! signature, time) into a staging store, and every raw number must hash to
//! its hash under the network key. One tampered or forged record aborts the
//! whole restore and nothing is written; records of origins that are no
//! longer members, or past retention, are left out and counted. The staged
//! store is renamed into place only when all of it is in. Indexes are not
//! in the archive: they are rebuilt from the verified records.
//!
//! Memory stays flat: records stream from the store through the encryptor
//! to the caller, and from the decryptor through ingest batches to disk.
//!
//! [age]: https://age-encryption.org/v1

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::SecretString;
use sightline_protocol::{parse_number, NumberHash};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::identity::NodeIdentity;
use crate::ingest::{Metrics, Severity};
use crate::pipeline::{Ingestor, INGEST_BATCH};
use crate::store::{Store, StoreError};

const MAGIC: &[u8] = b"SIGHTLINE-BACKUP\x02";
/// Format 1: a plaintext archive of the store's trees (before encryption).
const MAGIC_V1: &[u8] = b"SIGHTLINE-BACKUP\x01";
const AGE_PREFIX: &[u8] = b"age-encryption.org/";

const END: u8 = 0;
const RECORD: u8 = 1;
const EVIDENCE: u8 = 2;
const OWN_NUMBER: u8 = 3;
const OWN_SEQ: u8 = 4;
/// No section is longer (records are at most 1 KiB).
const MAX_SECTION: usize = 64 * 1024;

/// Why a backup cannot be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a Sightline backup, truncated, or damaged.
    #[error("not a valid Sightline backup: {0}")]
    Invalid(String),
    /// A plaintext archive from a version before encrypted backups.
    #[error("this is a plaintext backup (format 1) from an earlier version; it is not authenticated, so this version does not restore it: restore it with the version that wrote it, then take an encrypted backup")]
    Plaintext,
    /// Decryption failed: wrong identity or passphrase, or a damaged archive.
    #[error("cannot decrypt the backup: {0}")]
    Decrypt(String),
    /// How the archive should be encrypted or decrypted is missing or wrong.
    #[error("{0}")]
    Encryption(String),
    /// A record in the archive fails the checks every received record
    /// passes: the archive was tampered with or forged.
    #[error("record {index} of the backup is invalid ({reason}); nothing was restored")]
    Forged {
        /// Position among the archive's records (from 0).
        index: u64,
        /// The check that failed.
        reason: &'static str,
    },
    /// A raw number that does not hash to its hash.
    #[error("own number {index} of the backup does not match its hash; nothing was restored")]
    ForgedNumber {
        /// Position among the archive's own numbers (from 0).
        index: u64,
    },
    /// The configured key file holds another key than the backup.
    #[error(
        "{0} holds a different key than the backup; move it away to restore this node's identity"
    )]
    KeyMismatch(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Files, or the stream the archive is written to.
    #[error("{path}: {source}")]
    Io {
        /// The file or stream.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn io_at(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BackupError {
    move |source| BackupError::Io {
        path: path.to_string(),
        source,
    }
}

/// Whom a backup is encrypted to.
pub enum Encryption {
    /// age X25519 recipients (`age1…`): whoever holds one of the identities.
    Recipients(Vec<age::x25519::Recipient>),
    /// A passphrase (scrypt).
    Passphrase(SecretString),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::Recipients(r) => write!(f, "Recipients({})", r.len()),
            Encryption::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

impl Encryption {
    /// From what an operator gives: recipients, or a passphrase, not both.
    ///
    /// # Errors
    /// [`BackupError::Encryption`] naming what is wrong.
    pub fn new(recipients: &[String], passphrase: Option<String>) -> Result<Self, BackupError> {
        match (recipients.is_empty(), passphrase) {
            (false, None) => recipients
                .iter()
                .map(|r| {
                    age::x25519::Recipient::from_str(r.trim()).map_err(|e| {
                        BackupError::Encryption(format!("recipient {r:?} is not an age X25519 recipient (age1…): {e}"))
                    })
                })
                .collect::<Result<_, _>>()
                .map(Encryption::Recipients),
            (true, Some(p)) if p.chars().count() >= 12 => {
                Ok(Encryption::Passphrase(SecretString::from(p)))
            }
            (true, Some(_)) => Err(BackupError::Encryption(
                "the backup passphrase must be at least 12 characters".into(),
            )),
            (false, Some(_)) => Err(BackupError::Encryption(
                "give age recipients or a passphrase, not both".into(),
            )),
            (true, None) => Err(BackupError::Encryption(
                "a backup holds the node key and raw numbers: give age recipients or a passphrase to encrypt it to".into(),
            )),
        }
    }

    fn encryptor(&self) -> age::Encryptor {
        match self {
            Encryption::Recipients(recipients) => {
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                    .expect("X25519 recipients combine")
            }
            Encryption::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        }
    }
}

/// How to decrypt a backup.
pub enum Decryption {
    /// age identities (from an identity file, as `age-keygen` writes).
    Identities(Vec<Box<dyn age::Identity>>),
    /// The passphrase it was encrypted with.
    Passphrase(SecretString),
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decryption::Identities(i) => write!(f, "Identities({})", i.len()),
            Decryption::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

impl Decryption {
    /// The identities in an age identity file.
    ///
    /// # Errors
    /// [`BackupError::Encryption`] if the file cannot be read or holds none.
    pub fn identity_file(path: &Path) -> Result<Self, BackupError> {
        let bad = |e: &dyn std::fmt::Display| {
            BackupError::Encryption(format!("identity file {}: {e}", path.display()))
        };
        let identities = age::IdentityFile::from_file(path.display().to_string())
            .map_err(|e| bad(&e))?
            .into_identities()
            .map_err(|e| bad(&e))?;
        if identities.is_empty() {
            return Err(bad(&"holds no age identity"));
        }
        Ok(Decryption::Identities(identities))
    }

    /// A passphrase.
    pub fn passphrase(passphrase: String) -> Self {
        Decryption::Passphrase(SecretString::from(passphrase))
    }
}

/// A new age identity for backups: (the identity file's text, its public
/// recipient).
pub fn new_identity() -> (Zeroizing<String>, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# Sightline backup identity: decrypts backups encrypted to\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    ));
    (text, recipient)
}

/// What a backup or restore moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Records.
    pub records: u64,
    /// Equivocation evidence records.
    pub evidence: u64,
    /// Raw own numbers.
    pub own_numbers: u64,
    /// Records a restore left out, by reason (`non_member`,
    /// `past_retention`, `expired`, …).
    pub skipped: BTreeMap<String, u64>,
}

fn section(out: &mut impl Write, tag: u8, body: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = body.iter().map(|b| b.len()).sum();
    out.write_all(&[tag])?;
    out.write_all(&u32::try_from(len).expect("small section").to_be_bytes())?;
    for b in body {
        out.write_all(b)?;
    }
    Ok(())
}

/// Writes an encrypted backup of `store` and the key `seed` to `out`.
/// Writers are not held up: each record stands alone (restore re-derives
/// the indexes), and the own seq is read last, so it covers every own
/// record in the archive.
///
/// # Errors
/// Store errors, or the stream's I/O errors (then `out` holds an archive
/// that fails to decrypt, never one that restores partially).
pub fn write(
    store: &Store,
    seed: &[u8; 32],
    encryption: &Encryption,
    out: impl Write,
) -> Result<Summary, BackupError> {
    let stream = io_at("the backup stream");
    let encrypted = encryption
        .encryptor()
        .wrap_output(out)
        .map_err(io_at("the backup stream"))?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, encrypted);
    let mut summary = Summary::default();
    (|| -> Result<(), BackupError> {
        let io = |e| BackupError::Io {
            path: "the backup stream".into(),
            source: e,
        };
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(seed).map_err(io)?;
        for record in store.records_by_arrival()? {
            section(&mut w, RECORD, &[&record?]).map_err(io)?;
            summary.records += 1;
        }
        for record in store.evidence_records()? {
            section(&mut w, EVIDENCE, &[&record?]).map_err(io)?;
            summary.evidence += 1;
        }
        for entry in store.own_numbers()? {
            let (hash, e164) = entry?;
            section(&mut w, OWN_NUMBER, &[hash.as_bytes(), e164.as_bytes()]).map_err(io)?;
            summary.own_numbers += 1;
        }
        section(&mut w, OWN_SEQ, &[&store.last_own_seq()?.to_be_bytes()]).map_err(io)?;
        section(&mut w, END, &[]).map_err(io)
    })()?;
    let encrypted = w.into_inner().map_err(|e| stream(e.into_error()))?;
    encrypted
        .finish()
        .and_then(|mut out| out.flush())
        .map_err(io_at("the backup stream"))?;
    Ok(summary)
}

/// Opens an encrypted archive for reading its plaintext.
fn open(input: impl Read, decryption: &Decryption) -> Result<impl BufRead, BackupError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input.fill_buf().map_err(io_at("the backup"))?;
    if head.starts_with(MAGIC_V1) {
        return Err(BackupError::Plaintext);
    }
    if !head.starts_with(AGE_PREFIX) {
        return Err(BackupError::Invalid(
            "not an age-encrypted Sightline backup".into(),
        ));
    }
    let decryptor =
        age::Decryptor::new_buffered(input).map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let reader = match (decryption, decryptor.is_scrypt()) {
        (Decryption::Passphrase(p), true) => {
            let identity = age::scrypt::Identity::new(p.clone());
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
        (Decryption::Identities(ids), false) => {
            decryptor.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        }
        (Decryption::Identities(_), true) => {
            return Err(BackupError::Decrypt(
                "the backup is encrypted to a passphrase; give the passphrase, not an identity"
                    .into(),
            ))
        }
        (Decryption::Passphrase(_), false) => {
            return Err(BackupError::Decrypt(
                "the backup is encrypted to age recipients; give one of their identity files"
                    .into(),
            ))
        }
    }
    .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    Ok(BufReader::with_capacity(64 * 1024, reader))
}

/// Reads exactly `buf.len()` bytes; age reports a damaged or truncated
/// archive as an I/O error here.
fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), BackupError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            BackupError::Invalid("truncated".into())
        } else {
            BackupError::Decrypt(e.to_string())
        }
    })
}

/// Restores an encrypted archive for the node `config` describes, which
/// must be stopped, with an empty (or absent) store. Writes the key file
/// (0600) unless it already holds the same key. All or nothing: the records
/// are verified into a staging store beside the store, which replaces it
/// only once the whole archive is in.
///
/// # Errors
/// [`BackupError`].
pub fn restore(
    input: impl Read,
    decryption: &Decryption,
    config: &NodeConfig,
    clock: Arc<dyn Clock>,
) -> Result<Summary, BackupError> {
    let target = config.data_dir.join("store");
    if target.exists() && !Store::open(&target)?.is_empty() {
        return Err(StoreError::NotEmpty.into());
    }
    let mut r = open(input, decryption)?;
    let mut magic = [0u8; MAGIC.len()];
    read_exact(&mut r, &mut magic)?;
    if magic != MAGIC {
        return Err(BackupError::Invalid("unknown archive format".into()));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    read_exact(&mut r, seed.as_mut())?;
    let identity = NodeIdentity::from_seed(&seed);
    let key_file = &config.key_file;
    let key_exists = key_file.exists();
    if key_exists {
        let existing = NodeIdentity::load(key_file).map_err(|e| BackupError::Io {
            path: key_file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if existing.peer_id() != identity.peer_id() {
            return Err(BackupError::KeyMismatch(key_file.display().to_string()));
        }
    }

    crate::files::private_dir(&config.data_dir).map_err(io_at(config.data_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".restoring-")
        .tempdir_in(&config.data_dir)
        .map_err(io_at(config.data_dir.display()))?;
    let staged = staging.path().join("store");
    let summary = {
        let store = Store::open(&staged)?;
        let ingestor = Ingestor::new(
            identity.signing.origin(),
            store.clone(),
            crate::pipeline::context(config),
            clock,
            Arc::new(Metrics::default()),
        );
        let summary = fill(&mut r, &ingestor, &store, config)?;
        store.flush()?;
        summary
    };
    // The staged store is complete: only now does anything change.
    if !key_exists {
        NodeIdentity::create(key_file, &seed).map_err(|e| BackupError::Io {
            path: key_file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    replace_store(&staged, &target)?;
    Ok(summary)
}

/// Reads the sections into `store` through `ingestor`.
fn fill(
    r: &mut impl Read,
    ingestor: &Ingestor,
    store: &Store,
    config: &NodeConfig,
) -> Result<Summary, BackupError> {
    let mut summary = Summary::default();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(INGEST_BATCH);
    let mut batch_kinds: Vec<u8> = Vec::with_capacity(INGEST_BATCH);
    let mut index = 0u64;
    let mut numbers = 0u64;
    let mut flush = |batch: &mut Vec<Vec<u8>>,
                     kinds: &mut Vec<u8>,
                     summary: &mut Summary|
     -> Result<(), BackupError> {
        let first = index;
        let results = ingestor.commit(ingestor.check(batch));
        for (i, (result, kind)) in results.iter().zip(kinds.iter()).enumerate() {
            match result {
                Ok(()) if *kind == RECORD => summary.records += 1,
                Ok(()) => summary.evidence += 1,
                Err(rejection) if rejection.reason == "non_member" => {
                    // A former member: left out, as a peer's record would be.
                    *summary.skipped.entry("non_member".into()).or_default() += 1;
                }
                Err(rejection) if rejection.severity == Severity::Reject => {
                    return Err(BackupError::Forged {
                        index: first + i as u64,
                        reason: rejection.reason,
                    });
                }
                Err(rejection) if *kind == EVIDENCE && rejection.reason == "equivocation" => {
                    summary.evidence += 1;
                }
                Err(rejection) => {
                    *summary.skipped.entry(rejection.reason.into()).or_default() += 1;
                }
            }
        }
        index += batch.len() as u64;
        batch.clear();
        kinds.clear();
        Ok(())
    };
    let key = &config.network.hash_key;
    let mut body = Vec::with_capacity(1024);
    loop {
        let mut head = [0u8; 5];
        read_exact(r, &mut head)?;
        let len = u32::from_be_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        if len > MAX_SECTION {
            return Err(BackupError::Invalid("oversized section".into()));
        }
        body.resize(len, 0);
        read_exact(r, &mut body)?;
        match head[0] {
            RECORD | EVIDENCE => {
                batch.push(body.clone());
                batch_kinds.push(head[0]);
                if batch.len() == INGEST_BATCH {
                    flush(&mut batch, &mut batch_kinds, &mut summary)?;
                }
            }
            OWN_NUMBER => {
                if body.len() < 33 {
                    return Err(BackupError::Invalid("own number section".into()));
                }
                let hash = NumberHash::from_bytes(body[..32].try_into().expect("32 bytes"));
                let e164 = std::str::from_utf8(&body[32..])
                    .ok()
                    .and_then(|text| parse_number(text, None).ok())
                    .filter(|p| key.number_hash(&p.e164) == hash)
                    .ok_or(BackupError::ForgedNumber { index: numbers })?;
                store.restore_own_number(&hash, e164.e164.as_str())?;
                summary.own_numbers += 1;
                numbers += 1;
            }
            OWN_SEQ => {
                let seq: [u8; 8] = body
                    .as_slice()
                    .try_into()
                    .map_err(|_| BackupError::Invalid("own seq section".into()))?;
                store.raise_own_seq(u64::from_be_bytes(seq))?;
            }
            END => {
                flush(&mut batch, &mut batch_kinds, &mut summary)?;
                let mut rest = [0u8; 1];
                return match r.read(&mut rest) {
                    Ok(0) => Ok(summary),
                    Ok(_) => Err(BackupError::Invalid("data after the end".into())),
                    Err(e) => Err(BackupError::Decrypt(e.to_string())),
                };
            }
            _ => return Err(BackupError::Invalid("unknown section".into())),
        }
    }
}

/// Moves the staged store to `target`, replacing an empty store there.
fn replace_store(staged: &Path, target: &PathBuf) -> Result<(), BackupError> {
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(io_at(target.display()))?;
    }
    std::fs::rename(staged, target).map_err(io_at(target.display()))?;
    if let Some(parent) = target.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_at(parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_needs_exactly_one_way() {
        let (_, recipient) = new_identity();
        assert!(matches!(
            Encryption::new(std::slice::from_ref(&recipient), None),
            Ok(Encryption::Recipients(r)) if r.len() == 1
        ));
        for (recipients, passphrase) in [
            (vec![], None),
            (vec![recipient], Some("a long passphrase".to_owned())),
            (vec!["age1nope".to_owned()], None),
            (vec![], Some("short".to_owned())),
        ] {
            let err = Encryption::new(&recipients, passphrase).unwrap_err();
            assert!(matches!(err, BackupError::Encryption(_)), "{err}");
        }
    }
}
