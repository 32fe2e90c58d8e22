//! The event loop: the one owner of the swarm. It runs the commands the
//! node sends, applies the allow-list and blocks, publishes, and emits
//! events for the node.

use super::membership::{Backoff, Blocks, Outbox, Strikes};
use super::{
    gossipsub, identify, mpsc, oneshot, request_response, Behaviour, BehaviourEvent,
    CatchUpResponse, Command, DialOpts, Duration, HashMap, HashSet, Instant, MessageAcceptance,
    Multiaddr, NetworkEvent, NetworkStatus, OutboundRequestId, PeerCondition, PeerId, PeerInfo,
    ReconcileResponse, RequestError, StreamExt, Swarm, SwarmEvent, TopicHash, VecDeque,
    GRAYLIST_THRESHOLD, MAX_PENDING_PUBLISH,
};

/// Owns the swarm. Run it with [`EventLoop::run`].
#[allow(unreachable_pub)] // `pub` in the test-util build
pub struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<NetworkEvent>,
    pub(super) topic: TopicHash,
    pub(super) local: PeerId,
    pub(super) members: HashMap<PeerId, String>,
    pub(super) known: HashMap<PeerId, Vec<Multiaddr>>,
    pub(super) backoff: Backoff<PeerId>,
    pub(super) connected: HashMap<PeerId, usize>,
    pub(super) last_seen: HashMap<PeerId, u64>,
    pub(super) subscribed: HashSet<PeerId>,
    pub(super) pending_publish: VecDeque<Vec<u8>>,
    pub(super) pending_requests:
        HashMap<OutboundRequestId, oneshot::Sender<Result<CatchUpResponse, String>>>,
    pub(super) pending_reconciles:
        HashMap<OutboundRequestId, oneshot::Sender<Result<ReconcileResponse, RequestError>>>,
    pub(super) listen_addrs: Vec<Multiaddr>,
    pub(super) refused_non_members: u64,
    pub(super) failed_dials: u64,
    pub(super) outbox: Outbox<NetworkEvent>,
    /// Per peer: invalid records in the current window.
    pub(super) invalid: Strikes<PeerId>,
    /// Members blocked for misbehaviour.
    pub(super) blocked: Blocks<PeerId>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
impl EventLoop {
    /// Runs until every [`Client`] is dropped or `shutdown` turns true.
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let events = self.events.clone();
        let mut redial = tokio::time::interval(Duration::from_secs(1));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some(), if self.outbox.has_room() => {
                    self.on_swarm_event(event);
                }
                permit = events.reserve(), if !self.outbox.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.outbox.pop() {
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
        if self.invalid.strike(peer, now) {
            self.block(peer, now, "keeps sending invalid records");
        }
    }

    /// Disconnects a misbehaving member and refuses it for [`BLOCK_FOR`].
    fn block(&mut self, peer: PeerId, now: Instant, why: &str) {
        if !self.blocked.block(peer, now) {
            return;
        }
        tracing::warn!(%peer, org = ?self.members.get(&peer), why, "blocking member");
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
        for peer in self.blocked.expire(now) {
            self.invalid.forget(&peer);
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
                    && !self.blocked.contains(p)
                    && self.members.contains_key(*p)
            })
            .copied()
            .collect();
        for peer in candidates {
            if !self.backoff.due(peer, now) {
                continue;
            }
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
            Command::Reconcile {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .reconcile
                    .send_request(&peer, request);
                self.pending_reconciles.insert(id, reply);
            }
            Command::RespondReconcile { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .reconcile
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
                    dropped_events: self.outbox.dropped(),
                    blocked: self
                        .blocked
                        .peers()
                        .map(|p| {
                            self.members
                                .get(p)
                                .cloned()
                                .unwrap_or_else(|| p.to_string())
                        })
                        .collect(),
                });
            }
            #[cfg(feature = "test-util")]
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
                catch_up_version: None,
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
        let droppable = matches!(
            event,
            NetworkEvent::Gossip { .. } | NetworkEvent::CatchUpRequest { .. }
        );
        // A dropped catch-up request fails the peer's request when its
        // response channel is dropped here; dropped gossip is settled.
        if let Err(NetworkEvent::Gossip {
            message_id, source, ..
        }) = self.outbox.offer(event, droppable)
        {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &source, MessageAcceptance::Ignore);
        }
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
                self.backoff.reset(&peer_id);
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
            BehaviourEvent::Sync(event) => {
                let request = route(event, &mut self.pending_requests, |e| e.to_string());
                if let Some((peer, request, channel)) = request {
                    self.emit(NetworkEvent::CatchUpRequest {
                        peer,
                        request,
                        channel,
                    });
                }
            }
            BehaviourEvent::Reconcile(event) => {
                let request = route(event, &mut self.pending_reconciles, |e| match e {
                    request_response::OutboundFailure::UnsupportedProtocols => {
                        RequestError::Unsupported
                    }
                    other => RequestError::Failed(other.to_string()),
                });
                if let Some((peer, request, channel)) = request {
                    self.emit(NetworkEvent::ReconcileRequest {
                        peer,
                        request,
                        channel,
                    });
                }
            }
            _ => {}
        }
    }
}

/// A request a peer sent on one of the catch-up protocols.
type Inbound<Req, Resp> = (PeerId, Req, request_response::ResponseChannel<Resp>);

/// Routes a catch-up protocol's event: an answer, or the failure of a
/// request (as `failure` words it), goes to whoever waits for it in
/// `pending`; a peer's request is handed back for the node.
fn route<Req, Resp, E>(
    event: request_response::Event<Req, Resp>,
    pending: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<Resp, E>>>,
    failure: impl FnOnce(request_response::OutboundFailure) -> E,
) -> Option<Inbound<Req, Resp>> {
    match event {
        request_response::Event::Message { peer, message, .. } => match message {
            request_response::Message::Request {
                request, channel, ..
            } => return Some((peer, request, channel)),
            request_response::Message::Response {
                request_id,
                response,
            } => {
                if let Some(reply) = pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
        },
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Err(failure(error)));
            }
        }
        _ => {}
    }
    None
}

pub(super) fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_unspecified(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
