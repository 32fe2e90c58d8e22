//! `network.toml` (the same on every member node) and `sightline.toml` (this
//! node's own settings): serde + TOML, a doc comment per field, defaults that
//! work, and validation errors that name the file and the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use sightline_protocol::{HashKey, NetworkId};

/// A configuration problem, always naming the file and, where there is one, the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value that cannot be used.
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Dotted path of the field, e.g. `member[2].trust`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid(file: &Path, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

fn read_toml<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        file: file.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

/// A secret string from a config file (a key, a token): serialized as the
/// string itself, but its `Debug` prints `<redacted>`, since configuration
/// is logged and printed in errors. `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret(text.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `network.toml` as written: distributed out of band by whoever runs the
/// community, identical on every member node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// Display name of the community, e.g. "Example Banking ISAC".
    pub name: String,
    /// Short id: goes into the gossip topic and every signed record.
    pub id: String,
    /// 32 random bytes, base64: keys the privacy hash. Secret to members.
    pub hash_key: Secret,
    /// Optional 32-byte pre-shared key, base64: libp2p private-network
    /// encryption on TCP. With a PSK, QUIC is not used (it cannot carry one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk: Option<Secret>,
    /// Multiaddrs (ending in `/p2p/<peer id>`) of well-known member nodes.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// The member organizations and their nodes.
    #[serde(default, rename = "member")]
    pub members: Vec<MemberFile>,
    /// Per-origin limits: what one member may add to everyone's store.
    /// Must be identical on every node, like the rest of this file.
    #[serde(default)]
    pub limits: crate::store::Limits,
    /// The record version nodes sign (SPEC.md §13.4): 1 until every member
    /// runs a node that reads version 2, then 2 (link tokens). Absent: 1.
    #[serde(default = "record_version_1", skip_serializing_if = "is_version_1")]
    pub record_version: u64,
    /// Half-life of a report's weight by kind, in days (`[half_life_days]`,
    /// e.g. `callback = 45`); kinds not named keep their defaults
    /// ([`crate::reputation::HalfLives::DEFAULT_DAYS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub half_life_days: BTreeMap<sightline_protocol::Kind, f64>,
}

fn record_version_1() -> u64 {
    sightline_protocol::sighting::VERSION
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_version_1(v: &u64) -> bool {
    *v == sightline_protocol::sighting::VERSION
}

/// One `[[member]]` of `network.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    /// Organization display name; also the key for local trust overrides.
    pub org: String,
    /// The node's libp2p peer id (derived from its ed25519 key).
    pub peer_id: String,
    /// Default trust weight for this organization's reports, 0.0–1.0.
    #[serde(default = "default_trust")]
    pub trust: f64,
}

fn default_trust() -> f64 {
    0.5
}

/// A member node, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Organization display name.
    pub org: String,
    /// Its node's peer id.
    pub peer_id: PeerId,
    /// Its records' origin (the same ed25519 key).
    pub origin: sightline_protocol::OriginId,
    /// Trust from network.toml.
    pub trust: f64,
}

/// `network.toml`, validated.
#[derive(Clone)]
pub struct NetworkConfig {
    /// Display name.
    pub name: String,
    /// Network id.
    pub id: NetworkId,
    /// Privacy hash key.
    pub hash_key: HashKey,
    /// Private-network key for TCP.
    pub psk: Option<[u8; 32]>,
    /// Bootstrap addresses with their peer ids.
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
    /// Members, in file order.
    pub members: Vec<Member>,
    /// Per-origin limits.
    pub limits: crate::store::Limits,
    /// The record version this node signs (1 or 2).
    pub record_version: u64,
    /// Half-lives by kind.
    pub half_lives: crate::reputation::HalfLives,
}

impl std::fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConfig")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("hash_key", &self.hash_key)
            .field("psk", &self.psk.as_ref().map(|_| "<redacted>"))
            .field("bootstrap", &self.bootstrap)
            .field("members", &self.members)
            .field("limits", &self.limits)
            .field("record_version", &self.record_version)
            .field("half_lives", &self.half_lives)
            .finish()
    }
}

impl NetworkConfig {
    /// Reads and validates a `network.toml`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::from_file(file, read_toml(file)?)
    }

    /// Validates an already-parsed `network.toml`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn from_file(file: &Path, raw: NetworkFile) -> Result<Self, ConfigError> {
        let id = NetworkId::new(&raw.id).map_err(|e| invalid(file, "id", e.to_string()))?;
        let hash_key = HashKey::from_bytes(
            decode_key32(raw.hash_key.expose()).map_err(|m| invalid(file, "hash_key", m))?,
        );
        let psk = match &raw.psk {
            Some(text) => Some(decode_key32(text.expose()).map_err(|m| invalid(file, "psk", m))?),
            None => None,
        };
        let mut members = Vec::new();
        for (i, m) in raw.members.iter().enumerate() {
            let field = |name: &str| format!("member[{i}].{name}");
            if m.org.trim().is_empty() {
                return Err(invalid(file, field("org"), "must not be empty"));
            }
            let peer_id: PeerId = m
                .peer_id
                .parse()
                .map_err(|e| invalid(file, field("peer_id"), format!("not a peer id: {e}")))?;
            let origin = origin_of(&peer_id).ok_or_else(|| {
                invalid(file, field("peer_id"), "not an ed25519 peer id (12D3Koo…)")
            })?;
            if !(0.0..=1.0).contains(&m.trust) {
                return Err(invalid(file, field("trust"), "must be between 0.0 and 1.0"));
            }
            if members.iter().any(|x: &Member| x.peer_id == peer_id) {
                return Err(invalid(file, field("peer_id"), "listed twice"));
            }
            if members.iter().any(|x: &Member| x.org == m.org) {
                return Err(invalid(
                    file,
                    field("org"),
                    format!("{:?} listed twice", m.org),
                ));
            }
            members.push(Member {
                org: m.org.clone(),
                peer_id,
                origin,
                trust: m.trust,
            });
        }
        let mut bootstrap = Vec::new();
        for (i, text) in raw.bootstrap.iter().enumerate() {
            let field = format!("bootstrap[{i}]");
            let addr: Multiaddr = text
                .parse()
                .map_err(|e| invalid(file, &field, format!("not a multiaddr: {e}")))?;
            let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(invalid(file, &field, "must end in /p2p/<peer id>"));
            };
            bootstrap.push((peer, addr));
        }
        if raw.limits.records_per_hour == 0 {
            return Err(invalid(
                file,
                "limits.records_per_hour",
                "must be at least 1",
            ));
        }
        if raw.limits.numbers_per_day == 0 {
            return Err(invalid(
                file,
                "limits.numbers_per_day",
                "must be at least 1",
            ));
        }
        if ![
            sightline_protocol::sighting::VERSION,
            sightline_protocol::sighting::VERSION_2,
        ]
        .contains(&raw.record_version)
        {
            return Err(invalid(
                file,
                "record_version",
                "must be 1 or 2 (SPEC.md §13.4)",
            ));
        }
        for (kind, days) in &raw.half_life_days {
            if !(*days > 0.0 && *days <= 3650.0) {
                return Err(invalid(
                    file,
                    format!("half_life_days.{kind}"),
                    "must be more than 0 and at most 3650",
                ));
            }
        }
        Ok(NetworkConfig {
            name: raw.name,
            id,
            hash_key,
            psk,
            bootstrap,
            members,
            limits: raw.limits,
            record_version: raw.record_version,
            half_lives: crate::reputation::HalfLives::from_days(&raw.half_life_days),
        })
    }

    /// The member whose node has this peer id.
    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.iter().find(|m| &m.peer_id == peer)
    }

    /// The member whose records carry this origin.
    pub fn member_by_origin(&self, origin: &sightline_protocol::OriginId) -> Option<&Member> {
        self.members.iter().find(|m| &m.origin == origin)
    }
}

/// The ed25519 public key inside an ed25519 peer id.
pub fn origin_of(peer: &PeerId) -> Option<sightline_protocol::OriginId> {
    // An ed25519 peer id is the identity multihash of the protobuf-encoded
    // public key; libp2p exposes the conversion through PublicKey.
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(sightline_protocol::OriginId::from_bytes(ed.to_bytes()))
}

/// Decodes 32 bytes of standard base64.
fn decode_key32(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes, found {}", bytes.len()))
}

/// Encodes 32 bytes as standard base64 (for writing network.toml).
pub fn encode_key32(bytes: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `sightline.toml`: this node's own settings. Relative paths are relative
/// to the directory of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Path of the community's `network.toml`.
    pub network: PathBuf,
    /// Directory for the store; created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The node's private key file (32-byte ed25519 seed, mode 0600);
    /// created on first start. Default: `<data_dir>/node.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// libp2p listen multiaddrs.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Web UI / API address. Loopback unless API tokens are configured.
    #[serde(default = "default_web_bind")]
    pub web_bind: SocketAddr,
    /// Trust per organization name, overriding network.toml for this node.
    #[serde(default)]
    pub trust: BTreeMap<String, f64>,
    /// Half-life of a report's weight, in days, for every kind: overrides
    /// the network's half-lives by kind (`network.toml` `[half_life_days]`)
    /// on this node. Absent: the network's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
    /// Records whose `last_seen` is older than this are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// How far in the future a record's timestamps may lie (peer clocks drift).
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
    /// A submission repeating this organization's current report of a
    /// number (same kind, verdict, channel and brand) within this many
    /// seconds of it mints nothing and returns that report's receipt. 0
    /// makes every submission a new record.
    #[serde(default = "default_resubmit_window_secs")]
    pub resubmit_window_secs: u64,
    /// Seconds between catch-up exchanges with each connected peer.
    #[serde(default = "default_sync_interval_secs")]
    pub sync_interval_secs: u64,
    /// API work allowed per token, in items per second: a request costs one,
    /// a batch or bulk lookup costs one per number (bursts up to twice the
    /// rate, and always at least one full batch).
    #[serde(default = "default_api_rate")]
    pub api_requests_per_second: u32,
    /// Host names (or addresses) the web server answers to besides its bind
    /// address, `localhost`, `127.0.0.1` and `[::1]`, e.g. the name a
    /// reverse proxy forwards. Every other `Host` is refused (421): that
    /// defeats DNS rebinding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_hosts: Vec<String>,
    /// Let requests without a token read lookups, peers, status and metrics.
    /// Only on a loopback bind, never for routes that return raw numbers.
    /// Off by default: every local process and browser page would share it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub web_anonymous_read: bool,
    /// Mark the sign-in cookie `Secure`: set this when a TLS-terminating
    /// reverse proxy serves the web UI over https.
    #[serde(default, skip_serializing_if = "is_false")]
    pub web_secure_cookies: bool,
    /// How long a browser sign-in lasts, in hours.
    #[serde(default = "default_session_hours")]
    pub web_session_hours: u32,
    /// TLP marking of STIX and MISP exports: `clear`, `green`, `amber`
    /// (default) or `red`. Written only when not the default, so that a
    /// file `init` writes still loads in an older release (rollbacks).
    #[serde(default, skip_serializing_if = "crate::interop::Tlp::is_default")]
    pub export_tlp: crate::interop::Tlp,
    /// Memory sled may use to cache the store's pages, in MiB (default
    /// 128). More keeps more of a large store's lookup index in memory:
    /// lookups of a store that outgrows the cache read pages back from the
    /// log (BENCHMARKS.md). The node's RSS grows by about the difference.
    /// Written only when set, so that older releases load the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_cache_mib: Option<u64>,
    /// API bearer tokens.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenFile>,
}

/// One `[[token]]` of `sightline.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Who holds it (shown in logs, never the token itself).
    pub name: String,
    /// The secret bearer token.
    pub token: Secret,
    /// `read`, `submit` and/or `admin` (backups).
    pub scopes: Vec<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_listen() -> Vec<String> {
    vec![
        "/ip4/0.0.0.0/tcp/7400".into(),
        "/ip4/0.0.0.0/udp/7400/quic-v1".into(),
    ]
}
fn default_web_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7300))
}
fn default_resubmit_window_secs() -> u64 {
    3600
}

fn default_retention_days() -> u64 {
    365
}
fn default_max_clock_skew_secs() -> u64 {
    300
}
fn default_sync_interval_secs() -> u64 {
    30
}
fn default_api_rate() -> u32 {
    1000
}
fn default_session_hours() -> u32 {
    12
}
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_false(value: &bool) -> bool {
    !*value
}

impl NodeFile {
    /// A file with defaults for everything but the network path.
    pub fn new(network: PathBuf) -> Self {
        NodeFile {
            network,
            data_dir: default_data_dir(),
            key_file: None,
            listen: default_listen(),
            web_bind: default_web_bind(),
            trust: BTreeMap::new(),
            half_life_days: None,
            retention_days: default_retention_days(),
            max_clock_skew_secs: default_max_clock_skew_secs(),
            resubmit_window_secs: default_resubmit_window_secs(),
            sync_interval_secs: default_sync_interval_secs(),
            api_requests_per_second: default_api_rate(),
            web_hosts: Vec::new(),
            web_anonymous_read: false,
            web_secure_cookies: false,
            web_session_hours: default_session_hours(),
            export_tlp: crate::interop::Tlp::default(),
            store_cache_mib: None,
            tokens: Vec::new(),
        }
    }
}

/// An API token's permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Lookups, recent, peers, status.
    Read,
    /// Submitting and withdrawing sightings.
    Submit,
    /// Operating the node: backups (which contain the node key).
    Admin,
}

/// A validated API token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Holder name.
    pub name: String,
    /// The secret.
    pub secret: Secret,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// Everything a node needs to start, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The community.
    pub network: NetworkConfig,
    /// Store directory.
    pub data_dir: PathBuf,
    /// Key file.
    pub key_file: PathBuf,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Web bind address.
    pub web_bind: SocketAddr,
    /// Local trust overrides by org.
    pub trust: BTreeMap<String, f64>,
    /// Decay half-lives by kind: the network's, or this node's override.
    pub half_lives: crate::reputation::HalfLives,
    /// Retention, seconds.
    pub retention_secs: u64,
    /// Allowed clock skew, seconds.
    pub max_clock_skew_secs: u64,
    /// Window of idempotent resubmission, seconds (0: none).
    pub resubmit_window_secs: u64,
    /// Catch-up interval.
    pub sync_interval: std::time::Duration,
    /// API items per second per token.
    pub api_requests_per_second: u32,
    /// Extra host names the web server answers to (lower case, no port).
    pub web_hosts: Vec<String>,
    /// Token-less reads on a loopback bind (never of raw numbers).
    pub web_anonymous_read: bool,
    /// Sign-in cookies carry `Secure`.
    pub web_secure_cookies: bool,
    /// Sign-in lifetime.
    pub web_session: std::time::Duration,
    /// TLP marking of exports.
    pub export_tlp: crate::interop::Tlp,
    /// sled's page cache, in bytes.
    pub store_cache_bytes: u64,
    /// API tokens.
    pub tokens: Vec<ApiToken>,
}

impl NodeConfig {
    /// Reads and validates `sightline.toml` and the `network.toml` it names.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let raw: NodeFile = read_toml(file)?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_file(file, &base, raw)
    }

    /// Validates a parsed `sightline.toml`; relative paths resolve against `base`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn from_file(file: &Path, base: &Path, raw: NodeFile) -> Result<Self, ConfigError> {
        let network = NetworkConfig::load(&base.join(&raw.network))?;
        let data_dir = base.join(&raw.data_dir);
        let key_file = raw
            .key_file
            .as_ref()
            .map_or_else(|| data_dir.join("node.key"), |k| base.join(k));
        let mut listen = Vec::new();
        for (i, text) in raw.listen.iter().enumerate() {
            let addr: Multiaddr = text.parse().map_err(|e| {
                invalid(
                    file,
                    format!("listen[{i}]"),
                    format!("not a multiaddr: {e}"),
                )
            })?;
            let quic = addr
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1));
            if quic && network.psk.is_some() {
                return Err(invalid(
                    file,
                    format!("listen[{i}]"),
                    "the network uses a pre-shared key, which QUIC cannot carry; listen on TCP only",
                ));
            }
            listen.push(addr);
        }
        for (org, trust) in &raw.trust {
            if !(0.0..=1.0).contains(trust) {
                return Err(invalid(
                    file,
                    format!("trust.{org}"),
                    "must be between 0.0 and 1.0",
                ));
            }
            if !network.members.iter().any(|m| &m.org == org) {
                return Err(invalid(
                    file,
                    format!("trust.{org}"),
                    "no member organization has this name",
                ));
            }
        }
        if raw
            .half_life_days
            .is_some_and(|d| !(d > 0.0 && d <= 3650.0))
        {
            return Err(invalid(
                file,
                "half_life_days",
                "must be more than 0 and at most 3650",
            ));
        }
        if raw.retention_days == 0 {
            return Err(invalid(file, "retention_days", "must be at least 1"));
        }
        if raw.sync_interval_secs == 0 {
            return Err(invalid(file, "sync_interval_secs", "must be at least 1"));
        }
        let tokens = parse_tokens(file, &raw.tokens)?;
        if !raw.web_bind.ip().is_loopback() && tokens.is_empty() {
            return Err(invalid(
                file,
                "web_bind",
                "a non-loopback address needs at least one [[token]]",
            ));
        }
        let web_hosts = validate_web(file, &raw)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let half_lives = raw.half_life_days.map_or(network.half_lives, |d| {
            crate::reputation::HalfLives::uniform((d * 86_400.0) as u64)
        });
        Ok(NodeConfig {
            network,
            data_dir,
            key_file,
            listen,
            web_bind: raw.web_bind,
            trust: raw.trust,
            half_lives,
            retention_secs: raw.retention_days * 86_400,
            max_clock_skew_secs: raw.max_clock_skew_secs,
            resubmit_window_secs: raw.resubmit_window_secs,
            sync_interval: std::time::Duration::from_secs(raw.sync_interval_secs),
            api_requests_per_second: raw.api_requests_per_second.max(1),
            web_hosts,
            web_anonymous_read: raw.web_anonymous_read,
            web_secure_cookies: raw.web_secure_cookies,
            web_session: std::time::Duration::from_secs(u64::from(raw.web_session_hours) * 3600),
            export_tlp: raw.export_tlp,
            store_cache_bytes: store_cache_bytes(file, raw.store_cache_mib)?,
            tokens,
        })
    }

    /// Effective trust of an organization: local override, else network.toml.
    /// The node's own organization always counts 1.0.
    pub fn trust_of(&self, member: &Member, own: &PeerId) -> f64 {
        if &member.peer_id == own {
            return 1.0;
        }
        self.trust.get(&member.org).copied().unwrap_or(member.trust)
    }
}

/// sled's page cache from `store_cache_mib`.
fn store_cache_bytes(file: &Path, mib: Option<u64>) -> Result<u64, ConfigError> {
    match mib {
        None => Ok(crate::store::DEFAULT_CACHE_BYTES),
        Some(mib) if (16..=1 << 20).contains(&mib) => Ok(mib << 20),
        Some(_) => Err(invalid(
            file,
            "store_cache_mib",
            "must be between 16 and 1048576 (MiB)",
        )),
    }
}

/// Checks the web settings; returns `web_hosts` normalized (lower case, no
/// trailing dot).
fn validate_web(file: &Path, raw: &NodeFile) -> Result<Vec<String>, ConfigError> {
    if raw.web_anonymous_read && !raw.web_bind.ip().is_loopback() {
        return Err(invalid(
            file,
            "web_anonymous_read",
            "token-less reads are only allowed on a loopback web_bind",
        ));
    }
    let mut web_hosts = Vec::new();
    for (i, host) in raw.web_hosts.iter().enumerate() {
        let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty()
            || name.contains(['/', '@', '?', '#', ' '])
            || (name.contains(':') && !name.starts_with('['))
        {
            return Err(invalid(
                file,
                format!("web_hosts[{i}]"),
                "must be a host name or address without scheme or port, e.g. sightline.example.org",
            ));
        }
        web_hosts.push(name);
    }
    if raw.web_session_hours == 0 || raw.web_session_hours > 24 * 30 {
        return Err(invalid(
            file,
            "web_session_hours",
            "must be between 1 and 720",
        ));
    }
    Ok(web_hosts)
}

fn parse_tokens(file: &Path, raw: &[TokenFile]) -> Result<Vec<ApiToken>, ConfigError> {
    let mut tokens = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        if t.token.expose().len() < 16 {
            return Err(invalid(
                file,
                format!("token[{i}].token"),
                "must be at least 16 characters",
            ));
        }
        let mut scopes = Vec::new();
        for s in &t.scopes {
            scopes.push(match s.as_str() {
                "read" => Scope::Read,
                "submit" => Scope::Submit,
                "admin" => Scope::Admin,
                other => {
                    return Err(invalid(
                        file,
                        format!("token[{i}].scopes"),
                        format!("unknown scope {other:?}; expected read, submit or admin"),
                    ))
                }
            });
        }
        tokens.push(ApiToken {
            name: t.name.clone(),
            secret: t.token.clone(),
            scopes,
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network_text(peer: &str) -> String {
        format!(
            "name = \"Test\"\nid = \"test-net\"\nhash_key = \"{}\"\n\n[[member]]\norg = \"Bank\"\npeer_id = \"{peer}\"\ntrust = 0.8\n",
            encode_key32(&[7; 32])
        )
    }

    fn peer() -> PeerId {
        libp2p::identity::Keypair::ed25519_from_bytes([1; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    /// A valid network.toml (one member, `peer()`) in `dir`.
    fn write_network(dir: &Path) -> PathBuf {
        write(dir, "network.toml", &network_text(&peer().to_string()))
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let psk = encode_key32(&[9; 32]);
        let network = network_text(&peer().to_string()).replace(
            "id = \"test-net\"\n",
            &format!("id = \"test-net\"\npsk = \"{psk}\"\n"),
        );
        write(dir.path(), "network.toml", &network);
        let token = "a-secret-token-a-secret-token";
        let file = write(
            dir.path(),
            "sightline.toml",
            &format!(
                "network = \"network.toml\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n[[token]]\nname = \"soar\"\ntoken = \"{token}\"\nscopes = [\"read\"]\n"
            ),
        );
        let config = NodeConfig::load(&file).unwrap();
        assert!(config.network.psk.is_some());
        let raw: NetworkFile = toml::from_str(&network).unwrap();
        let raw_token: TokenFile = toml::from_str(&format!(
            "name = \"soar\"\ntoken = \"{token}\"\nscopes = []\n"
        ))
        .unwrap();
        let hash_key = encode_key32(&[7; 32]);
        for printed in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{raw:?}"),
            format!("{raw_token:?}"),
        ] {
            for secret in [
                psk.as_str(),
                hash_key.as_str(),
                token,
                "[9, 9, 9",
                "9, 9, 9]",
            ] {
                assert!(!printed.contains(secret), "{secret} printed in {printed}");
            }
            assert!(printed.contains("redacted"), "{printed}");
        }
    }

    #[test]
    fn half_lives_come_by_kind_from_the_network_unless_the_node_sets_one() {
        use crate::reputation::HalfLives;
        use sightline_protocol::Kind;
        let dir = tempfile::tempdir().unwrap();
        let text = network_text(&peer().to_string());
        let network = write(
            dir.path(),
            "network.toml",
            &format!("{text}\n[half_life_days]\ncallback = 60\n\"sim-swap\" = 10\n"),
        );
        let config = NetworkConfig::load(&network).unwrap();
        assert_eq!(config.half_lives.of(Kind::Callback), 60 * 86_400);
        assert_eq!(config.half_lives.of(Kind::SimSwap), 10 * 86_400);
        assert_eq!(
            config.half_lives.of(Kind::Smishing),
            HalfLives::default().of(Kind::Smishing)
        );
        let node = write(dir.path(), "sightline.toml", "network = \"network.toml\"\n");
        assert_eq!(
            NodeConfig::load(&node).unwrap().half_lives,
            config.half_lives
        );
        let uniform = write(
            dir.path(),
            "uniform.toml",
            "network = \"network.toml\"\nhalf_life_days = 7\n",
        );
        assert_eq!(
            NodeConfig::load(&uniform).unwrap().half_lives,
            HalfLives::uniform(7 * 86_400)
        );
        for (bad, field) in [
            ("smishing = 0", "half_life_days.smishing"),
            ("phishing = 3", "phishing"),
        ] {
            let file = write(
                dir.path(),
                "bad.toml",
                &format!("{text}\n[half_life_days]\n{bad}\n"),
            );
            let err = NetworkConfig::load(&file).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn loads_a_valid_pair_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write_network(dir.path());
        let file = write(dir.path(), "sightline.toml", "network = \"network.toml\"\n");
        let config = NodeConfig::load(&file).unwrap();
        assert_eq!(config.network.id.as_str(), "test-net");
        assert_eq!(config.half_lives, crate::reputation::HalfLives::default());
        assert_eq!(config.key_file, dir.path().join("data/node.key"));
        assert_eq!(
            config.network.members[0].origin,
            origin_of(&peer()).unwrap()
        );
        assert_eq!(config.web_bind.port(), 7300);
        assert_eq!(config.network.limits, crate::store::Limits::default());
        assert_eq!(config.resubmit_window_secs, 3600);
        assert_eq!(config.store_cache_bytes, crate::store::DEFAULT_CACHE_BYTES);
        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\nstore_cache_mib = 512\n",
        );
        assert_eq!(
            NodeConfig::load(&file).unwrap().store_cache_bytes,
            512 << 20
        );
        // A partial [limits] table keeps the other default.
        let limited = network_text(&peer().to_string()) + "\n[limits]\nrecords_per_hour = 50\n";
        let file = write(dir.path(), "network.toml", &limited);
        let limits = NetworkConfig::load(&file).unwrap().limits;
        assert_eq!(limits.records_per_hour, 50);
        assert_eq!(
            limits.numbers_per_day,
            crate::store::Limits::default().numbers_per_day
        );
    }

    #[test]
    fn errors_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad_trust = network_text(&peer().to_string()).replace("0.8", "1.5");
        let file = write(dir.path(), "network.toml", &bad_trust);
        let err = NetworkConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("network.toml") && err.contains("member[0].trust"),
            "{err}"
        );

        let file = write(dir.path(), "network.toml", &network_text("not-a-peer"));
        let err = NetworkConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("member[0].peer_id"), "{err}");

        let short_key = network_text(&peer().to_string()).replace(&encode_key32(&[7; 32]), "AAAA");
        let file = write(dir.path(), "network.toml", &short_key);
        let err = NetworkConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("hash_key") && err.contains("32 bytes"),
            "{err}"
        );

        let zero = network_text(&peer().to_string()) + "\n[limits]\nnumbers_per_day = 0\n";
        let file = write(dir.path(), "network.toml", &zero);
        let err = NetworkConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("limits.numbers_per_day"), "{err}");

        let file = write(dir.path(), "network.toml", "name = 1");
        let err = NetworkConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("network.toml"), "{err}");

        write_network(dir.path());
        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\nweb_bind = \"0.0.0.0:7300\"\n",
        );
        let err = NodeConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("sightline.toml") && err.contains("web_bind"),
            "{err}"
        );

        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\nhalf_life = 3\n",
        );
        let err = NodeConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");

        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\n[trust]\nNobody = 0.5\n",
        );
        let err = NodeConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("trust.Nobody"), "{err}");

        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\nstore_cache_mib = 4\n",
        );
        let err = NodeConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("store_cache_mib"), "{err}");
    }

    #[test]
    fn own_org_counts_one_and_local_overrides_win() {
        let dir = tempfile::tempdir().unwrap();
        write_network(dir.path());
        let file = write(
            dir.path(),
            "sightline.toml",
            "network = \"network.toml\"\n[trust]\nBank = 0.3\n",
        );
        let config = NodeConfig::load(&file).unwrap();
        let bank = &config.network.members[0];
        let other = libp2p::identity::Keypair::ed25519_from_bytes([2; 32])
            .unwrap()
            .public()
            .to_peer_id();
        assert!((config.trust_of(bank, &other) - 0.3).abs() < f64::EPSILON);
        assert!((config.trust_of(bank, &peer()) - 1.0).abs() < f64::EPSILON);
    }
}
