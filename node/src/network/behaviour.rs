//! The libp2p behaviour: gossipsub with peer scoring, catch-up's
//! request-response, identify, ping; and the TCP transport (with the
//! private-network PSK).

use super::{
    allow_block_list, catchup, connection_limits, gossipsub, identify, noise, ping,
    request_response, tcp, yamux, Boxed, CatchUpRequest, CatchUpResponse, Digest, Duration,
    HashMap, IdentTopic, Keypair, MessageId, NetworkBehaviour, PeerId, ProtocolSupport,
    ReconcileRequest, ReconcileResponse, Sha256, StreamMuxerBox, StreamProtocol, Transport,
    Version, GRAYLIST_THRESHOLD, HEARTBEAT_INTERVAL, MAX_TRANSMIT,
};

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub(super) limits: connection_limits::Behaviour,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) sync: request_response::cbor::Behaviour<CatchUpRequest, CatchUpResponse>,
    /// Catch-up version 2 (set reconciliation), beside version 1 for
    /// peers that do not speak it yet.
    pub(super) reconcile: request_response::cbor::Behaviour<ReconcileRequest, ReconcileResponse>,
}

pub(super) fn tcp_transport(
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

pub(super) fn build_behaviour(
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
    Ok(Behaviour {
        allow,
        limits,
        identify,
        ping: ping::Behaviour::default(),
        gossipsub,
        sync: catchup_behaviour(catchup::PROTOCOL),
        reconcile: catchup_behaviour(catchup::PROTOCOL_V2),
    })
}

/// A catch-up version's request-response behaviour: CBOR, the size limits
/// of both versions, a 30 s timeout.
fn catchup_behaviour<Req, Resp>(
    protocol: &'static str,
) -> request_response::cbor::Behaviour<Req, Resp>
where
    Req: Send + Clone + serde::Serialize + serde::de::DeserializeOwned,
    Resp: Send + Clone + serde::Serialize + serde::de::DeserializeOwned,
{
    request_response::cbor::Behaviour::with_codec(
        request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(catchup::MAX_REQUEST_BYTES)
            .set_response_size_maximum(catchup::MAX_RESPONSE_BYTES),
        [(StreamProtocol::new(protocol), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    )
}

/// Peer scoring that does not punish honest peers on a quiet topic: no
/// mesh-delivery or mesh-failure penalties (a topic may be silent for
/// hours), no IP-colocation penalty (members may share a NAT or run on one
/// host), a heavy penalty for invalid messages (forged, malformed,
/// non-member records), and a small reward for first deliveries.
pub(super) fn peer_score_params(topic: &IdentTopic) -> gossipsub::PeerScoreParams {
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

pub(super) fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -200.0,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}
