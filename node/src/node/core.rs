//! The core task: routes network events, drives catch-up (asking and
//! answering) and purges; and the store task that keeps the store writing.

use crate::catchup::{ReconcileRequest, ReconcileResponse};
use crate::network::RequestError;

use super::{
    blocking, catchup, mpsc, watch, Arc, CancellationToken, CatchUpRequest, CatchUpResponse,
    Client, Clock, Duration, HashSet, IngestItem, Metrics, NetworkEvent, OriginId, PeerId,
    RateLimiter, Source, Store, StoreError, TaskTracker, UnverifiedSighting, PURGE_INTERVAL,
};

/// How often a healthy store is checked for a failure nobody saw (sled's
/// background flush), and the longest wait between reopen attempts.
pub(super) const STORE_PROBE: Duration = Duration::from_secs(2);
pub(super) const STORE_RETRY_MAX: Duration = Duration::from_secs(16);

/// Keeps the store writing: probes it while it is healthy, and after a
/// failure (a full disk) reopens it as soon as there is room again, backing
/// off between attempts (see [`Store::recover`]).
pub(super) async fn store_task(store: Store, shutdown: CancellationToken) {
    let mut retry = Duration::from_millis(500);
    loop {
        let wait = if store.is_healthy() {
            STORE_PROBE
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        let s = store.clone();
        let healthy = blocking(move || {
            if s.is_healthy() {
                // A flush fails once sled has kept an error, so a failure of
                // its background flush is noticed with nothing being stored.
                s.flush().is_ok()
            } else {
                s.recover()
            }
        })
        .await;
        retry = if healthy {
            Duration::from_millis(500)
        } else {
            (retry * 2).min(STORE_RETRY_MAX)
        };
    }
}

/// Peers to pull from again (see `CoreTask::retry_pulls`).
pub(super) type RetryPulls = Arc<std::sync::Mutex<std::collections::HashSet<PeerId>>>;

/// A peer's advertised (count, digest) for one origin, and this node's.
pub(super) type PeerSetSummary = ((u64, [u8; 32]), (u64, [u8; 32]));

/// Each origin's (count, digest) in this node's progress.
pub(super) type HeldSets = std::collections::HashMap<OriginId, (u64, [u8; 32])>;

/// [`HeldSets`] of this node's progress.
pub(super) fn held_sets(mine: &[crate::store::OriginProgress]) -> HeldSets {
    mine.iter()
        .map(|p| (p.origin, (p.count, p.digest)))
        .collect()
}

/// The summary a completed pull of `origin` from a peer advertising
/// `theirs` (count, digest) is remembered by, given what this node `held`.
pub(super) fn pull_summary(
    held: &HeldSets,
    origin: &OriginId,
    theirs: (u64, [u8; 32]),
) -> PeerSetSummary {
    (theirs, held.get(origin).copied().unwrap_or((0, [0; 32])))
}

/// Most gaps of one origin pulled from one peer in one catch-up round; the
/// rest wait for the next round.
pub(super) const MAX_GAPS: usize = 256;

/// Per peer, the catch-up version of the last exchange completed with it.
#[derive(Debug, Clone, Default)]
pub(super) struct CatchUpVersions(Arc<std::sync::Mutex<std::collections::HashMap<PeerId, u8>>>);

impl CatchUpVersions {
    fn note(&self, peer: PeerId, version: u8) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer, version);
    }

    /// The version of the last exchange with `peer`, if any.
    pub(super) fn of(&self, peer: &PeerId) -> Option<u8> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(peer)
            .copied()
    }
}

/// Whether a peer speaks catch-up version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spoken {
    Yes,
    Unsupported,
}

/// How a [`CoreTask::pull_range`] ended.
pub(super) enum Pulled {
    /// Every record of the range the peer holds was received.
    Done,
    /// Cut short (the peer was busy or answered oddly): pull again later.
    Partly,
    /// The node is stopping or the peer is gone: end this catch-up.
    Stop,
}

pub(super) struct CoreTask {
    /// Per (peer, origin): the peer's (count, digest) and this node's when
    /// a pull from it last completed. If neither changed, the peer has
    /// nothing this node has not already received from it, so no pull (gaps
    /// no peer holds, such as seqs purged network-wide, would otherwise be
    /// re-pulled every round). If this node's changed, records it refused
    /// may fit now (a late lower seq evicted what was over an origin's
    /// limits), so it pulls again.
    pub(super) pulled:
        std::sync::Mutex<std::collections::HashMap<(PeerId, OriginId), PeerSetSummary>>,
    /// Per peer: records it holds that this node lacked when they last
    /// reconciled, less those received since (`sightline_sync_lag_records`).
    pub(super) lag: std::sync::Mutex<std::collections::HashMap<PeerId, u64>>,
    /// Per peer: the catch-up version of the last exchange completed with
    /// it (shown with the node's peers).
    pub(super) versions: CatchUpVersions,
    /// Item sets built for answering reconciliations.
    pub(super) sets: Arc<crate::reconcile::SetCache>,
    /// Whether the own seq counter is confirmed (shared with submit).
    pub(super) own_seq_known: Arc<watch::Sender<bool>>,
    /// Peers that sent records refused for a transient reason
    /// ([`Rejection::is_transient`]), marked by the ingest task: their
    /// `pulled` entries are forgotten at the next catch-up.
    pub(super) retry_pulls: RetryPulls,
    /// This node's origin: purges forget the raw numbers of its own reports.
    pub(super) own: OriginId,
    /// Retention, seconds: equivocation evidence is purged with it.
    pub(super) retention: u64,
    pub(super) store: Store,
    pub(super) client: Client,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) members: HashSet<OriginId>,
    pub(super) ingest: mpsc::Sender<IngestItem>,
    pub(super) sync_interval: Duration,
    /// Where the catch-up, serving and purge tasks are spawned, so that
    /// shutdown joins them.
    pub(super) tasks: TaskTracker,
    /// Cancels a catch-up in progress at shutdown.
    pub(super) shutdown: CancellationToken,
    /// Held by the running purge: a purge tick while one runs is skipped.
    pub(super) purging: Arc<tokio::sync::Mutex<()>>,
}

pub(super) async fn core_task(task: CoreTask, mut events: mpsc::Receiver<NetworkEvent>) {
    let task = Arc::new(task);
    let limiter: RateLimiter = governor::RateLimiter::hashmap(catchup::quota());
    let mut connected: HashSet<PeerId> = HashSet::new();
    let running: Arc<std::sync::Mutex<HashSet<PeerId>>> = Arc::default();
    let mut sync_tick = tokio::time::interval(task.sync_interval);
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut purge_tick = tokio::time::interval(PURGE_INTERVAL);
    purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start_catch_up = |peer: PeerId| {
        if running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer)
        {
            let task = task.clone();
            let running = running.clone();
            task.tasks.clone().spawn(async move {
                task.shutdown.run_until_cancelled(task.catch_up(peer)).await;
                running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&peer);
            });
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(NetworkEvent::Gossip { message_id, source, data }) => {
                    let item = IngestItem { data, source: Source::Gossip { message_id, peer: source } };
                    if task.ingest.send(item).await.is_err() {
                        break;
                    }
                }
                Some(NetworkEvent::CatchUpRequest { peer, request, channel }) => {
                    if limiter.check_key(&peer).is_ok() {
                        let serving = task.clone();
                        task.tasks.spawn(async move {
                            let response = serving.serve(request).await;
                            let _ = serving.client.respond(channel, response).await;
                        });
                    } else {
                        Metrics::incr(&task.metrics.sync_throttled);
                        let client = task.client.clone();
                        task.tasks.spawn(async move {
                            let _ = client.respond(channel, CatchUpResponse::Busy).await;
                        });
                    }
                }
                Some(NetworkEvent::ReconcileRequest { peer, request, channel }) => {
                    let allowed = limiter.check_key(&peer).is_ok();
                    answer_reconcile(&task, allowed, request, channel);
                }
                Some(NetworkEvent::Connected(peer)) => {
                    connected.insert(peer);
                    start_catch_up(peer);
                }
                Some(NetworkEvent::Disconnected(peer)) => {
                    // The rate-limit bucket is kept: reconnecting must not
                    // buy a fresh burst. Only members connect, so it is bounded.
                    connected.remove(&peer);
                    task.set_lag(peer, None);
                }
                None => break,
            },
            _ = sync_tick.tick() => {
                for peer in &connected {
                    start_catch_up(*peer);
                }
            }
            _ = purge_tick.tick() => {
                // One purge at a time: a tick while the last one still runs
                // (a large store, a slow disk) is skipped.
                let Ok(running) = task.purging.clone().try_lock_owned() else {
                    tracing::debug!("purge still running; tick skipped");
                    continue;
                };
                let store = task.store.clone();
                let now = task.clock.now();
                let own = task.own;
                let retention = task.retention;
                // Off the loop: a long purge must not stall event routing.
                task.tasks.spawn(async move {
                    match blocking(move || store.purge(now, &own, retention)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "purged expired records"),
                        Err(e) => tracing::error!(error = %e, "purge failed"),
                    }
                    drop(running);
                });
            }
            () = task.shutdown.cancelled() => break,
        }
    }
}

/// Answers a catch-up version 2 request off the loop (`Busy` when the
/// peer's rate limit is spent).
fn answer_reconcile(
    task: &Arc<CoreTask>,
    allowed: bool,
    request: ReconcileRequest,
    channel: libp2p::request_response::ResponseChannel<ReconcileResponse>,
) {
    if !allowed {
        Metrics::incr(&task.metrics.sync_throttled);
    }
    let serving = task.clone();
    task.tasks.spawn(async move {
        let response = if allowed {
            serving.serve_reconcile(request).await
        } else {
            ReconcileResponse::Busy
        };
        let _ = serving.client.respond_reconcile(channel, response).await;
    });
}

impl CoreTask {
    async fn serve(&self, request: CatchUpRequest) -> CatchUpResponse {
        let store = self.store.clone();
        let result = blocking(move || -> Result<CatchUpResponse, StoreError> {
            Ok(match request {
                CatchUpRequest::Progress(_) => CatchUpResponse::Progress(
                    store
                        .progress()?
                        .iter()
                        .take(catchup::MAX_PROGRESS_ENTRIES)
                        .map(catchup::ProgressEntry::from)
                        .collect(),
                ),
                CatchUpRequest::Pull {
                    origin,
                    after,
                    limit,
                } => {
                    let limit = usize::try_from(limit.clamp(1, catchup::MAX_PAGE)).expect("small");
                    let (records, more) =
                        store.page(&OriginId::from_bytes(origin), after, limit)?;
                    CatchUpResponse::Records {
                        records: records
                            .into_iter()
                            .map(serde_bytes::ByteBuf::from)
                            .collect(),
                        more,
                    }
                }
            })
        })
        .await;
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "catch-up request failed");
            CatchUpResponse::Busy
        })
    }

    /// Answers a catch-up version 2 request (SPEC §11.2).
    async fn serve_reconcile(&self, request: ReconcileRequest) -> ReconcileResponse {
        let (store, sets) = (self.store.clone(), self.sets.clone());
        let result = blocking(move || -> Result<ReconcileResponse, StoreError> {
            Ok(match request {
                ReconcileRequest::Summary => ReconcileResponse::Summary(
                    store
                        .progress()?
                        .iter()
                        .take(catchup::MAX_PROGRESS_ENTRIES)
                        .map(catchup::SetSummary::from)
                        .collect(),
                ),
                ReconcileRequest::Reconcile { origin, message } => {
                    // Not negentropy's protocol version 1: refused before
                    // any work.
                    if message.first() != Some(&0x61) {
                        return Ok(ReconcileResponse::Invalid);
                    }
                    let origin = OriginId::from_bytes(origin);
                    let version = store.set_version(&origin)?;
                    let set = sets.get_or_build(version, || {
                        let items = store.items(&origin)?;
                        crate::reconcile::item_set(&items)
                            .map_err(|_| StoreError::Corrupt("reconciliation items"))
                    })?;
                    let Some(set) = set else {
                        return Ok(ReconcileResponse::Busy);
                    };
                    match crate::reconcile::answer(&set, &message) {
                        Ok(message) => ReconcileResponse::Reconcile {
                            message: serde_bytes::ByteBuf::from(message),
                        },
                        Err(_) => ReconcileResponse::Invalid,
                    }
                }
                ReconcileRequest::Fetch { origin, items } => {
                    let items: Option<Vec<[u8; 32]>> = items
                        .iter()
                        .map(|i| <[u8; 32]>::try_from(i.as_slice()).ok())
                        .collect();
                    match items {
                        Some(items) if items.len() <= catchup::MAX_FETCH => {
                            let records =
                                store.records_for_items(&OriginId::from_bytes(origin), &items)?;
                            ReconcileResponse::Records {
                                records: records
                                    .into_iter()
                                    .map(serde_bytes::ByteBuf::from)
                                    .collect(),
                            }
                        }
                        _ => ReconcileResponse::Invalid,
                    }
                }
            })
        })
        .await;
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "catch-up request failed");
            ReconcileResponse::Busy
        })
    }

    /// The first peer to answer tells a restored or re-created store the
    /// highest seq it holds of this node's origin: the counter is raised
    /// past it before anything is signed, and the store remembers that it
    /// is confirmed.
    /// `theirs` is the peer's (origin, highest seq held) per origin.
    async fn confirm_own_seq(&self, mut theirs: impl Iterator<Item = ([u8; 32], u64)>) {
        if *self.own_seq_known.borrow() {
            return;
        }
        let held = theirs
            .find(|(origin, _)| origin == self.own.as_bytes())
            .map(|(_, max_seq)| max_seq);
        let store = self.store.clone();
        let confirmed = blocking(move || -> Result<(), StoreError> {
            if let Some(seq) = held {
                store.raise_own_seq(seq)?;
            }
            store.confirm_own_seq()
        })
        .await;
        match confirmed {
            Ok(()) => {
                tracing::info!(
                    peers_highest = held.unwrap_or(0),
                    "own seq confirmed by a peer; submissions open"
                );
                self.own_seq_known.send_replace(true);
            }
            Err(e) => tracing::error!(error = %e, "confirming the own seq failed"),
        }
    }

    /// Records `peer` sent were refused for a passing reason (a full disk,
    /// clock skew): what was pulled from it is pulled again.
    fn forget_pulls_if_refused(&self, peer: PeerId) {
        if self
            .retry_pulls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&peer)
        {
            self.pulled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(p, _), _| *p != peer);
        }
    }

    /// Pulls `origin`'s records `first..=last` from `peer`, page by page,
    /// into ingest. A peer that lacks some of them answers with the next
    /// ones it holds; the pull stops at `last` either way.
    async fn pull_range(&self, peer: PeerId, origin: OriginId, first: u64, last: u64) -> Pulled {
        let mut after = first - 1;
        // A range of n seqs takes at most n / MAX_PAGE + 1 pages.
        let mut pages_left = (last - after) / u64::from(catchup::MAX_PAGE) + 2;
        let mut busy_retries = 0;
        while pages_left > 0 {
            pages_left -= 1;
            let limit = u32::try_from((last - after).min(u64::from(catchup::MAX_PAGE)))
                .unwrap_or(catchup::MAX_PAGE);
            let request = CatchUpRequest::Pull {
                origin: *origin.as_bytes(),
                after,
                limit,
            };
            match self.client.request(peer, request).await {
                Ok(CatchUpResponse::Records { records, more }) => {
                    Metrics::incr(&self.metrics.sync_pages);
                    Metrics::add(&self.metrics.sync_records, records.len() as u64);
                    Metrics::add(
                        &self.metrics.sync_bytes,
                        records.iter().map(|r| r.len() as u64).sum(),
                    );
                    let last_seq = records
                        .last()
                        .and_then(|r| UnverifiedSighting::decode(r).ok())
                        .filter(|r| r.sighting().origin == origin)
                        .map(|r| r.sighting().seq);
                    for record in records {
                        let item = IngestItem {
                            data: record.into_vec(),
                            source: Source::Sync { peer },
                        };
                        if self.ingest.send(item).await.is_err() {
                            return Pulled::Stop;
                        }
                    }
                    busy_retries = 0;
                    match last_seq {
                        Some(seq) if seq > after && seq < last && more => after = seq,
                        Some(_) => return Pulled::Done,
                        None if !more => return Pulled::Done,
                        None => return Pulled::Partly,
                    }
                }
                Ok(CatchUpResponse::Busy) if busy_retries < 5 => {
                    busy_retries += 1;
                    pages_left += 1;
                    tokio::time::sleep(Duration::from_millis(500 * busy_retries)).await;
                }
                Ok(_) => return Pulled::Partly,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "catch-up pull failed");
                    return Pulled::Stop;
                }
            }
        }
        Pulled::Partly
    }

    /// One catch-up with a peer: version 2 (set reconciliation) if it
    /// speaks it, else version 1 (an older release, during an upgrade).
    async fn catch_up(&self, peer: PeerId) {
        self.forget_pulls_if_refused(peer);
        if self.reconcile_with(peer).await == Spoken::Unsupported {
            self.catch_up_v1(peer).await;
        }
    }

    /// Sets (or with `None`, forgets) what `peer` holds that this node
    /// lacks, and the gauge: the largest over peers.
    pub(super) fn set_lag(&self, peer: PeerId, lag: Option<u64>) {
        let mut map = self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match lag {
            Some(n) => {
                map.insert(peer, n);
            }
            None => {
                map.remove(&peer);
            }
        }
        let largest = map.values().copied().max().unwrap_or(0);
        self.metrics
            .sync_lag
            .store(largest, std::sync::atomic::Ordering::Relaxed);
    }

    /// Catch-up version 2 with `peer`: for each member origin whose set
    /// differs from the peer's, reconcile the two sets and fetch what this
    /// node lacks. What the peer lacks, it fetches in its own round.
    async fn reconcile_with(&self, peer: PeerId) -> Spoken {
        let theirs = match self.client.reconcile(peer, ReconcileRequest::Summary).await {
            Ok(ReconcileResponse::Summary(theirs)) => {
                self.versions.note(peer, 2);
                theirs
            }
            Err(RequestError::Unsupported) => return Spoken::Unsupported,
            Ok(_) => return Spoken::Yes,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "catch-up summary request failed");
                return Spoken::Yes;
            }
        };
        Metrics::incr(&self.metrics.sync_exchanges);
        // At most SUMMARY_ENTRY_BYTES of CBOR per origin (not measured on
        // the wire).
        Metrics::add(
            &self.metrics.sync_bytes,
            catchup::SUMMARY_ENTRY_BYTES * theirs.len() as u64,
        );
        self.confirm_own_seq(theirs.iter().map(|e| (e.origin, e.max_seq)))
            .await;
        let store = self.store.clone();
        let Ok(mine) = blocking(move || store.progress()).await else {
            return Spoken::Yes;
        };
        let held = held_sets(&mine);
        let mut lag = 0;
        for entry in theirs.iter().take(catchup::MAX_PROGRESS_ENTRIES) {
            let origin = OriginId::from_bytes(entry.origin);
            let summary = pull_summary(&held, &origin, (entry.count, entry.digest));
            let same = summary.0 == summary.1;
            let done_before = self
                .pulled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&(peer, origin))
                == Some(&summary);
            if entry.count == 0 || same || done_before || !self.members.contains(&origin) {
                continue;
            }
            match self.reconcile_origin(peer, origin, &mut lag).await {
                Pulled::Done => {
                    self.pulled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert((peer, origin), summary);
                }
                Pulled::Partly => {}
                Pulled::Stop => break,
            }
        }
        self.set_lag(peer, Some(lag));
        Spoken::Yes
    }

    /// Sends a version-2 request, again while the peer answers `Busy` (five
    /// times, backing off); the last answer, or `None` when the request
    /// failed (the peer is gone, the node is stopping).
    async fn ask(&self, peer: PeerId, request: ReconcileRequest) -> Option<ReconcileResponse> {
        for retry in 1..=5 {
            match self.client.reconcile(peer, request.clone()).await {
                Ok(ReconcileResponse::Busy) => {
                    tokio::time::sleep(Duration::from_millis(500 * retry)).await;
                }
                Ok(answer) => return Some(answer),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "catch-up request failed");
                    return None;
                }
            }
        }
        self.client.reconcile(peer, request).await.ok()
    }

    /// Reconciles `origin`'s set with `peer`'s and fetches the records this
    /// node lacks into ingest. `lag` gains what could not be fetched.
    async fn reconcile_origin(&self, peer: PeerId, origin: OriginId, lag: &mut u64) -> Pulled {
        let store = self.store.clone();
        let started = blocking(move || -> Result<_, String> {
            let items = store.items(&origin).map_err(|e| e.to_string())?;
            crate::reconcile::Session::start(&items).map_err(|e| e.to_string())
        })
        .await;
        let (mut session, mut message) = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(error = %e, "reconciliation could not start");
                return Pulled::Partly;
            }
        };
        loop {
            let request = ReconcileRequest::Reconcile {
                origin: *origin.as_bytes(),
                message: serde_bytes::ByteBuf::from(message),
            };
            match self.ask(peer, request).await {
                Some(ReconcileResponse::Reconcile { message: answer }) => {
                    Metrics::incr(&self.metrics.sync_rounds);
                    Metrics::add(&self.metrics.sync_bytes, answer.len() as u64);
                    match session.step(&answer) {
                        Ok(Some(next)) => message = next,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "reconciliation answer refused");
                            return Pulled::Partly;
                        }
                    }
                }
                Some(_) => return Pulled::Partly,
                None => return Pulled::Stop,
            }
        }
        let store = self.store.clone();
        let need = session.need();
        let lacked = need.len();
        let Ok(need) = blocking(move || store.wanted(&origin, need)).await else {
            return Pulled::Partly;
        };
        tracing::debug!(%peer, %origin, rounds = session.rounds(), lacked, wanted = need.len(), "reconciled");
        match self.fetch(peer, origin, &need, lag).await {
            Pulled::Done if session.capped() => {
                // What the session learned is fetched; the rest next time.
                Pulled::Partly
            }
            other => other,
        }
    }

    /// Fetches `need` (items of `origin`) from `peer` into ingest, in
    /// chunks; `lag` counts down as they arrive.
    async fn fetch(
        &self,
        peer: PeerId,
        origin: OriginId,
        need: &[[u8; 32]],
        lag: &mut u64,
    ) -> Pulled {
        *lag += need.len() as u64;
        self.set_lag(peer, Some(*lag));
        for chunk in need.chunks(catchup::MAX_FETCH) {
            let request = ReconcileRequest::Fetch {
                origin: *origin.as_bytes(),
                items: chunk
                    .iter()
                    .map(|i| serde_bytes::ByteBuf::from(i.to_vec()))
                    .collect(),
            };
            let records = match self.ask(peer, request).await {
                Some(ReconcileResponse::Records { records }) => records,
                Some(_) => return Pulled::Partly,
                None => return Pulled::Stop,
            };
            Metrics::incr(&self.metrics.sync_pages);
            Metrics::add(&self.metrics.sync_records, records.len() as u64);
            let asked: std::collections::HashSet<&[u8; 32]> = chunk.iter().collect();
            for record in records {
                Metrics::add(&self.metrics.sync_bytes, record.len() as u64);
                // Only what was asked for is verified and stored: a peer
                // cannot make this node verify records it did not want.
                let item = UnverifiedSighting::decode(&record).ok().and_then(|r| {
                    let s = r.sighting();
                    (s.origin == origin).then(|| {
                        catchup::item_id(
                            s.seq,
                            sightline_protocol::SightingId::of(&record).as_bytes(),
                        )
                    })
                });
                if !item.is_some_and(|i| asked.contains(&i)) {
                    tracing::debug!(%peer, "catch-up answer held a record not asked for; dropped");
                    continue;
                }
                let item = IngestItem {
                    data: record.into_vec(),
                    source: Source::Sync { peer },
                };
                if self.ingest.send(item).await.is_err() {
                    return Pulled::Stop;
                }
            }
            // Fetched (an item the peer no longer holds is gone there too).
            *lag -= chunk.len() as u64;
            self.set_lag(peer, Some(*lag));
        }
        Pulled::Done
    }

    /// One catch-up version 1 exchange with a peer: progress, then pages of
    /// what is missing.
    async fn catch_up_v1(&self, peer: PeerId) {
        let store = self.store.clone();
        let Ok(mine) = blocking(move || store.progress()).await else {
            return;
        };
        let request =
            CatchUpRequest::Progress(mine.iter().map(catchup::ProgressEntry::from).collect());
        let theirs = match self.client.request(peer, request).await {
            Ok(CatchUpResponse::Progress(theirs)) => {
                Metrics::incr(&self.metrics.sync_exchanges);
                self.versions.note(peer, 1);
                theirs
            }
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "catch-up progress request failed");
                return;
            }
        };
        self.confirm_own_seq(theirs.iter().map(|e| (e.origin, e.max_seq)))
            .await;
        let held = held_sets(&mine);
        let summary =
            |o: &OriginId, e: &catchup::ProgressEntry| pull_summary(&held, o, (e.count, e.digest));
        let pulls = catchup::plan(&mine, &theirs, |o, e| {
            self.members.contains(o)
                && self
                    .pulled
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&(peer, *o))
                    != Some(&summary(o, e))
        });
        for (origin, entry) in pulls {
            // Only what is missing: the gaps above this node's contiguous
            // mark, up to the peer's highest seq. Records stored or refused
            // for good are not fetched again, whatever the gaps.
            let store = self.store.clone();
            let gaps = blocking(move || store.gaps(&origin, entry.max_seq, MAX_GAPS)).await;
            let Ok(gaps) = gaps else {
                continue;
            };
            let mut complete = gaps.len() < MAX_GAPS;
            for (first, last) in gaps {
                match self.pull_range(peer, origin, first, last).await {
                    Pulled::Done => {}
                    Pulled::Partly => complete = false,
                    Pulled::Stop => return,
                }
            }
            if complete {
                self.pulled
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert((peer, origin), summary(&origin, &entry));
            }
        }
    }
}
