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

use crate::catchup::{self, CatchUpRequest, CatchUpResponse};
use crate::config::NetworkConfig;

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
pub fn topic(network_id: &str) -> IdentTopic {
    IdentTopic::new(format!("sightline/{network_id}/sightings/1"))
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
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
    /// A member connected (first connection).
    Connected(PeerId),
    /// A member's last connection closed.
    Disconnected(PeerId),
}

/// A member node as the network sees it.
#[derive(Debug, Clone, serde::Serialize)]
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
}

/// Network-level counters for status.
#[derive(Debug, Clone, Default, serde::Serialize)]
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
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Status(oneshot::Sender<NetworkStatus>),
    Dial(Multiaddr),
}

/// Cloneable handle to the network event loop.
#[derive(Debug, Clone)]
pub struct Client {
    sender: mpsc::Sender<Command>,
}

/// The event loop has stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the network event loop has stopped")]
pub struct Stopped;

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

    /// Dials an address (tests and operators' one-off connections).
    ///
    /// # Errors
    /// [`Stopped`] if the loop has ended.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Stopped> {
        self.send(Command::Dial(addr)).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<CatchUpRequest, CatchUpResponse>,
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
pub fn new(
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
        backoff: HashMap::new(),
        connected: HashMap::new(),
        last_seen: HashMap::new(),
        subscribed: HashSet::new(),
        pending_publish: VecDeque::new(),
        pending_requests: HashMap::new(),
        listen_addrs: Vec::new(),
        refused_non_members: 0,
        failed_dials: 0,
        outbox: VecDeque::new(),
        dropped_events: 0,
        invalid: HashMap::new(),
        blocked: HashMap::new(),
    };
    Ok((Client { sender }, event_receiver, event_loop))
}

fn tcp_transport(
    key: &Keypair,
    psk: Option<[u8; 32]>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let noise = noise::Config::new(key)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let transport = match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| {
                libp2p::pnet::PnetConfig::new(libp2p::pnet::PreSharedKey::new(psk))
                    .handshake(socket)
            })
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(Duration::from_secs(20))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(Duration::from_secs(20))
            .boxed(),
    };
    Ok(transport)
}

fn build_behaviour(
    key: &Keypair,
    topic: &IdentTopic,
    members: &HashMap<PeerId, String>,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for peer in members.keys() {
        allow.allow_peer(*peer);
    }
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(64))
            .with_max_established_per_peer(Some(2))
            .with_max_established(Some(
                u32::try_from(members.len() * 2 + 16).unwrap_or(u32::MAX),
            )),
    );
    let identify = identify::Behaviour::new(
        identify::Config::new("/sightline/1.0.0".into(), key.public())
            .with_agent_version(format!("sightline/{}", env!("CARGO_PKG_VERSION"))),
    );
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(Sha256::digest(&m.data).to_vec()))
        .max_transmit_size(MAX_TRANSMIT)
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .duplicate_cache_time(Duration::from_secs(300))
        .build()?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)?;
    gossipsub.with_peer_score(peer_score_params(topic), peer_score_thresholds())?;
    gossipsub.subscribe(topic)?;
    let sync = request_response::cbor::Behaviour::with_codec(
        request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(catchup::MAX_REQUEST_BYTES)
            .set_response_size_maximum(catchup::MAX_RESPONSE_BYTES),
        [(
            StreamProtocol::new(catchup::PROTOCOL),
            ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    );
    Ok(Behaviour {
        allow,
        limits,
        identify,
        ping: ping::Behaviour::default(),
        gossipsub,
        sync,
    })
}

/// Peer scoring that does not punish honest peers on a quiet topic: no
/// mesh-delivery or mesh-failure penalties (a topic may be silent for
/// hours), no IP-colocation penalty (members may share a NAT or run on one
/// host), a heavy penalty for invalid messages (forged, malformed,
/// non-member records), and a small reward for first deliveries.
fn peer_score_params(topic: &IdentTopic) -> gossipsub::PeerScoreParams {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.99,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: -10.0,
        ..Default::default()
    };
    params.topics.insert(topic.hash(), topic_params);
    params
}

fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -200.0,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Owns the swarm. Run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    topic: TopicHash,
    local: PeerId,
    members: HashMap<PeerId, String>,
    known: HashMap<PeerId, Vec<Multiaddr>>,
    backoff: HashMap<PeerId, (Instant, Duration)>,
    connected: HashMap<PeerId, usize>,
    last_seen: HashMap<PeerId, u64>,
    subscribed: HashSet<PeerId>,
    pending_publish: VecDeque<Vec<u8>>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<CatchUpResponse, String>>>,
    listen_addrs: Vec<Multiaddr>,
    refused_non_members: u64,
    failed_dials: u64,
    outbox: VecDeque<NetworkEvent>,
    dropped_events: u64,
    /// Per peer: invalid records counted since the window started.
    invalid: HashMap<PeerId, (Instant, u32)>,
    /// Members blocked for misbehaviour, until when.
    blocked: HashMap<PeerId, Instant>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl EventLoop {
    /// Runs until every [`Client`] is dropped or `shutdown` turns true.
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let events = self.events.clone();
        let mut redial = tokio::time::interval(Duration::from_secs(1));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some(), if self.outbox.len() < MAX_OUTBOX => {
                    self.on_swarm_event(event);
                }
                permit = events.reserve(), if !self.outbox.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.outbox.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => break,
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = redial.tick() => self.redial(),
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!("network event loop stopped");
    }

    fn count_invalid(&mut self, peer: PeerId) {
        let now = Instant::now();
        let (since, count) = self.invalid.entry(peer).or_insert((now, 0));
        if now.duration_since(*since) > INVALID_WINDOW {
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count >= INVALID_LIMIT {
            self.block(peer, now, "keeps sending invalid records");
        }
    }

    /// Disconnects a misbehaving member and refuses it for [`BLOCK_FOR`].
    fn block(&mut self, peer: PeerId, now: Instant, why: &str) {
        if self.blocked.contains_key(&peer) {
            return;
        }
        tracing::warn!(%peer, org = ?self.members.get(&peer), why, "blocking member");
        self.blocked.insert(peer, now + BLOCK_FOR);
        // Disallowing closes its connections and refuses new ones.
        self.swarm.behaviour_mut().allow.disallow_peer(peer);
        self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
    }

    /// Members whose gossip score fell below the graylist threshold (they
    /// sent invalid messages) are disconnected, not just ignored.
    fn block_graylisted(&mut self, now: Instant) {
        let graylisted: Vec<PeerId> = self
            .connected
            .keys()
            .filter(|p| {
                self.swarm
                    .behaviour()
                    .gossipsub
                    .peer_score(p)
                    .is_some_and(|s| s < GRAYLIST_THRESHOLD)
            })
            .copied()
            .collect();
        for peer in graylisted {
            self.block(peer, now, "gossip score below the graylist threshold");
        }
    }

    fn unblock_expired(&mut self, now: Instant) {
        let expired: Vec<PeerId> = self
            .blocked
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.blocked.remove(&peer);
            self.invalid.remove(&peer);
            self.swarm.behaviour_mut().allow.allow_peer(peer);
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_blacklisted_peer(&peer);
            tracing::info!(%peer, "block expired");
        }
    }

    fn redial(&mut self) {
        let now = Instant::now();
        self.unblock_expired(now);
        self.block_graylisted(now);
        self.retry_pending_publish();
        let candidates: Vec<PeerId> = self
            .known
            .keys()
            .filter(|p| {
                **p != self.local
                    && !self.connected.contains_key(*p)
                    && !self.blocked.contains_key(*p)
                    && self.members.contains_key(*p)
            })
            .copied()
            .collect();
        for peer in candidates {
            let (next, delay) = *self
                .backoff
                .entry(peer)
                .or_insert((now, Duration::from_secs(1)));
            if now < next {
                continue;
            }
            self.backoff
                .insert(peer, (now + delay, (delay * 2).min(MAX_BACKOFF)));
            let addresses = self.known.get(&peer).cloned().unwrap_or_default();
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "dial not started");
            }
        }
    }

    /// Publishes what waited for a subscribed peer or for room in the send
    /// queues; stops at the first record that still cannot go.
    fn retry_pending_publish(&mut self) {
        if self.subscribed.is_empty() {
            return;
        }
        while let Some(data) = self.pending_publish.pop_front() {
            let before = self.pending_publish.len();
            self.publish_now(data);
            if self.pending_publish.len() > before {
                // It went back to the end of the queue: keep the order.
                if let Some(last) = self.pending_publish.pop_back() {
                    self.pending_publish.push_front(last);
                }
                break;
            }
        }
    }

    fn publish_now(&mut self, data: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data.clone())
        {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(
                gossipsub::PublishError::NoPeersSubscribedToTopic
                | gossipsub::PublishError::AllQueuesFull(_),
            ) => {
                if self.pending_publish.len() >= MAX_PENDING_PUBLISH {
                    self.pending_publish.pop_front();
                }
                self.pending_publish.push_back(data);
            }
            Err(e) => tracing::warn!(error = %e, "publish failed"),
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish(data) => {
                if self.subscribed.is_empty() {
                    if self.pending_publish.len() >= MAX_PENDING_PUBLISH {
                        self.pending_publish.pop_front();
                    }
                    self.pending_publish.push_back(data);
                } else {
                    self.publish_now(data);
                }
            }
            Command::Validate {
                message_id,
                source,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending_requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("catch-up response not sent: peer gone");
                }
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_infos());
            }
            Command::Status(reply) => {
                let _ = reply.send(NetworkStatus {
                    listen_addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
                    connected: self.connected.len(),
                    subscribed: self.subscribed.len(),
                    pending_publish: self.pending_publish.len(),
                    refused_non_members: self.refused_non_members,
                    failed_dials: self.failed_dials,
                    dropped_events: self.dropped_events,
                    blocked: self
                        .blocked
                        .keys()
                        .map(|p| {
                            self.members
                                .get(p)
                                .cloned()
                                .unwrap_or_else(|| p.to_string())
                        })
                        .collect(),
                });
            }
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr) {
                    tracing::debug!(error = %e, "dial failed");
                }
            }
            Command::Invalid(peer) => self.count_invalid(peer),
        }
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut out: Vec<PeerInfo> = self
            .members
            .iter()
            .filter(|(p, _)| **p != self.local)
            .map(|(peer, org)| PeerInfo {
                org: org.clone(),
                peer_id: peer.to_string(),
                connected: self.connected.contains_key(peer),
                last_seen: self.last_seen.get(peer).copied(),
                addresses: self
                    .known
                    .get(peer)
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                gossip_score: gossipsub.peer_score(peer),
                trust: None,
            })
            .collect();
        out.sort_by(|a, b| a.org.cmp(&b.org));
        out
    }

    /// Queues an event for the node. Never waits: the loop must keep
    /// draining commands, or it could deadlock with a node task that is
    /// waiting to send one. When the node falls behind, the swarm is not
    /// polled (backpressure) and gossip beyond the queue is ignored.
    fn emit(&mut self, event: NetworkEvent) {
        if self.outbox.len() >= MAX_OUTBOX {
            match event {
                NetworkEvent::Gossip {
                    message_id, source, ..
                } => {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &source,
                            MessageAcceptance::Ignore,
                        );
                    self.dropped_events += 1;
                    return;
                }
                NetworkEvent::CatchUpRequest { .. } => {
                    // Dropping the response channel fails the peer's request.
                    self.dropped_events += 1;
                    return;
                }
                NetworkEvent::Connected(_) | NetworkEvent::Disconnected(_) => {}
            }
        }
        self.outbox.push_back(event);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                self.connected
                    .insert(peer_id, num_established.get() as usize);
                self.last_seen.insert(peer_id, unix_now());
                self.backoff.remove(&peer_id);
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, org = ?self.members.get(&peer_id), "member connected");
                    self.emit(NetworkEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    self.subscribed.remove(&peer_id);
                    self.last_seen.insert(peer_id, unix_now());
                    self.emit(NetworkEvent::Disconnected(peer_id));
                } else {
                    self.connected.insert(peer_id, num_established as usize);
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    self.refused_non_members += 1;
                }
                tracing::debug!(%error, "incoming connection failed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.failed_dials += 1;
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.last_seen.insert(propagation_source, unix_now());
                self.emit(NetworkEvent::Gossip {
                    message_id,
                    source: propagation_source,
                    data: message.data,
                });
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })
                if topic == self.topic =>
            {
                self.subscribed.insert(peer_id);
                self.retry_pending_publish();
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed { peer_id, topic })
                if topic == self.topic =>
            {
                self.subscribed.remove(&peer_id);
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if self.members.contains_key(&peer_id) =>
            {
                let addrs = self.known.entry(peer_id).or_default();
                for addr in info.listen_addrs {
                    if !is_unspecified(&addr) && !addrs.contains(&addr) && addrs.len() < 16 {
                        addrs.push(addr);
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        self.emit(NetworkEvent::CatchUpRequest {
                            peer,
                            request,
                            channel,
                        });
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(reply) = self.pending_requests.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            _ => {}
        }
    }
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_unspecified(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
