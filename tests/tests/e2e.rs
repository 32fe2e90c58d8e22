//! End-to-end tests: real nodes (libp2p over loopback TCP, sled on disk)
//! configured through real `network.toml` / `sightline.toml` files.

// Scenario tests read top to bottom; splitting them would hide the story.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use libp2p::gossipsub::MessageAcceptance;
use sightline_node::catchup::{
    self, CatchUpRequest, CatchUpResponse, ReconcileRequest, ReconcileResponse,
};
use sightline_node::network::{self, NetworkEvent};
use sightline_node::{Band, NodeHandle, Submission};
use sightline_protocol::{
    parse_number, Channel, Kind, LineType, NetworkId, Sighting, SigningKey, Verdict,
};
use sightline_tests::{eventually, Cluster};

#[path = "e2e/api.rs"]
mod api;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/campaigns.rs"]
mod campaigns;
#[path = "e2e/deploy.rs"]
mod deploy;
#[path = "e2e/disk_full.rs"]
mod disk_full;
#[path = "e2e/forwarders.rs"]
mod forwarders;
#[path = "e2e/upgrade.rs"]
mod upgrade;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `node` has blocked `org` (graylisted by gossip score) and
/// dropped its connection.
async fn wait_until_blocked(node: &NodeHandle, org: &str) {
    eventually(&format!("{org} blocked"), WAIT, node, || async {
        node.status()
            .await
            .is_ok_and(|s| s.net.blocked == vec![org.to_owned()])
    })
    .await;
    eventually(&format!("{org} disconnected"), WAIT, node, || async {
        node.peers()
            .await
            .iter()
            .any(|p| p.org == org && !p.connected)
    })
    .await;
}

/// A distinct number per `i` (below 9,900): a report of a number again
/// would replace the first (SPEC §12.1).
fn number(i: u32) -> String {
    format!("+1 415 555 {:04}", 100 + i)
}

async fn has_report(node: &NodeHandle, number: &str) -> bool {
    node.lookup(number, None)
        .await
        .is_ok_and(|l| !l.score.reports.is_empty())
}

async fn records(node: &NodeHandle) -> u64 {
    node.status().await.map_or(0, |s| s.records)
}

/// A raw protocol peer with a member's (or anyone's) key, driven by the
/// test: it speaks the real gossip and catch-up protocols but sends
/// whatever bytes the test gives it.
/// Just the command side of a raw peer (its events drained elsewhere).
struct RawPeerClient {
    client: network::Client,
}

struct RawPeer {
    client: network::Client,
    events: tokio::sync::mpsc::Receiver<NetworkEvent>,
    /// Stops the peer's event loop when dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl RawPeer {
    fn start(cluster: &Cluster, seed: [u8; 32]) -> Self {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(seed).unwrap();
        let config = cluster.config(0);
        let port = sightline_tests::free_port();
        let listen = [format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        let (client, events, event_loop) = network::new(keypair, &config.network, &listen).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(event_loop.run(stop.clone()));
        RawPeer {
            client,
            events,
            _stop: stop.drop_guard(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighting_submitted_at_one_node_is_found_at_the_others() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("Cert", 0.7)]);
    cluster.start_all().await;
    cluster.wait_connected().await;
    let mut item = Submission::new("+1 (415) 555-0134", Kind::Smishing);
    item.channel = Channel::Sms;
    item.brand = Some("Example Bank".into());
    item.confidence = 90;
    let receipts = cluster.node(0).submit(vec![item]).await.unwrap();
    assert_eq!(receipts[0].number, "+14155550134");
    for i in [1, 2] {
        let node = cluster.node(i);
        eventually("sighting reaches peer", WAIT, node, || {
            has_report(node, "+14155550134")
        })
        .await;
        let lookup = node.lookup("415-555-0134", Some("US")).await.unwrap();
        assert_eq!(lookup.score.orgs, 1);
        assert_eq!(lookup.score.reports[0].org, "Bank");
        assert_eq!(lookup.line_type, LineType::FixedOrMobile);
        assert_eq!(lookup.country, "US");
        assert!(lookup.score.brands.contains("Example Bank"));
        assert!(
            (lookup.score.score - 0.72).abs() < 0.01,
            "{}",
            lookup.score.score
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_late_catches_up_on_500_sightings() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("Cert", 0.7)]);
    cluster.start(0).await;
    cluster.start(1).await;
    cluster.wait_connected().await;
    let batch: Vec<Submission> = (0..500)
        .map(|i| {
            let mut s = Submission::new(number(i), Kind::Vishing);
            s.brand = Some(format!("Brand {i}"));
            s.count = i + 1;
            s
        })
        .collect();
    cluster.node(0).submit(batch).await.unwrap();
    let b = cluster.node(1).clone();
    eventually("500 records at the second node", WAIT, &b, || async {
        records(&b).await == 500
    })
    .await;

    let c = cluster.start(2).await;
    eventually("late node caught up", WAIT, &c, || async {
        records(&c).await == 500
    })
    .await;
    let a = cluster.node(0).set_digest().await.unwrap();
    assert_eq!(c.set_digest().await.unwrap(), a);
    assert_eq!(b.set_digest().await.unwrap(), a);
    let status = c.status().await.unwrap();
    assert!(
        status.sync_pages >= 2,
        "500 records need at least two pages of 256: {}",
        status.sync_pages
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_data_and_continues_its_sequence() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let a = cluster.start(0).await;
    let first = a
        .submit(
            (0..3)
                .map(|i| Submission::new(number(i), Kind::Bec))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let before = a.set_digest().await.unwrap();
    drop(a); // the store is released when the last handle goes
    cluster.stop(0).await;

    let a = cluster.start(0).await;
    assert_eq!(a.set_digest().await.unwrap(), before);
    assert_eq!(records(&a).await, 3);
    let next = a
        .submit(vec![Submission::new(number(9), Kind::Bec)])
        .await
        .unwrap();
    assert_eq!(next[0].seq, 4);
    assert!(has_report(&a, &number(0)).await);
    cluster.shutdown().await;
}

fn signed_by(key: &SigningKey, origin_key: &SigningKey, e164: &str, seq: u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signed_at(key, origin_key, e164, seq, now)
}

/// A record whose claimed origin is `origin_key`, signed by `key`, seen at
/// `now` (first and last).
fn signed_at(key: &SigningKey, origin_key: &SigningKey, e164: &str, seq: u64, now: u64) -> Vec<u8> {
    let parsed = parse_number(e164, None).unwrap();
    let hash_key = sightline_protocol::HashKey::from_bytes([0x42; 32]);
    let sighting = Sighting {
        network: NetworkId::new("test-net").unwrap(),
        origin: key.origin(),
        seq,
        number: hash_key.number_hash(&parsed.e164),
        block: hash_key.block_hash(&parsed.e164),
        cc: parsed.country_code,
        line: parsed.line,
        kind: Kind::Smishing,
        verdict: Verdict::Malicious,
        channel: Channel::Sms,
        brand: None,
        confidence: 100,
        count: 1,
        first_seen: now,
        last_seen: now,
        expires: None,
        links: None,
        role: None,
    };
    let mut bytes = sighting.clone().sign(key).unwrap().as_bytes().to_vec();
    if key.origin() != origin_key.origin() {
        // Swap in the victim's origin: the signature no longer matches.
        let at = bytes
            .windows(32)
            .position(|w| w == key.origin().as_bytes())
            .unwrap();
        bytes[at..at + 32].copy_from_slice(origin_key.origin().as_bytes());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_non_member_records_are_rejected_and_non_members_cannot_connect() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("Mallory", 0.5)]);
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    // Mallory is a member but runs the raw peer, not a Sightline node.
    let mallory = RawPeer::start(&cluster, cluster.members[2].seed);
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    eventually("mallory connected", WAIT, &a, || async {
        a.peers()
            .await
            .iter()
            .any(|p| p.org == "Mallory" && p.connected)
    })
    .await;
    eventually("mallory subscribed", WAIT, &a, || async {
        a.status().await.is_ok_and(|s| s.net.subscribed >= 2)
    })
    .await;

    let mallory_key = SigningKey::from_seed(&cluster.members[2].seed);
    let bank_key = SigningKey::from_seed(&cluster.members[0].seed);
    let outsider_key = SigningKey::from_seed(&[0x99; 32]);
    let forged = signed_by(&mallory_key, &bank_key, "+1 415 555 0177", 1);
    let non_member = signed_by(&outsider_key, &outsider_key, "+1 415 555 0178", 1);
    let honest = signed_by(&mallory_key, &mallory_key, "+1 415 555 0179", 1);
    // The honest record first: once mallory misbehaves it is graylisted.
    mallory.client.publish(honest).await.unwrap();
    eventually("honest record from mallory stored", WAIT, &a, || {
        has_report(&a, "+1 415 555 0179")
    })
    .await;
    // The non-member's record first: it is ignored without penalty (an
    // honest forwarder may know a member this node does not yet).
    mallory.client.publish(non_member.clone()).await.unwrap();
    eventually("non-member record ignored", WAIT, &a, || async {
        let r = a.status().await.unwrap().rejected;
        r.get("non_member") == Some(&1)
    })
    .await;
    let forged_too = signed_by(&mallory_key, &bank_key, "+1 415 555 0176", 2);
    for bytes in [forged.clone(), vec![0xff, 0x00, 0x01], forged_too] {
        mallory.client.publish(bytes).await.unwrap();
    }
    // Each invalid message is rejected for its reason (those arriving after
    // mallory is graylisted are dropped by gossipsub before validation).
    eventually("rejections counted", WAIT, &a, || async {
        let r = a.status().await.unwrap().rejected;
        let reasons = ["bad_signature", "malformed"];
        let counted: u64 = reasons.iter().filter_map(|k| r.get(*k)).sum();
        counted >= 2 && r.get("malformed").copied().unwrap_or(0) <= 1
    })
    .await;
    for node in [&a, &b] {
        eventually("honest record everywhere", WAIT, node, || {
            has_report(node, "+1 415 555 0179")
        })
        .await;
        assert!(
            !has_report(node, "+1 415 555 0177").await,
            "forged record stored"
        );
        assert!(
            !has_report(node, "+1 415 555 0178").await,
            "non-member record stored"
        );
        assert_eq!(records(node).await, 1);
    }
    // Invalid messages drive mallory's gossip score below the graylist
    // threshold; the node then disconnects and blocks it.
    wait_until_blocked(&a, "Mallory").await;

    // A non-member completes no connection: the allow-list gate refuses it.
    let outsider = RawPeer::start(&cluster, [0x99; 32]);
    outsider.client.dial(cluster.addr(0)).await.unwrap();
    eventually("non-member refused", WAIT, &a, || async {
        a.status()
            .await
            .is_ok_and(|s| s.net.refused_non_members >= 1)
    })
    .await;
    assert!(a.peers().await.iter().all(|p| p.org != "unknown"));
    assert_eq!(a.status().await.unwrap().net.connected, 1, "only Carrier");
    cluster.shutdown().await;
}

/// Runs catch-up version 2 against `peer` from an empty set for `origin`,
/// as a member would: the summary, negentropy rounds, fetches of every item
/// found (checking the node answers malformed requests `Invalid` on the
/// way). Returns the summary answer and the fetched records.
async fn reconcile_everything(
    client: &network::Client,
    peer: libp2p::PeerId,
    origin: [u8; 32],
) -> (ReconcileResponse, Vec<serde_bytes::ByteBuf>) {
    let summary = client
        .reconcile(peer, ReconcileRequest::Summary)
        .await
        .unwrap();
    let ReconcileResponse::Summary(sets) = &summary else {
        panic!("expected a summary, got {summary:?}");
    };
    assert!(sets.iter().any(|s| s.origin == origin));
    let (mut session, mut message) = sightline_node::reconcile::Session::start(&[]).unwrap();
    loop {
        let answer = client
            .reconcile(
                peer,
                ReconcileRequest::Reconcile {
                    origin,
                    message: serde_bytes::ByteBuf::from(message),
                },
            )
            .await
            .unwrap();
        let ReconcileResponse::Reconcile { message: answer } = answer else {
            panic!("expected a reconciliation answer, got {answer:?}");
        };
        match session.step(&answer).unwrap() {
            Some(next) => message = next,
            None => break,
        }
    }
    let items: Vec<serde_bytes::ByteBuf> = session
        .need()
        .iter()
        .map(|i| serde_bytes::ByteBuf::from(i.to_vec()))
        .collect();
    let fetched = client
        .reconcile(
            peer,
            ReconcileRequest::Fetch {
                origin,
                items: items.clone(),
            },
        )
        .await
        .unwrap();
    let ReconcileResponse::Records { records } = fetched else {
        panic!("expected records, got {fetched:?}");
    };
    // Malformed requests: a message that is not negentropy's, a fetch over
    // its limit, an item that is not 32 bytes. Each is refused, not served.
    for bad in [
        ReconcileRequest::Reconcile {
            origin,
            message: serde_bytes::ByteBuf::from(Vec::new()),
        },
        ReconcileRequest::Fetch {
            origin,
            items: vec![items[0].clone(); catchup::MAX_FETCH + 1],
        },
        ReconcileRequest::Fetch {
            origin,
            items: vec![serde_bytes::ByteBuf::from(vec![1, 2, 3])],
        },
    ] {
        let answer = client.reconcile(peer, bad).await.unwrap();
        assert_eq!(answer, ReconcileResponse::Invalid);
    }
    (summary, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_numbers_never_appear_in_gossip_or_catch_up_payloads() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Observer", 0.5)]);
    let a = cluster.start(0).await;
    let mut observer = RawPeer::start(&cluster, cluster.members[1].seed);
    observer.client.dial(cluster.addr(0)).await.unwrap();
    eventually("observer subscribed", WAIT, &a, || async {
        a.status().await.is_ok_and(|s| s.net.subscribed >= 1)
    })
    .await;

    let inputs = [
        "+1 (415) 555-0134",
        "+44 20 7946 0958",
        "+61 491 570 156",
        "+33 9 87 65 43 21",
    ];
    let batch = inputs
        .iter()
        .map(|n| Submission::new(*n, Kind::Callback))
        .collect();
    a.submit(batch).await.unwrap();

    // Gossip: the exact bytes the node published.
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    while payloads.len() < inputs.len() {
        let event = tokio::time::timeout(WAIT, observer.events.recv())
            .await
            .expect("gossip arrives")
            .unwrap();
        if let NetworkEvent::Gossip {
            data,
            message_id,
            source,
        } = event
        {
            observer
                .client
                .validate(message_id, source, MessageAcceptance::Ignore)
                .await
                .unwrap();
            payloads.push(data);
        }
    }
    // Catch-up: progress and a page of records, as the node sent them.
    let peer = cluster.members[0].peer_id;
    let CatchUpResponse::Progress(progress) = observer
        .client
        .request(peer, CatchUpRequest::Progress(vec![]))
        .await
        .unwrap()
    else {
        panic!("expected progress");
    };
    let origin = progress[0].origin;
    let response = observer
        .client
        .request(
            peer,
            CatchUpRequest::Pull {
                origin,
                after: 0,
                limit: 256,
            },
        )
        .await
        .unwrap();
    let CatchUpResponse::Records { records, .. } = &response else {
        panic!("expected records")
    };
    assert_eq!(records.len(), inputs.len());
    let mut encoded_response = Vec::new();
    ciborium::into_writer(&response, &mut encoded_response).unwrap();
    payloads.extend(records.iter().map(|r| r.to_vec()));
    payloads.push(encoded_response);
    // Catch-up version 2: the summary, a reconciliation from an empty set,
    // and the fetch of every item it found.
    let (summary, fetched) = reconcile_everything(&observer.client, peer, origin).await;
    assert_eq!(fetched.len(), inputs.len());
    let mut encoded = Vec::new();
    ciborium::into_writer(&summary, &mut encoded).unwrap();
    payloads.push(encoded);
    payloads.extend(fetched.iter().map(|r| r.to_vec()));

    let hash_key = sightline_protocol::HashKey::from_bytes([0x42; 32]);
    for input in inputs {
        let e164 = parse_number(input, None).unwrap().e164;
        let digits = &e164.as_str()[1..];
        let national = &digits[digits.len() - 9..];
        let hash = hash_key.number_hash(&e164);
        // Positive control: the captured payloads do carry this number's hash.
        assert!(
            payloads
                .iter()
                .any(|p| p.windows(32).any(|w| w == hash.as_bytes())),
            "hash of {input} not captured"
        );
        for p in &payloads {
            for needle in [e164.as_str(), digits, national] {
                assert!(
                    !p.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "raw number {needle} in a payload"
                );
            }
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_weighting_gives_different_scores_for_different_orgs() {
    let mut cluster = Cluster::new(&[("Trusted", 0.9), ("Unproven", 0.3), ("Analyst", 0.5)]);
    cluster.start_all().await;
    cluster.wait_connected().await;
    let report = |n: &str| {
        let mut s = Submission::new(n, Kind::Smishing);
        s.confidence = 100;
        vec![s]
    };
    cluster
        .node(0)
        .submit(report("+1 415 555 0101"))
        .await
        .unwrap();
    cluster
        .node(1)
        .submit(report("+1 415 555 0102"))
        .await
        .unwrap();
    let c = cluster.node(2).clone();
    eventually("both reports at the analyst node", WAIT, &c, || async {
        has_report(&c, "+1 415 555 0101").await && has_report(&c, "+1 415 555 0102").await
    })
    .await;
    let trusted = c.lookup("+1 415 555 0101", None).await.unwrap();
    let unproven = c.lookup("+1 415 555 0102", None).await.unwrap();
    assert!(
        (trusted.score.score - 0.9).abs() < 0.01,
        "{}",
        trusted.score.score
    );
    assert!(
        (unproven.score.score - 0.3).abs() < 0.01,
        "{}",
        unproven.score.score
    );
    assert_eq!(
        (trusted.score.band, unproven.score.band),
        (Band::High, Band::Low)
    );
    // Both share a block: the analyst sees the rotation.
    assert_eq!(trusted.block_activity, 2);
    // The reporting node counts its own organization at 1.0.
    let own = cluster
        .node(1)
        .lookup("+1 415 555 0102", None)
        .await
        .unwrap();
    assert!((own.score.score - 1.0).abs() < 0.01, "{}", own.score.score);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_propagates_and_drops_the_score() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6), ("Cert", 0.7)]);
    cluster.start_all().await;
    cluster.wait_connected().await;
    let mut item = Submission::new("+44 20 7946 0958", Kind::Vishing);
    item.confidence = 90;
    cluster.node(0).submit(vec![item]).await.unwrap();
    let c = cluster.node(2).clone();
    eventually("report arrives", WAIT, &c, || async {
        c.lookup("+44 20 7946 0958", None)
            .await
            .is_ok_and(|l| l.score.score > 0.7)
    })
    .await;
    let receipt = cluster
        .node(0)
        .withdraw("020 7946 0958", Some("GB"))
        .await
        .unwrap();
    assert_eq!(receipt.seq, 2);
    for i in [1, 2] {
        let node = cluster.node(i).clone();
        // The withdrawal itself, not just a zero score: a node the report
        // has not reached yet also scores the number 0.
        eventually("withdrawal arrives", WAIT, &node, || async {
            node.lookup("+44 20 7946 0958", None).await.is_ok_and(|l| {
                l.score.score == 0.0
                    && l.score
                        .reports
                        .first()
                        .is_some_and(|r| r.claim.verdict == Verdict::Withdrawn)
            })
        })
        .await;
        let lookup = node.lookup("+44 20 7946 0958", None).await.unwrap();
        assert_eq!(lookup.score.band, Band::None);
        assert_eq!(lookup.score.reports[0].claim.verdict, Verdict::Withdrawn);
        assert_eq!(
            lookup.score.reports[0].claim.kind,
            Kind::Vishing,
            "withdrawal keeps the kind"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_with_no_subscriber_is_queued_and_sent_when_one_subscribes() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let a = cluster.start(0).await;
    a.submit(vec![Submission::new("+1 415 555 0150", Kind::Robocall)])
        .await
        .unwrap();
    assert_eq!(a.status().await.unwrap().net.pending_publish, 1);
    let b = cluster.start(1).await;
    eventually("delivered to the late subscriber", WAIT, &b, || {
        has_report(&b, "+1 415 555 0150")
    })
    .await;
    eventually("queue drained", WAIT, &a, || async {
        a.status().await.is_ok_and(|s| s.net.pending_publish == 0)
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reconnect_after_a_restart_converge_and_then_sync_costs_no_transfer() {
    let mut cluster =
        Cluster::with_options(&[("Bank", 0.8), ("Carrier", 0.6)], Duration::from_secs(1));
    cluster.start_all().await;
    cluster.wait_connected().await;
    cluster
        .node(0)
        .submit(vec![Submission::new(number(1), Kind::Smishing)])
        .await
        .unwrap();
    cluster.stop(1).await;
    let a = cluster.node(0).clone();
    eventually("bank sees carrier gone", WAIT, &a, || async {
        a.peers().await.iter().all(|p| !p.connected)
    })
    .await;
    // Submitted while the carrier is down: only catch-up can deliver these.
    let batch = (2..40)
        .map(|i| Submission::new(number(i), Kind::Smishing))
        .collect();
    a.submit(batch).await.unwrap();
    let b = cluster.start(1).await;
    cluster.wait_connected().await;
    eventually("carrier converged", WAIT, &b, || async {
        b.set_digest().await.ok() == a.set_digest().await.ok()
    })
    .await;
    assert_eq!(records(&b).await, 39);

    // In sync: further exchanges move no records.
    let before = b.status().await.unwrap();
    eventually("two more catch-up exchanges", WAIT, &b, || async {
        b.status()
            .await
            .is_ok_and(|s| s.sync_exchanges >= before.sync_exchanges + 2)
    })
    .await;
    let after = b.status().await.unwrap();
    assert_eq!(
        after.sync_pages, before.sync_pages,
        "exchanges with nothing new pulled pages"
    );
    assert_eq!(after.received, before.received);
    cluster.shutdown().await;
}

/// A partition where both sides change their sets (new reports, re-reports
/// that delete what they supersede, withdrawals) heals by moving the
/// difference only: the history both sides held is neither sent nor
/// verified again, and each node's lag clears once they agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_by_moving_only_the_difference() {
    let mut cluster = Cluster::with_options(
        &[("Bank", 0.8), ("Carrier", 0.6)],
        Duration::from_millis(500),
    );
    cluster.start_all().await;
    cluster.wait_connected().await;
    let history: Vec<Submission> = (0..600)
        .map(|i| Submission::new(number(i), Kind::Smishing))
        .collect();
    cluster.node(0).submit(history).await.unwrap();
    let (a, b) = (cluster.node(0).clone(), cluster.node(1).clone());
    eventually("carrier holds the history", WAIT, &b, || async {
        records(&b).await == 600
    })
    .await;

    // Apart: the bank adds 30 reports, re-reports 20 and withdraws 5; then,
    // with the bank down, the carrier adds 10 of its own.
    drop(b);
    cluster.stop(1).await;
    let mut changes: Vec<Submission> = (600..630)
        .map(|i| Submission::new(number(i), Kind::Vishing))
        .collect();
    changes.extend((0..20).map(|i| {
        let mut s = Submission::new(number(i), Kind::Smishing);
        s.brand = Some("Re-reported".into());
        s
    }));
    a.submit(changes).await.unwrap();
    for i in 20..25 {
        a.withdraw(&number(i), None).await.unwrap();
    }
    let bank_before = a.status().await.unwrap();
    drop(a);
    cluster.stop(0).await;
    let b = cluster.start(1).await;
    b.submit(
        (700..710)
            .map(|i| Submission::new(number(i), Kind::Bec))
            .collect(),
    )
    .await
    .unwrap();
    let carrier_before = b.status().await.unwrap();

    let a = cluster.start(0).await;
    eventually("the two sides agree", WAIT, &b, || async {
        let (da, db) = (a.set_digest().await.ok(), b.set_digest().await.ok());
        let (sa, sb) = (a.status().await, b.status().await);
        da == db
            && sa.is_ok_and(|s| s.sync_lag == 0 && s.records == 640)
            && sb.is_ok_and(|s| s.sync_lag == 0 && s.records == 640)
    })
    .await;
    // Bank: 600 + 30 new (20 re-reports and 5 withdrawals replaced what
    // they superseded); + the carrier's 10.
    let (bank_after, carrier_after) = (a.status().await.unwrap(), b.status().await.unwrap());
    let carrier_received = carrier_after.received - carrier_before.received;
    let bank_received = bank_after.received - bank_before.received;
    let carrier_bytes = carrier_after.sync_bytes - carrier_before.sync_bytes;
    let bank_bytes = bank_after.sync_bytes - bank_before.sync_bytes;
    eprintln!(
        "carrier received {carrier_received} records and {carrier_bytes} catch-up bytes; \
         bank {bank_received} records and {bank_bytes} catch-up bytes; \
         reconciliation rounds: carrier {}, bank {}",
        carrier_after.sync_rounds, bank_after.sync_rounds
    );
    // What the carrier lacked is 55 records, the bank's 10 (a record may
    // come both by gossip and by catch-up once): the 600 of history are
    // not received, so not verified, again.
    assert!(
        (55..=2 * 55).contains(&carrier_received),
        "carrier received {carrier_received}"
    );
    assert!(
        (10..=2 * 10).contains(&bank_received),
        "bank received {bank_received}"
    );
    // The history is ~600 × 190 bytes; catch-up moved a fraction of it.
    assert!(carrier_bytes < 40_000, "{carrier_bytes} catch-up bytes");
    assert!(bank_bytes < 20_000, "{bank_bytes} catch-up bytes");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_over_quic() {
    let options = sightline_tests::Options {
        quic: true,
        ..Default::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8), ("Carrier", 0.6)], &options);
    cluster.start_all().await;
    cluster.wait_connected().await;
    cluster
        .node(0)
        .submit(vec![Submission::new("+61 491 570 156", Kind::SimSwap)])
        .await
        .unwrap();
    let b = cluster.node(1).clone();
    eventually("record over QUIC", WAIT, &b, || {
        has_report(&b, "+61 491 570 156")
    })
    .await;
    let addrs = b.status().await.unwrap().net.listen_addrs;
    assert!(addrs.iter().all(|a| a.contains("quic-v1")), "{addrs:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_network_key_keeps_out_peers_without_it() {
    let options = sightline_tests::Options {
        psk: Some([0x77; 32]),
        ..Default::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8), ("Carrier", 0.6), ("Stray", 0.5)], &options);
    cluster.start(0).await;
    cluster.start(1).await;
    cluster.wait_connected().await;
    let n3 = number(3);
    cluster
        .node(0)
        .submit(vec![Submission::new(n3.clone(), Kind::Vishing)])
        .await
        .unwrap();
    let b = cluster.node(1).clone();
    eventually("record over pnet TCP", WAIT, &b, || has_report(&b, &n3)).await;

    // A member key but the wrong PSK: the pnet handshake fails before Noise.
    let mut wrong = cluster.config(2);
    wrong.network.psk = Some([0x78; 32]);
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(cluster.members[2].seed).unwrap();
    let (client, _events, event_loop) = network::new(keypair, &wrong.network, &[]).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(event_loop.run(stop.clone()));
    let _stop = stop.drop_guard();
    client.dial(cluster.addr(0)).await.unwrap();
    let a = cluster.node(0).clone();
    eventually("dial with the wrong key failed", WAIT, &a, || async {
        client.status().await.is_ok_and(|s| s.failed_dials >= 1)
    })
    .await;
    assert_eq!(client.status().await.unwrap().connected, 0);
    assert!(!a
        .peers()
        .await
        .iter()
        .any(|p| p.org == "Stray" && p.connected));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocation_is_detected_kept_as_evidence_and_flagged() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Mallory", 0.5)]);
    let a = cluster.start(0).await;
    let mallory = RawPeer::start(&cluster, cluster.members[1].seed);
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    eventually("mallory subscribed", WAIT, &a, || async {
        a.status().await.is_ok_and(|s| s.net.subscribed >= 1)
    })
    .await;
    let key = SigningKey::from_seed(&cluster.members[1].seed);
    // Two different records, both validly signed, both seq 7.
    let first = signed_by(&key, &key, "+1 415 555 0161", 7);
    let second = signed_by(&key, &key, "+1 415 555 0162", 7);
    mallory.client.publish(first).await.unwrap();
    eventually("first record stored", WAIT, &a, || {
        has_report(&a, "+1 415 555 0161")
    })
    .await;
    mallory.client.publish(second).await.unwrap();
    eventually("equivocation flagged", WAIT, &a, || async {
        a.status()
            .await
            .is_ok_and(|s| s.equivocations == vec![("Mallory".to_owned(), 1)])
    })
    .await;
    assert!(
        !has_report(&a, "+1 415 555 0162").await,
        "the conflicting record is evidence, not a report"
    );
    assert_eq!(records(&a).await, 1);
    let status = a.status().await.unwrap();
    assert_eq!(status.rejected.get("equivocation"), Some(&1));
    // /metrics flags the origin too.
    let web = sightline_tests::Web::start(&a).await;
    let addr = web.addr;
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sightline_equivocations{org=\"Mallory\"} 1"),
        "{metrics}"
    );
    web.stop().await;
    cluster.shutdown().await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_is_blocked_while_honest_lookups_stay_fast() {
    let mut cluster = Cluster::new(&[
        ("Bank", 0.8),
        ("Carrier", 0.6),
        ("Mallory", 0.5),
        ("Flooder", 0.5),
    ]);
    let a = cluster.start(0).await;
    let _b = cluster.start(1).await;
    let RawPeer {
        client: mallory_client,
        events: mut mallory_events,
        _stop: _mallory_stop,
    } = RawPeer::start(&cluster, cluster.members[2].seed);
    // Mallory handles what it receives as a real peer's loop would: it
    // answers every gossip message (unanswered ones pile up in its gossip
    // cache and its sends stall).
    let validator = mallory_client.clone();
    tokio::spawn(async move {
        while let Some(event) = mallory_events.recv().await {
            if let NetworkEvent::Gossip {
                message_id, source, ..
            } = event
            {
                let _ = validator
                    .validate(message_id, source, MessageAcceptance::Ignore)
                    .await;
            }
        }
    });
    let mallory = RawPeerClient {
        client: mallory_client,
    };
    mallory.client.dial(cluster.addr(0)).await.unwrap();
    eventually("mallory subscribed", WAIT, &a, || async {
        a.peers()
            .await
            .iter()
            .any(|p| p.org == "Mallory" && p.connected)
            && a.status().await.is_ok_and(|s| s.net.subscribed >= 2)
    })
    .await;
    let rss_before = rss_kib();
    // Honest data arrives while mallory is connected.
    a.submit(
        (0..200)
            .map(|i| {
                let mut s = Submission::new(number(i), Kind::Smishing);
                s.brand = Some(format!("Brand {i}"));
                s
            })
            .collect(),
    )
    .await
    .unwrap();

    // Honest lookups run throughout the attack; their latency is measured.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                let l = a.lookup(&number(i), None).await.unwrap();
                latencies.push(t.elapsed());
                assert!(l.score.orgs >= 1);
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            latencies
        })
    };

    // Gossip flood: forged, malformed, oversized, future-dated and replayed records.
    let mallory_key = SigningKey::from_seed(&cluster.members[2].seed);
    let bank_key = SigningKey::from_seed(&cluster.members[0].seed);
    let replay = signed_by(&mallory_key, &mallory_key, "+1 415 555 0190", 1);
    for i in 0..1_000u64 {
        let bytes = match i % 5 {
            0 => signed_by(
                &mallory_key,
                &bank_key,
                &number(u32::try_from(i % 100).unwrap()),
                1_000 + i,
            ),
            1 => vec![0xa1, 0x00, 0xff, u8::try_from(i % 256).unwrap()],
            2 => vec![0xb2; 1_100],
            3 => {
                let mut future =
                    signed_by(&mallory_key, &mallory_key, "+1 415 555 0191", 10_000 + i);
                future.push(0); // also malformed, so it is not a valid future record either
                future
            }
            _ => replay.clone(),
        };
        if mallory.client.publish(bytes).await.is_err() {
            break;
        }
        // Paced, so the attack lasts while lookups are measured.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    wait_until_blocked(&a, "Mallory").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = prober.await.unwrap();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "honest lookups during the attack: n={}, p50={p50:?}, p99={p99:?}",
        latencies.len()
    );
    assert!(
        latencies.len() >= 10,
        "lookups kept being answered during the attack"
    );
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");

    let status = a.status().await.unwrap();
    eprintln!("rejected during the attack: {:?}", status.rejected);
    assert!(status.rejected.get("bad_signature").copied().unwrap_or(0) >= 1);
    // Nothing invalid was stored: the bank's origin holds exactly its 200
    // records (no forgery under its name), and mallory at most its one valid
    // record (it was graylisted after its first invalid messages).
    let bank = status.origins.iter().find(|o| o.org == "Bank").unwrap();
    assert_eq!(bank.count, 200);
    assert!(
        (200..=201).contains(&status.records),
        "{} records",
        status.records
    );
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 200, "memory grew by {grown_mib} MiB");
    // The honest peer is untouched.
    assert!(a
        .peers()
        .await
        .iter()
        .any(|p| p.org == "Carrier" && p.connected));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_requests_far_above_the_rate_limit_are_refused() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Flooder", 0.5)]);
    let a = cluster.start(0).await;
    a.submit(
        (0..50)
            .map(|i| Submission::new(number(i), Kind::Smishing))
            .collect(),
    )
    .await
    .unwrap();
    // Catch-up requests far above the rate limit, from another hostile member
    // (hundreds of concurrent streams would also starve that peer's own gossip).
    let flooder = RawPeer::start(&cluster, cluster.members[1].seed);
    flooder.client.dial(cluster.addr(0)).await.unwrap();
    eventually("flooder connected", WAIT, &a, || async {
        a.peers()
            .await
            .iter()
            .any(|p| p.org == "Flooder" && p.connected)
    })
    .await;
    let peer = cluster.members[0].peer_id;
    let flood_started = std::time::Instant::now();
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let client = flooder.client.clone();
            tokio::spawn(
                async move { client.request(peer, CatchUpRequest::Progress(vec![])).await },
            )
        })
        .collect();
    let (mut served, mut busy) = (0, 0);
    for r in requests {
        match r.await.unwrap() {
            Ok(CatchUpResponse::Busy) => busy += 1,
            Ok(_) => served += 1,
            Err(_) => {} // libp2p's own stream limits refused it
        }
    }
    let secs = flood_started.elapsed().as_secs_f64();
    eprintln!("1000 catch-up requests in {secs:.2} s: {served} served, {busy} answered busy");
    let (burst, per_sec) = (catchup::CATCHUP_BURST, catchup::CATCHUP_REQUESTS_PER_SEC);
    let allowed = f64::from(burst) + f64::from(per_sec) * secs;
    assert!(
        f64::from(served) <= allowed,
        "the rate limit (burst {burst}, {per_sec}/s) served {served} in {secs:.2} s"
    );
    assert!(busy >= burst, "only {busy} busy answers");
    let status = a.status().await.unwrap();
    assert!(
        status.sync_throttled >= u64::from(burst),
        "{}",
        status.sync_throttled
    );
    // The node still answers lookups.
    assert!(has_report(&a, &number(1)).await);
    drop(flooder);
    cluster.shutdown().await;
}
