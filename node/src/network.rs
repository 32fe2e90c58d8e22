//! The libp2p network. [`new`] returns a cloneable [`Client`] (a bounded
//! command channel), a bounded stream of [`NetworkEvent`]s, and the
//! [`EventLoop`] that alone owns the `Swarm` and `select!`s over swarm
//! events and commands. Closing every `Client` ends the loop.
//!
//! Transport: TCP + Noise + Yamux (wrapped in a pnet handshake when the
//! network has a pre-shared key) and QUIC. Only members' peer ids may hold a
//! connection (allow-list gate). Gossipsub carries sightings on
//! `sightline/<network-id>/sightings/1` with content-addressed message ids;
//! every message waits for the application's Accept / Reject / Ignore
//! before it spreads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::upgrade::Version;
use libp2p::core::{muxing::StreamMuxerBox, transport::Boxed};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, noise, ping, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm, Transport,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::catchup::{self, CatchUpRequest, CatchUpResponse, ReconcileRequest, ReconcileResponse};
use crate::config::NetworkConfig;

mod behaviour;
mod event_loop;
mod membership;

use self::behaviour::{build_behaviour, tcp_transport, Behaviour, BehaviourEvent};
#[cfg(feature = "test-util")]
pub use self::event_loop::EventLoop;
#[cfg(not(feature = "test-util"))]
pub(crate) use self::event_loop::EventLoop;
use self::membership::{Backoff, Blocks, Outbox, Strikes};

/// Capacity of the command and event channels.
const CHANNEL_CAPACITY: usize = 1024;
/// Records kept for publishing while no peer is subscribed (catch-up
/// delivers anything dropped beyond this).
const MAX_PENDING_PUBLISH: usize = 10_000;
/// Longest wait between redial attempts to a member.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Events held for the node when it falls behind; beyond this the swarm
/// is not polled.
const MAX_OUTBOX: usize = 4096;
/// Invalid records from one peer within [`INVALID_WINDOW`] that get it
/// blocked. Honest members send none; a few could be a software bug.
const INVALID_LIMIT: u32 = 25;
/// The window over which invalid records are counted.
const INVALID_WINDOW: Duration = Duration::from_secs(60);
/// Gossip score below which a peer's messages are ignored (graylisted) and
/// the peer is disconnected. The invalid-message penalty is the square of
/// the (decaying) count times −100: two give −400, not below it; three do.
const GRAYLIST_THRESHOLD: f64 = -400.0;
/// How long a misbehaving member stays blocked.
const BLOCK_FOR: Duration = Duration::from_secs(600);
/// Gossip frame size limit. It bounds a whole RPC frame, which carries
/// several messages when a node publishes a batch, not one record: a limit
/// near the record size made receivers drop whole batches. Records are
/// still capped at 1 KiB by decoding (`oversize`).
const MAX_TRANSMIT: usize = 256 * 1024;
/// Gossipsub heartbeat: mesh maintenance and gossip (IHAVE) rounds. Messages
/// are pushed to mesh peers at once; the heartbeat bounds repair.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The gossip topic of a network.
fn topic(network_id: &str) -> IdentTopic {
    IdentTopic::new(format!("sightline/{network_id}/sightings/1"))
}

/// What the network tells the node.
#[derive(Debug)]
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) enum NetworkEvent {
    /// A gossip message awaiting validation.
    Gossip {
        /// Content-addressed id (SHA-256 of the data = sighting id).
        message_id: MessageId,
        /// The peer it came from.
        source: PeerId,
        /// The record bytes.
        data: Vec<u8>,
    },
    /// A peer asks for catch-up.
    CatchUpRequest {
        /// Who asks.
        peer: PeerId,
        /// What.
        request: CatchUpRequest,
        /// Where the answer goes (via [`Client::respond`]).
        channel: ResponseChannel<CatchUpResponse>,
    },
    /// A peer asks for catch-up version 2 (set reconciliation).
    ReconcileRequest {
        /// Who asks.
        peer: PeerId,
        /// What.
        request: ReconcileRequest,
        /// Where the answer goes (via [`Client::respond_reconcile`]).
        channel: ResponseChannel<ReconcileResponse>,
    },
    /// A member connected (first connection).
    Connected(PeerId),
    /// A member's last connection closed.
    Disconnected(PeerId),
}

/// A member node as the network sees it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PeerInfo {
    /// Organization.
    pub org: String,
    /// Peer id.
    pub peer_id: String,
    /// Connected now.
    pub connected: bool,
    /// Unix seconds of the last connection or message, if any.
    pub last_seen: Option<u64>,
    /// Known addresses.
    pub addresses: Vec<String>,
    /// Gossipsub score, if connected.
    pub gossip_score: Option<f64>,
    /// This node's trust in the organization (filled in by the node, which
    /// owns the configuration; the network does not score reports).
    pub trust: Option<f64>,
    /// The catch-up version this node last completed an exchange with the
    /// peer in (filled in by the node): 2, set reconciliation; 1, an older
    /// release's per-origin pages (during a rolling upgrade). Absent until
    /// an exchange completed since this node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_version: Option<u8>,
}

/// Network-level counters for status.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NetworkStatus {
    /// Addresses we listen on.
    pub listen_addrs: Vec<String>,
    /// Connected member peers.
    pub connected: usize,
    /// Peers subscribed to our topic.
    pub subscribed: usize,
    /// Records waiting for a subscribed peer.
    pub pending_publish: usize,
    /// Connections refused because the peer is not a member.
    pub refused_non_members: u64,
    /// Outgoing connection attempts that failed (unreachable, wrong PSK, …).
    pub failed_dials: u64,
    /// Gossip messages and catch-up requests dropped because the node fell behind.
    pub dropped_events: u64,
    /// Members currently blocked for sending invalid records.
    pub blocked: Vec<String>,
}

#[derive(Debug)]
enum Command {
    Publish(Vec<u8>),
    Invalid(PeerId),
    Validate {
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Request {
        peer: PeerId,
        request: CatchUpRequest,
        reply: oneshot::Sender<Result<CatchUpResponse, String>>,
    },
    Respond {
        channel: ResponseChannel<CatchUpResponse>,
        response: CatchUpResponse,
    },
    Reconcile {
        peer: PeerId,
        request: ReconcileRequest,
        reply: oneshot::Sender<Result<ReconcileResponse, RequestError>>,
    },
    RespondReconcile {
        channel: ResponseChannel<ReconcileResponse>,
        response: ReconcileResponse,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Status(oneshot::Sender<NetworkStatus>),
    #[cfg(feature = "test-util")]
    Dial(Multiaddr),
}

/// Cloneable handle to the network event loop.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) struct Client {
    sender: mpsc::Sender<Command>,
}

/// Why a catch-up version 2 request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) enum RequestError {
    /// The peer does not speak catch-up version 2 (an older release):
    /// version 1 is used with it.
    #[error("the peer does not speak {}", catchup::PROTOCOL_V2)]
    Unsupported,
    /// Timeout, disconnect, a stopped loop.
    #[error("{0}")]
    Failed(String),
}

/// The event loop has stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the network event loop has stopped")]
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) struct Stopped;

#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
impl Client {
    async fn send(&self, command: Command) -> Result<(), Stopped> {
        self.sender.send(command).await.map_err(|_| Stopped)
    }

    /// Publishes a record (queued until a peer subscribes, if none has).
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn publish(&self, data: Vec<u8>) -> Result<(), Stopped> {
        self.send(Command::Publish(data)).await
    }

    /// Reports the application's verdict on a gossip message.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn validate(
        &self,
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    ) -> Result<(), Stopped> {
        self.send(Command::Validate {
            message_id,
            source,
            acceptance,
        })
        .await
    }

    /// Sends a catch-up request and waits for the answer.
    ///
    /// # Errors
    /// A description of the failure (timeout, disconnect, stopped loop).
    pub async fn request(
        &self,
        peer: PeerId,
        request: CatchUpRequest,
    ) -> Result<CatchUpResponse, String> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Request {
            peer,
            request,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
        answer.await.map_err(|_| Stopped.to_string())?
    }

    /// Answers a peer's catch-up request.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn respond(
        &self,
        channel: ResponseChannel<CatchUpResponse>,
        response: CatchUpResponse,
    ) -> Result<(), Stopped> {
        self.send(Command::Respond { channel, response }).await
    }

    /// Sends a catch-up version 2 request and waits for the answer.
    ///
    /// # Errors
    /// [`RequestError::Unsupported`] if the peer does not speak version 2;
    /// otherwise a description of the failure.
    pub async fn reconcile(
        &self,
        peer: PeerId,
        request: ReconcileRequest,
    ) -> Result<ReconcileResponse, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Reconcile {
            peer,
            request,
            reply,
        })
        .await
        .map_err(|e| RequestError::Failed(e.to_string()))?;
        answer
            .await
            .map_err(|_| RequestError::Failed(Stopped.to_string()))?
    }

    /// Answers a peer's catch-up version 2 request.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn respond_reconcile(
        &self,
        channel: ResponseChannel<ReconcileResponse>,
        response: ReconcileResponse,
    ) -> Result<(), Stopped> {
        self.send(Command::RespondReconcile { channel, response })
            .await
    }

    /// Every member node, connected or not.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Peers(reply)).await?;
        answer.await.map_err(|_| Stopped)
    }

    /// Network counters.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn status(&self) -> Result<NetworkStatus, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Status(reply)).await?;
        answer.await.map_err(|_| Stopped)
    }

    /// Reports that `peer` sent an invalid record (gossip or catch-up). A
    /// member that keeps doing so is disconnected and refused for a while.
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn invalid_from(&self, peer: PeerId) -> Result<(), Stopped> {
        self.send(Command::Invalid(peer)).await
    }

    /// Dials an address (the tests' hostile member).
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    #[cfg(feature = "test-util")]
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Stopped> {
        self.send(Command::Dial(addr)).await
    }
}

/// Network construction failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Transport or behaviour setup failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// Could not listen on an address.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
}

fn setup<E: std::fmt::Display>(e: E) -> NetworkError {
    NetworkError::Setup(e.to_string())
}

/// Builds the swarm and starts listening. Returns the client, the event
/// stream, and the event loop to spawn.
///
/// # Errors
/// [`NetworkError`] if the transport cannot be built or an address cannot be bound.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn new(
    keypair: Keypair,
    network: &NetworkConfig,
    listen: &[Multiaddr],
) -> Result<(Client, mpsc::Receiver<NetworkEvent>, EventLoop), NetworkError> {
    let local = keypair.public().to_peer_id();
    let psk = network.psk;
    let topic = topic(network.id.as_str());
    let members: HashMap<PeerId, String> = network
        .members
        .iter()
        .map(|m| (m.peer_id, m.org.clone()))
        .collect();

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| tcp_transport(key, psk))
        .map_err(setup)?
        .with_behaviour(|key| build_behaviour(key, &topic, &members))
        .map_err(setup)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();

    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
    }
    let mut known: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
    for (peer, addr) in &network.bootstrap {
        if *peer != local {
            known.entry(*peer).or_default().push(addr.clone());
        }
    }

    let (sender, commands) = mpsc::channel(CHANNEL_CAPACITY);
    let (events, event_receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let event_loop = EventLoop {
        swarm,
        commands,
        events,
        topic: topic.hash(),
        local,
        members,
        known,
        backoff: Backoff::new(MAX_BACKOFF),
        connected: HashMap::new(),
        last_seen: HashMap::new(),
        subscribed: HashSet::new(),
        pending_publish: VecDeque::new(),
        pending_requests: HashMap::new(),
        pending_reconciles: HashMap::new(),
        listen_addrs: Vec::new(),
        refused_non_members: 0,
        failed_dials: 0,
        outbox: Outbox::new(MAX_OUTBOX),
        invalid: Strikes::new(INVALID_LIMIT, INVALID_WINDOW),
        blocked: Blocks::new(BLOCK_FOR),
    };
    Ok((Client { sender }, event_receiver, event_loop))
}
