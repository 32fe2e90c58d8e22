//! Encrypted backups: a running node streams an age-encrypted archive, and
//! restore trusts nothing in it but the key. The archive format is read
//! and rewritten here from its description in `sightline_node::backup`
//! (magic, 32-byte seed, then tag/length/body sections), as an attacker
//! who holds the operator's public recipient would.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;

use sightline_node::backup::{self, BackupError, Decryption, Encryption};
use sightline_node::{NodeConfig, Submission, SystemClock};
use sightline_protocol::{Kind, SigningKey};
use sightline_tests::{eventually, Cluster};

use super::{has_report, signed_by, WAIT};

const MAGIC: &[u8] = b"SIGHTLINE-BACKUP\x02";
const RECORD: u8 = 1;
const OWN_NUMBER: u8 = 3;

/// An archive's plaintext: the seed and its sections, in order.
struct Plain {
    seed: Vec<u8>,
    sections: Vec<(u8, Vec<u8>)>,
}

impl Plain {
    fn parse(bytes: &[u8]) -> Self {
        assert!(bytes.starts_with(MAGIC), "format 2");
        let seed = bytes[MAGIC.len()..MAGIC.len() + 32].to_vec();
        let mut at = MAGIC.len() + 32;
        let mut sections = Vec::new();
        loop {
            let tag = bytes[at];
            let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
            sections.push((tag, bytes[at + 5..at + 5 + len].to_vec()));
            at += 5 + len;
            if tag == 0 {
                assert_eq!(at, bytes.len(), "nothing after the end");
                return Plain { seed, sections };
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.seed);
        for (tag, body) in &self.sections {
            out.push(*tag);
            out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    /// Inserts a section before the first one tagged `before`.
    fn insert_before(&mut self, before: u8, tag: u8, body: Vec<u8>) {
        let at = self
            .sections
            .iter()
            .position(|(t, _)| *t == before)
            .unwrap();
        self.sections.insert(at, (tag, body));
    }
}

fn decrypt(archive: &[u8], identity: &age::x25519::Identity) -> Vec<u8> {
    let decryptor = age::Decryptor::new(archive).unwrap();
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

/// What anyone holding the public recipient can make.
fn encrypt_to(recipient: &str, plain: &[u8]) -> Vec<u8> {
    let recipient = age::x25519::Recipient::from_str(recipient).unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

/// Bank's configuration pointed at an empty data directory under `dir`.
fn fresh_target(cluster: &Cluster, dir: &Path, name: &str) -> NodeConfig {
    let mut config = cluster.config(0);
    config.data_dir = dir.join(name);
    config.key_file = config.data_dir.join("node.key");
    config
}

fn restore(
    archive: &[u8],
    decryption: &Decryption,
    config: &NodeConfig,
) -> Result<backup::Summary, BackupError> {
    backup::restore(archive, decryption, config, Arc::new(SystemClock))
}

/// A refused restore wrote nothing: no store, no key, no staging left.
fn assert_untouched(config: &NodeConfig) {
    let left: Vec<PathBuf> = std::fs::read_dir(&config.data_dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<PathBuf>::new(), "a refused restore left files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_backup_restores_nothing_and_an_honest_one_restores_everything() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let bank = cluster.start(0).await;
    let carrier = cluster.start(1).await;
    cluster.wait_connected().await;
    let own = ["+1 415 555 0101", "+1 415 555 0102", "+1 415 555 0103"];
    for n in own {
        bank.submit(vec![Submission::new(n, Kind::Callback)])
            .await
            .unwrap();
    }
    carrier
        .submit(vec![Submission::new("+1 415 555 0104", Kind::Vishing)])
        .await
        .unwrap();
    eventually("carrier's report reaches bank", WAIT, &bank, || {
        has_report(&bank, "+1 415 555 0104")
    })
    .await;
    let before = bank.status().await.unwrap();
    assert_eq!(before.records, 4);

    let dir = tempfile::tempdir().unwrap();
    let (identity_text, recipient) = backup::new_identity();
    let identity_file = dir.path().join("backup.identity");
    std::fs::write(&identity_file, identity_text.as_bytes()).unwrap();
    let identity = age::x25519::Identity::from_str(
        identity_text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap(),
    )
    .unwrap();
    let archive_path = dir.path().join("bank.age");
    let written = bank
        .backup(
            Encryption::new(std::slice::from_ref(&recipient), None).unwrap(),
            std::fs::File::create(&archive_path).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((written.records, written.own_numbers), (4, 3));
    cluster.shutdown().await;
    let archive = std::fs::read(&archive_path).unwrap();
    assert!(archive.starts_with(b"age-encryption.org/v1\n"));
    // Nothing readable in it: not the seed, not a raw number.
    let plain = decrypt(&archive, &identity);
    let seed = Plain::parse(&plain).seed;
    assert!(!archive.windows(32).any(|w| w == seed.as_slice()));
    assert!(!archive.windows(12).any(|w| w == b"+14155550101"));
    let by_identity = Decryption::identity_file(&identity_file).unwrap();

    // A report planted in Carrier's name by someone with only the public
    // recipient: the record's signature fails, and nothing is written.
    let carrier_key = SigningKey::from_seed(&cluster.members[1].seed);
    let attacker = SigningKey::from_seed(&[0x77; 32]);
    let mut planted = Plain::parse(&plain);
    planted.insert_before(
        OWN_NUMBER,
        RECORD,
        signed_by(&attacker, &carrier_key, "+1 415 555 0166", 9),
    );
    let target = fresh_target(&cluster, dir.path(), "planted");
    let err = restore(
        &encrypt_to(&recipient, &planted.bytes()),
        &by_identity,
        &target,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::Forged {
                reason: "bad_signature",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was restored"), "{err}");
    assert_untouched(&target);

    // A raw number swapped for another (its hash no longer matches).
    let mut swapped = Plain::parse(&plain);
    let (_, body) = swapped
        .sections
        .iter_mut()
        .find(|(t, _)| *t == OWN_NUMBER)
        .unwrap();
    body.truncate(32);
    body.extend_from_slice(b"+14155550199");
    let target = fresh_target(&cluster, dir.path(), "swapped");
    let err = restore(
        &encrypt_to(&recipient, &swapped.bytes()),
        &by_identity,
        &target,
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::ForgedNumber { .. }), "{err}");
    assert_untouched(&target);

    // One flipped byte, the wrong identity, a truncated archive, a format-1
    // plaintext archive: each refused with its reason, nothing written.
    let target = fresh_target(&cluster, dir.path(), "damaged");
    let mut flipped = archive.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let err = restore(&flipped, &by_identity, &target).unwrap_err();
    assert!(matches!(err, BackupError::Decrypt(_)), "{err}");
    let stranger = Decryption::Identities(vec![Box::new(age::x25519::Identity::generate())]);
    let err = restore(&archive, &stranger, &target).unwrap_err();
    assert!(matches!(err, BackupError::Decrypt(_)), "{err}");
    let err = restore(&archive[..archive.len() - 40], &by_identity, &target).unwrap_err();
    assert!(
        matches!(err, BackupError::Decrypt(_) | BackupError::Invalid(_)),
        "{err}"
    );
    let err = restore(
        &b"SIGHTLINE-BACKUP\x01rest of an old archive"[..],
        &by_identity,
        &target,
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::Plaintext), "{err}");
    assert!(err.to_string().contains("format 1"), "{err}");
    assert_untouched(&target);

    // A correctly signed record of an organization that is not a member is
    // left out and counted; the rest restores.
    let outsider = SigningKey::from_seed(&[0x99; 32]);
    let mut extra = Plain::parse(&plain);
    extra.insert_before(
        OWN_NUMBER,
        RECORD,
        signed_by(&outsider, &outsider, "+1 415 555 0177", 1),
    );
    let target = fresh_target(&cluster, dir.path(), "extra");
    let summary = restore(
        &encrypt_to(&recipient, &extra.bytes()),
        &by_identity,
        &target,
    )
    .unwrap();
    assert_eq!(summary.records, 4);
    assert_eq!(summary.skipped.get("non_member"), Some(&1));

    // The honest archive restores to a node identical to the original.
    let target = fresh_target(&cluster, dir.path(), "restored");
    let summary = restore(&archive, &by_identity, &target).unwrap();
    assert_eq!((summary.records, summary.own_numbers), (4, 3));
    let restored = sightline_node::start(target.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let after = restored.status().await.unwrap();
    assert_eq!(after.peer_id, before.peer_id);
    assert_eq!(after.records, before.records);
    assert_eq!(after.own_seq, before.own_seq);
    assert!(!has_report(&restored, "+1 415 555 0166").await);
    let recent = restored.recent(10).await.unwrap();
    let mut raw: Vec<String> = recent.into_iter().filter_map(|r| r.number).collect();
    raw.sort();
    assert_eq!(raw, ["+14155550101", "+14155550102", "+14155550103"]);

    // A passphrase works the same way, and only the right one opens it.
    let phrase_archive = dir.path().join("bank-phrase.age");
    restored
        .backup(
            Encryption::new(&[], Some("correct horse battery".into())).unwrap(),
            std::fs::File::create(&phrase_archive).unwrap(),
        )
        .await
        .unwrap();
    restored.shutdown().await;
    let archive = std::fs::read(&phrase_archive).unwrap();
    let target = fresh_target(&cluster, dir.path(), "from-passphrase");
    let wrong = Decryption::passphrase("incorrect horse battery".into());
    assert!(matches!(
        restore(&archive, &wrong, &target),
        Err(BackupError::Decrypt(_))
    ));
    assert!(matches!(
        restore(&archive, &by_identity, &target),
        Err(BackupError::Decrypt(_))
    ));
    let right = Decryption::passphrase("correct horse battery".into());
    let summary = restore(&archive, &right, &target).unwrap();
    assert_eq!((summary.records, summary.own_numbers), (4, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_older_backup_never_reuses_a_sequence_number() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let bank = cluster.start(0).await;
    let carrier = cluster.start(1).await;
    cluster.wait_connected().await;
    let first = bank
        .submit(vec![Submission::new("+1 415 555 0101", Kind::Callback)])
        .await
        .unwrap();
    assert_eq!(first[0].seq, 1);
    let dir = tempfile::tempdir().unwrap();
    let (identity_text, recipient) = backup::new_identity();
    let identity = dir.path().join("backup.identity");
    std::fs::write(&identity, identity_text.as_bytes()).unwrap();
    let archive = dir.path().join("bank.age");
    bank.backup(
        Encryption::new(std::slice::from_ref(&recipient), None).unwrap(),
        std::fs::File::create(&archive).unwrap(),
    )
    .await
    .unwrap();
    // Three more after the backup (seqs 2-4), which Carrier holds.
    for n in ["+1 415 555 0102", "+1 415 555 0103", "+1 415 555 0104"] {
        bank.submit(vec![Submission::new(n, Kind::Callback)])
            .await
            .unwrap();
    }
    eventually("carrier holds bank's seq 4", WAIT, &carrier, || {
        has_report(&carrier, "+1 415 555 0104")
    })
    .await;
    drop((bank, carrier));
    cluster.shutdown().await;

    // Bank loses its disk and is restored from the older backup.
    let config = cluster.config(0);
    std::fs::rename(&config.data_dir, dir.path().join("lost")).unwrap();
    let summary = backup::restore(
        std::fs::File::open(&archive).unwrap(),
        &Decryption::identity_file(&identity).unwrap(),
        &config,
        Arc::new(SystemClock),
    )
    .unwrap();
    assert_eq!(summary.records, 1);
    // Alone, it cannot know what its peers hold: it refuses to sign.
    let bank = cluster.start(0).await;
    assert!(!bank.status().await.unwrap().own_seq_confirmed);
    let refused = bank
        .submit(vec![Submission::new("+1 415 555 0105", Kind::Callback)])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, sightline_node::SubmitError::OwnSeqUnconfirmed),
        "{refused}"
    );
    // Once Carrier answers, Bank's counter moves past seq 4.
    let carrier = cluster.start(1).await;
    let receipts = bank
        .submit(vec![Submission::new("+1 415 555 0105", Kind::Callback)])
        .await
        .unwrap();
    assert_eq!(receipts[0].seq, 5);
    assert!(bank.status().await.unwrap().own_seq_confirmed);
    eventually("carrier stores seq 5", WAIT, &carrier, || {
        has_report(&carrier, "+1 415 555 0105")
    })
    .await;
    assert!(carrier.status().await.unwrap().equivocations.is_empty());
    drop((bank, carrier));
    cluster.shutdown().await;
}
