//! Harness for end-to-end tests: a [`Cluster`] of real nodes (libp2p on
//! loopback TCP, sled on disk in a temporary directory), configured through
//! the same `network.toml` / `sightline.toml` files operators write.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use sightline_node::config::{encode_key32, MemberFile, NetworkFile, NodeFile};
use sightline_node::{Clock, NodeConfig, NodeHandle, SystemClock};

/// One organization's node in a cluster.
#[derive(Debug)]
pub struct Member {
    /// Organization name.
    pub org: String,
    /// Key seed (fixed so the peer id is known before the node starts).
    pub seed: [u8; 32],
    /// Peer id.
    pub peer_id: PeerId,
    /// Loopback TCP port.
    pub port: u16,
    /// Its `sightline.toml`.
    pub config_path: PathBuf,
}

/// Several member nodes sharing one `network.toml`.
#[derive(Debug)]
pub struct Cluster {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// The members, in creation order.
    pub members: Vec<Member>,
    /// Running nodes (None = stopped or never started).
    pub nodes: Vec<Option<NodeHandle>>,
    /// The clock every node uses.
    pub clock: Arc<dyn Clock>,
    /// Whether nodes use QUIC instead of TCP.
    pub quic: bool,
}

/// Cluster options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Catch-up interval.
    pub sync_interval: Duration,
    /// Listen and bootstrap over QUIC only (instead of TCP only).
    pub quic: bool,
    /// Network pre-shared key.
    pub psk: Option<[u8; 32]>,
    /// API items per second per token.
    pub api_rate: u32,
    /// `web_anonymous_read` in every node's sightline.toml. On by default
    /// here, so API tests can read without a token; the product's default
    /// (off) has tests of its own.
    pub anonymous_read: bool,
    /// Per-origin limits in network.toml.
    pub limits: sightline_node::store::Limits,
    /// `record_version` in network.toml (1, as a network before SPEC §13.4).
    pub record_version: u64,
    /// `store_cache_mib` in every node's sightline.toml (`None`: unset).
    pub store_cache_mib: Option<u64>,
}

/// Token with the read scope on every cluster node.
pub const READ_TOKEN: &str = "reader-token-0123456789";
/// Token with the read and submit scopes on every cluster node.
pub const WRITE_TOKEN: &str = "writer-token-0123456789";
/// Token with the admin scope (backups) on every cluster node.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
/// Token with only the submit scope on every cluster node.
pub const SUBMIT_ONLY_TOKEN: &str = "submitter-token-0123456789";

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_interval: Duration::from_secs(2),
            quic: false,
            psk: None,
            api_rate: 1000,
            anonymous_read: true,
            limits: sightline_node::store::Limits::default(),
            record_version: 1,
            store_cache_mib: None,
        }
    }
}

/// A free loopback UDP port.
///
/// # Panics
/// If no port can be bound.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("addr")
        .port()
}

/// A free loopback TCP port (bound and released; good enough on loopback).
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("addr")
        .port()
}

/// Installs a test log subscriber once (`RUST_LOG` controls it).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Cluster {
    /// Writes a network of `orgs` (name, trust) plus `extra` members whose
    /// keys the test holds but that run no node (returned seeds), and a
    /// `sightline.toml` per org. Nodes are not started.
    ///
    /// # Panics
    /// On I/O errors writing the files.
    pub fn new(orgs: &[(&str, f64)]) -> Self {
        Self::with_options(orgs, Duration::from_secs(2))
    }

    /// Like [`Cluster::new`] with a catch-up interval.
    ///
    /// # Panics
    /// On I/O errors writing the files.
    pub fn with_options(orgs: &[(&str, f64)], sync_interval: Duration) -> Self {
        Self::build(
            orgs,
            &Options {
                sync_interval,
                ..Options::default()
            },
        )
    }

    /// A cluster with every option.
    ///
    /// # Panics
    /// On I/O errors writing the files.
    pub fn build(orgs: &[(&str, f64)], options: &Options) -> Self {
        Self::build_in(&std::env::temp_dir(), orgs, options)
    }

    /// Like [`Cluster::build`], with the cluster's files in a temporary
    /// directory under `parent` (benchmarks keep stores off tmpfs).
    ///
    /// # Panics
    /// On I/O errors writing the files.
    #[allow(clippy::too_many_lines)]
    pub fn build_in(parent: &std::path::Path, orgs: &[(&str, f64)], options: &Options) -> Self {
        init_logs();
        let dir = tempfile::tempdir_in(parent).expect("tempdir");
        let mut members = Vec::new();
        for (i, (org, _)) in orgs.iter().enumerate() {
            let mut seed = [0u8; 32];
            seed[0] = u8::try_from(i + 1).expect("few orgs");
            seed[1] = 0x5a;
            let peer_id = libp2p::identity::Keypair::ed25519_from_bytes(seed)
                .expect("seed")
                .public()
                .to_peer_id();
            let node_dir = dir.path().join(org);
            std::fs::create_dir_all(&node_dir).expect("mkdir");
            members.push(Member {
                org: (*org).to_owned(),
                seed,
                peer_id,
                port: if options.quic {
                    free_udp_port()
                } else {
                    free_port()
                },
                config_path: node_dir.join("sightline.toml"),
            });
        }
        let network = NetworkFile {
            name: "Test Network".into(),
            id: "test-net".into(),
            hash_key: encode_key32(&[0x42; 32]).into(),
            psk: options.psk.map(|k| encode_key32(&k).into()),
            bootstrap: members
                .iter()
                .map(|m| format!("{}/p2p/{}", transport_addr(m.port, options.quic), m.peer_id))
                .collect(),
            members: members
                .iter()
                .zip(orgs)
                .map(|(m, (_, trust))| MemberFile {
                    org: m.org.clone(),
                    peer_id: m.peer_id.to_string(),
                    trust: *trust,
                })
                .collect(),
            limits: options.limits,
            record_version: options.record_version,
            half_life_days: std::collections::BTreeMap::new(),
        };
        let network_path = dir.path().join("network.toml");
        std::fs::write(&network_path, toml::to_string(&network).expect("toml")).expect("write");
        for m in &members {
            let mut file = NodeFile::new(network_path.clone());
            file.data_dir = PathBuf::from("data");
            file.listen = vec![transport_addr(m.port, options.quic)];
            file.web_bind = "127.0.0.1:0".parse().expect("addr");
            file.sync_interval_secs = options.sync_interval.as_secs().max(1);
            file.api_requests_per_second = options.api_rate;
            file.web_anonymous_read = options.anonymous_read;
            file.store_cache_mib = options.store_cache_mib;
            file.tokens = [
                ("reader", READ_TOKEN, &["read"][..]),
                ("writer", WRITE_TOKEN, &["read", "submit"][..]),
                ("submitter", SUBMIT_ONLY_TOKEN, &["submit"][..]),
                ("admin", ADMIN_TOKEN, &["admin"][..]),
            ]
            .into_iter()
            .map(|(name, token, scopes)| sightline_node::config::TokenFile {
                name: name.into(),
                token: token.into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect();
            std::fs::write(&m.config_path, toml::to_string(&file).expect("toml")).expect("write");
            sightline_node::identity::NodeIdentity::create(
                &m.config_path.parent().expect("dir").join("data/node.key"),
                &m.seed,
            )
            .expect("key file");
            // A new key: its store starts confirmed, as `sightline init`
            // makes it (tests of restored stores remove it).
            sightline_node::store::Store::open(
                &m.config_path.parent().expect("dir").join("data/store"),
            )
            .and_then(|store| store.confirm_own_seq())
            .expect("store");
        }
        let nodes = members.iter().map(|_| None).collect();
        Cluster {
            dir,
            members,
            nodes,
            clock: Arc::new(SystemClock),
            quic: options.quic,
        }
    }

    /// The validated config of member `i`.
    ///
    /// # Panics
    /// If the config does not load.
    pub fn config(&self, i: usize) -> NodeConfig {
        NodeConfig::load(&self.members[i].config_path).expect("config loads")
    }

    /// Starts member `i`'s node.
    ///
    /// # Panics
    /// If the node does not start.
    pub async fn start(&mut self, i: usize) -> NodeHandle {
        let node = sightline_node::start(self.config(i), self.clock.clone())
            .await
            .expect("node starts");
        self.nodes[i] = Some(node.clone());
        node
    }

    /// Starts every node.
    pub async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i).await;
        }
    }

    /// Member `i`'s running node.
    ///
    /// # Panics
    /// If it is not running.
    pub fn node(&self, i: usize) -> &NodeHandle {
        self.nodes[i].as_ref().expect("node running")
    }

    /// Stops member `i`'s node cleanly.
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Member `i`'s TCP address with its peer id.
    ///
    /// # Panics
    /// Never for valid members.
    pub fn addr(&self, i: usize) -> Multiaddr {
        format!(
            "{}/p2p/{}",
            transport_addr(self.members[i].port, self.quic),
            self.members[i].peer_id
        )
        .parse()
        .expect("addr")
    }

    /// Waits until every running node is connected to every other running node.
    pub async fn wait_connected(&self) {
        let running: Vec<&NodeHandle> = self.nodes.iter().flatten().collect();
        let want = running.len() - 1;
        for node in &running {
            eventually(
                "all peers connected",
                Duration::from_secs(30),
                node,
                || async { node.peers().await.iter().filter(|p| p.connected).count() >= want },
            )
            .await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

fn transport_addr(port: u16, quic: bool) -> String {
    if quic {
        format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
    } else {
        format!("/ip4/127.0.0.1/tcp/{port}")
    }
}

/// A node's web server on a free loopback port, serving until [`Web::stop`].
#[derive(Debug)]
pub struct Web {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Web {
    /// Binds `sightline_web` for `node` on 127.0.0.1:0 and serves it.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn start(node: &NodeHandle) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, serve) =
            sightline_web::bind(node.clone(), "127.0.0.1:0".parse().expect("addr"), async {
                let _ = stopped.await;
            })
            .await
            .expect("web server binds");
        Web {
            addr,
            stop,
            task: tokio::spawn(serve),
        }
    }

    /// Shuts the server down gracefully and waits for it.
    ///
    /// # Panics
    /// If serving failed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server ran");
    }
}

/// Waits until `condition` holds, re-checking whenever `node` stores
/// records and at least every 100 ms (for conditions about connections).
///
/// # Panics
/// With `what` if it does not hold within `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, node: &NodeHandle, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
