//! Honest forwarders are never punished, and whatever fails verification is
//! charged to whoever sent it: a rolling `network.toml` update, clock skew,
//! and junk dated outside the clock window.

use std::sync::Arc;
use std::time::Duration;

use sightline_node::{ManualClock, NodeHandle, Submission};
use sightline_protocol::{Kind, SigningKey};
use sightline_tests::{eventually, Cluster, Options};

use super::{has_report, signed_at, signed_by, wait_until_blocked, RawPeer, WAIT};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Starts member `i`'s node with the network.toml it had before member
/// `newcomer` joined (a rolling update has not reached it yet).
async fn start_before_joining(cluster: &Cluster, i: usize, newcomer: usize) -> NodeHandle {
    let new_org = cluster.members[newcomer].peer_id;
    let mut old = cluster.config(i);
    old.network.members.retain(|m| m.peer_id != new_org);
    old.network.bootstrap.retain(|(p, _)| *p != new_org);
    sightline_node::start(old, cluster.clock.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_of_a_member_this_node_does_not_know_yet_is_not_punished() {
    // Bank runs the old network.toml, without NewOrg; Carrier already has
    // the new one. NewOrg's records reach Bank only through Carrier.
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("NewOrg", 0.5)]);
    let bank = start_before_joining(&cluster, 0, 2).await;
    let carrier = cluster.start(1).await;
    eventually("bank and carrier connected", WAIT, &bank, || async {
        bank.peers()
            .await
            .iter()
            .any(|p| p.org == "Carrier" && p.connected)
    })
    .await;
    let newcomer = RawPeer::start(&cluster, cluster.members[2].seed);
    newcomer.client.dial(cluster.addr(1)).await.unwrap();
    eventually("newcomer connected to carrier", WAIT, &carrier, || async {
        carrier
            .peers()
            .await
            .iter()
            .any(|p| p.org == "NewOrg" && p.connected)
    })
    .await;
    eventually("newcomer subscribed", WAIT, &carrier, || async {
        carrier.status().await.is_ok_and(|s| s.net.subscribed >= 2)
    })
    .await;
    let key = SigningKey::from_seed(&cluster.members[2].seed);
    for i in 0..30 {
        let number = format!("+1 415 555 {:04}", 3100 + i);
        newcomer
            .client
            .publish(signed_by(&key, &key, &number, i + 1))
            .await
            .unwrap();
    }
    eventually(
        "carrier stores the new member's records",
        WAIT,
        &carrier,
        || has_report(&carrier, "+1 415 555 3129"),
    )
    .await;
    eventually(
        "bank ignores what it cannot place yet",
        WAIT,
        &bank,
        || async {
            bank.status()
                .await
                .is_ok_and(|s| s.rejected.get("non_member").copied().unwrap_or(0) >= 10)
        },
    )
    .await;
    // Give scoring time to act, had the forwarder been charged.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = bank.status().await.unwrap();
    assert!(status.net.blocked.is_empty(), "{:?}", status.net.blocked);
    assert_eq!(status.rejected.get("bad_signature"), None);
    assert!(!has_report(&bank, "+1 415 555 3100").await);
    // Carrier is still connected and still trusted with what Bank can place.
    carrier
        .submit(vec![Submission::new("+1 415 555 3200", Kind::Vishing)])
        .await
        .unwrap();
    eventually(
        "carrier's own record still reaches bank",
        WAIT,
        &bank,
        || has_report(&bank, "+1 415 555 3200"),
    )
    .await;
    assert!(bank
        .peers()
        .await
        .iter()
        .any(|p| p.org == "Carrier" && p.connected));
    drop(newcomer);
    bank.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_dated_outside_the_window_is_a_bad_signature_charged_to_its_sender() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Mallory", 0.5)]);
    let bank = cluster.start(0).await;
    let mallory = RawPeer::start(&cluster, cluster.members[1].seed);
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    eventually("mallory subscribed", WAIT, &bank, || async {
        bank.status().await.is_ok_and(|s| s.net.subscribed >= 1)
    })
    .await;
    // Records in Bank's name that nobody signed, dated a year ahead and a
    // year and a half ago: without a signature check they would be
    // "from the future" and "past retention", ignored, free to send.
    let bank_key = SigningKey::from_seed(&cluster.members[0].seed);
    let mallory_key = SigningKey::from_seed(&cluster.members[1].seed);
    let junk = [365 * 86_400, -540 * 86_400, 30 * 86_400].map(|shift: i64| {
        let at = now().checked_add_signed(shift).unwrap();
        signed_at(
            &mallory_key,
            &bank_key,
            "+1 415 555 0190",
            at % 1000 + 1,
            at,
        )
    });
    for bytes in junk {
        mallory.client.publish(bytes).await.unwrap();
    }
    wait_until_blocked(&bank, "Mallory").await;
    let status = bank.status().await.unwrap();
    assert!(
        status.rejected.get("bad_signature").copied().unwrap_or(0) >= 1,
        "{:?}",
        status.rejected
    );
    assert_eq!(status.rejected.get("from_the_future"), None);
    assert_eq!(status.rejected.get("past_retention"), None);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_ignored_for_clock_skew_is_fetched_again_once_the_clock_allows_it() {
    // Carrier's clock runs an hour ahead of Bank's; Bank's max skew is 5
    // minutes, so it ignores Carrier's records until its clock catches up.
    let cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let bank_clock = Arc::new(ManualClock::new(now()));
    let carrier_clock = Arc::new(ManualClock::new(now() + 3600));
    let bank = sightline_node::start(cluster.config(0), bank_clock.clone())
        .await
        .unwrap();
    let carrier = sightline_node::start(cluster.config(1), carrier_clock)
        .await
        .unwrap();
    eventually("connected", WAIT, &bank, || async {
        bank.peers().await.iter().any(|p| p.connected)
    })
    .await;
    carrier
        .submit(vec![Submission::new("+1 415 555 0177", Kind::Callback)])
        .await
        .unwrap();
    // Refused by gossip and by at least one catch-up round after it.
    eventually("ignored as future-dated", WAIT, &bank, || async {
        bank.status()
            .await
            .is_ok_and(|s| s.rejected.get("from_the_future").copied().unwrap_or(0) >= 2)
    })
    .await;
    assert!(!has_report(&bank, "+1 415 555 0177").await);
    // Bank's clock reaches Carrier's: the next catch-up brings it, with no
    // new record at Carrier to prompt it.
    bank_clock.advance(3600);
    eventually("fetched again and stored", WAIT, &bank, || {
        has_report(&bank, "+1 415 555 0177")
    })
    .await;
    assert!(bank.status().await.unwrap().net.blocked.is_empty());
    bank.shutdown().await;
    carrier.shutdown().await;
    drop(cluster);
}

/// A record signed by `seed`'s key whose nonce point `R` has a component of
/// order 2: the cofactorless equation fails, and a batch equation with
/// coefficients derived from the batch used to pass it half the time.
fn torsion_signed(seed: &[u8; 32], number: &str, seq: u64) -> Vec<u8> {
    use ciborium::value::Value;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    use curve25519_dalek::Scalar;
    use sha2::Digest as _;
    let key = SigningKey::from_seed(seed);
    let honest = signed_by(&key, &key, number, seq);
    let Value::Map(mut entries) = ciborium::from_reader::<Value, _>(honest.as_slice()).unwrap()
    else {
        unreachable!()
    };
    entries.retain(|(k, _)| k.as_integer() != Some(17.into()));
    let mut body = Vec::new();
    ciborium::into_writer(&Value::Map(entries.clone()), &mut body).unwrap();
    let mut message = b"sightline/sighting/v1".to_vec();
    message.extend_from_slice(&body);
    let a = ed25519_dalek::SigningKey::from_bytes(seed).to_scalar();
    let r = Scalar::from(1000 + seq);
    let big_r = (B * r + EIGHT_TORSION[4]).compress().to_bytes();
    let k = Scalar::from_bytes_mod_order_wide(
        &sha2::Sha512::new()
            .chain_update(big_r)
            .chain_update(key.origin().as_bytes())
            .chain_update(&message)
            .finalize()
            .into(),
    );
    let mut signature = big_r.to_vec();
    signature.extend_from_slice(&(r + k * a).to_bytes());
    entries.push((Value::Integer(17.into()), Value::Bytes(signature)));
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Map(entries), &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torsion_signatures_are_stored_nowhere_and_their_forwarder_is_never_blamed() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("Mallory", 0.5)]);
    let bank = cluster.start(0).await;
    let carrier = cluster.start(1).await;
    cluster.wait_connected().await;
    let mallory = RawPeer::start(&cluster, cluster.members[2].seed);
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    eventually("mallory subscribed at bank", WAIT, &bank, || async {
        bank.status().await.is_ok_and(|s| s.net.subscribed >= 2)
    })
    .await;
    // One honest record first, so the others arrive in batches with it.
    let seed = cluster.members[2].seed;
    let key = SigningKey::from_seed(&seed);
    mallory
        .client
        .publish(signed_by(&key, &key, "+1 415 555 4000", 1))
        .await
        .unwrap();
    eventually(
        "mallory's honest record reaches carrier",
        WAIT,
        &carrier,
        || has_report(&carrier, "+1 415 555 4000"),
    )
    .await;
    for i in 0..40 {
        let number = format!("+1 415 555 {:04}", 4001 + i);
        mallory
            .client
            .publish(torsion_signed(&seed, &number, 2 + i))
            .await
            .unwrap();
    }
    wait_until_blocked(&bank, "Mallory").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in [&bank, &carrier] {
        let status = node.status().await.unwrap();
        assert_eq!(status.records, 1, "only the honest record is stored");
        assert!(
            status.net.blocked.iter().all(|org| org == "Mallory"),
            "{:?}",
            status.net.blocked
        );
        for i in 0..40 {
            assert!(!has_report(node, &format!("+1 415 555 {:04}", 4001 + i)).await);
        }
    }
    assert!(bank
        .status()
        .await
        .unwrap()
        .rejected
        .get("bad_signature")
        .is_some_and(|n| *n >= 1));
    drop(mallory);
    cluster.shutdown().await;
}

/// Mallory's flood, in a fixed shuffled order: `records` records of one
/// origin signed at `at`, over `numbers` numbers (seq `s` reports number
/// `s % numbers`).
fn flood(key: &SigningKey, at: u64, records: u64, numbers: u64) -> Vec<Vec<u8>> {
    let mut seqs: Vec<u64> = (1..=records).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..seqs.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        seqs.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
    }
    seqs.into_iter()
        .map(|seq| {
            let number = format!("+1 415 555 {:04}", 6000 + seq % numbers);
            signed_at(key, key, &number, seq, at)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_leaves_every_honest_node_with_the_same_bounded_set() {
    // Bank, Carrier and Telco are honest. Mallory is a member that floods
    // (over both per-origin limits, out of order), sends torsion
    // signatures and junk in Bank's name. NewOrg has just joined: Carrier
    // and Telco run the new network.toml, Bank still the old one.
    let limits = sightline_node::store::Limits {
        records_per_hour: 40,
        numbers_per_day: 25,
    };
    let mut cluster = Cluster::build(
        &[
            ("Bank", 0.8),
            ("Carrier", 0.6),
            ("Telco", 0.7),
            ("Mallory", 0.5),
            ("NewOrg", 0.5),
        ],
        &Options {
            limits,
            ..Options::default()
        },
    );
    let bank = start_before_joining(&cluster, 0, 4).await;
    let carrier = cluster.start(1).await;
    let telco = cluster.start(2).await;
    eventually(
        "bank connected to carrier and telco",
        WAIT,
        &bank,
        || async {
            bank.peers()
                .await
                .iter()
                .filter(|p| (p.org == "Carrier" || p.org == "Telco") && p.connected)
                .count()
                == 2
        },
    )
    .await;
    let mallory = RawPeer::start(&cluster, cluster.members[3].seed);
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    let newcomer = RawPeer::start(&cluster, cluster.members[4].seed);
    newcomer.client.dial(cluster.addr(1)).await.unwrap();
    eventually("mallory subscribed at bank", WAIT, &bank, || async {
        bank.status().await.is_ok_and(|s| s.net.subscribed >= 3)
    })
    .await;
    eventually("newcomer subscribed at carrier", WAIT, &carrier, || async {
        carrier.status().await.is_ok_and(|s| s.net.subscribed >= 3)
    })
    .await;

    // Item 2: 240 records of 240 numbers (re-reports would replace each
    // other), all seen yesterday (one hour and one day bucket), against
    // limits of 40 an hour and 25 numbers a day.
    let mallory_seed = cluster.members[3].seed;
    let mallory_key = SigningKey::from_seed(&mallory_seed);
    let yesterday = now() - 86_400;
    for bytes in flood(&mallory_key, yesterday, 240, 240) {
        mallory.client.publish(bytes).await.unwrap();
    }
    // Item 3: the newcomer's records reach Bank only through Carrier.
    let newcomer_key = SigningKey::from_seed(&cluster.members[4].seed);
    for i in 0..5 {
        let number = format!("+1 415 555 {:04}", 5100 + i);
        newcomer
            .client
            .publish(signed_by(&newcomer_key, &newcomer_key, &number, i + 1))
            .await
            .unwrap();
    }
    eventually(
        "bank flags mallory over its limits",
        WAIT,
        &bank,
        || async {
            bank.status().await.is_ok_and(|s| {
                s.over_limit
                    .iter()
                    .any(|(org, n)| org == "Mallory" && *n >= 100)
            })
        },
    )
    .await;
    eventually(
        "bank ignores the newcomer, for now",
        WAIT,
        &bank,
        || async {
            bank.status()
                .await
                .is_ok_and(|s| s.rejected.get("non_member").copied().unwrap_or(0) >= 1)
        },
    )
    .await;
    // Items 1 and 11, today (room under both limits): torsion signatures
    // and junk in Bank's name dated a year ahead.
    for i in 0..10 {
        let number = format!("+1 415 555 {:04}", 5200 + i);
        mallory
            .client
            .publish(torsion_signed(&mallory_seed, &number, 300 + i))
            .await
            .unwrap();
    }
    let bank_key = SigningKey::from_seed(&cluster.members[0].seed);
    let junk = signed_at(
        &mallory_key,
        &bank_key,
        "+1 415 555 5300",
        77,
        now() + 365 * 86_400,
    );
    mallory.client.publish(junk).await.unwrap();
    wait_until_blocked(&bank, "Mallory").await;
    let status = bank.status().await.unwrap();
    assert!(status.rejected.get("bad_signature").copied().unwrap_or(0) >= 1);
    assert_eq!(status.rejected.get("from_the_future"), None);
    drop(mallory);
    drop(newcomer);

    // The rolling update completes: Bank restarts with the new file.
    bank.shutdown().await;
    drop(bank);
    let bank = cluster.start(0).await;
    eventually("bank fetches the newcomer's records", WAIT, &bank, || {
        has_report(&bank, "+1 415 555 5104")
    })
    .await;
    let nodes = [&bank, &carrier, &telco];
    eventually(
        "every honest node holds the same set",
        WAIT,
        &bank,
        || async {
            let mut digests = Vec::new();
            for node in nodes {
                digests.push(node.set_digest().await.unwrap());
            }
            digests.windows(2).all(|w| w[0] == w[1])
        },
    )
    .await;
    let mallory_numbers: Vec<String> = (0..240)
        .map(|n| format!("+1 415 555 {:04}", 6000 + n))
        .collect();
    for node in nodes {
        let status = node.status().await.unwrap();
        let kept = status
            .origins
            .iter()
            .find(|o| o.org == "Mallory")
            .map_or(0, |o| o.count);
        assert!(
            (1..=40).contains(&kept),
            "{}: {kept} of Mallory's records",
            status.org
        );
        let mut reported = 0;
        for number in &mallory_numbers {
            if has_report(node, number).await {
                reported += 1;
            }
        }
        eprintln!(
            "{}: {kept} of Mallory's 240 records over {reported} numbers kept; over limit here: {:?}",
            status.org, status.over_limit
        );
        assert!((1..=25).contains(&reported), "{reported} numbers");
        for i in 0..10 {
            assert!(!has_report(node, &format!("+1 415 555 {:04}", 5200 + i)).await);
        }
        assert!(!has_report(node, "+1 415 555 5300").await);
        // Mallory may have reached others directly (peer exchange) and
        // been blocked there too; no honest forwarder is blocked anywhere.
        assert!(
            status.net.blocked.iter().all(|org| org == "Mallory"),
            "{}: {:?}",
            status.org,
            status.net.blocked
        );
    }
    bank.shutdown().await;
    drop(bank);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_refuses_old_records_fetches_only_what_it_lacks() {
    // Bank keeps reports for 365 days; Carrier for one. Carrier refuses
    // Bank's 300 three-day-old reports for good, and must not fetch them
    // again with every new report (before: each new one re-fetched all 300).
    let mut cluster = Cluster::with_options(
        &[("Bank", 0.8), ("Carrier", 0.6)],
        Duration::from_millis(500),
    );
    let bank = cluster.start(0).await;
    let old = now() - 3 * 86_400;
    let batch = (0..300)
        .map(|i| {
            let mut s = Submission::new(format!("+1 415 555 {i:04}"), Kind::Smishing);
            s.first_seen = Some(old);
            s.last_seen = Some(old);
            s
        })
        .chain((0..10).map(|i| Submission::new(format!("+1 212 555 {i:04}"), Kind::Vishing)))
        .collect();
    bank.submit(batch).await.unwrap();

    let mut config = cluster.config(1);
    config.retention_secs = 86_400;
    let carrier = sightline_node::start(config, cluster.clock.clone())
        .await
        .unwrap();
    let settled = |count: u64, contiguous: u64| {
        let carrier = carrier.clone();
        async move {
            carrier.status().await.is_ok_and(|s| {
                s.origins
                    .iter()
                    .any(|o| o.count == count && o.contiguous == contiguous)
            })
        }
    };
    eventually(
        "carrier holds the current ten, the rest settled",
        WAIT,
        &carrier,
        || settled(10, 310),
    )
    .await;
    // Let what gossip and the first catch-up round had in flight drain.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = carrier.status().await.unwrap();
    // Each old report was refused at least once (gossip and the first
    // catch-up round may both have brought it).
    let refused = before.rejected.get("past_retention").copied().unwrap_or(0);
    assert!(refused >= 300, "{:?}", before.rejected);

    for i in 0..3_u64 {
        bank.submit(vec![Submission::new(
            format!("+1 212 555 01{i:02}"),
            Kind::Vishing,
        )])
        .await
        .unwrap();
        eventually("the new report arrives", WAIT, &carrier, || {
            settled(11 + i, 311 + i)
        })
        .await;
    }
    // Several catch-up rounds pass (every 500 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = carrier.status().await.unwrap();
    let received = after.received - before.received;
    println!("records received for 3 new reports after 300 refused: {received}");
    assert!(
        received <= 12,
        "{received} records received for 3 new ones (history re-fetched)"
    );
    assert_eq!(
        after.rejected.get("past_retention"),
        Some(&refused),
        "an old report was fetched again"
    );
    // Nothing is missing any more: the lag is zero.
    let lag: u64 = after
        .origins
        .iter()
        .map(|o| o.max_seq.saturating_sub(o.contiguous))
        .sum();
    assert_eq!(lag, 0);
    carrier.shutdown().await;
    cluster.shutdown().await;
}
