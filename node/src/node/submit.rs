//! Submitting and withdrawing this organization's sightings: validation of
//! a whole batch, repeats answered with the existing receipt, signing.

use super::{
    blocking, ingest, letters, parse_number_with, Channel, ItemError, Kind, Letters, Metrics,
    NodeHandle, Receipt, Sighting, SignedSighting, StoreError, Submission, SubmitError, Verdict,
    LINKS_NEED_VERSION_2, MAX_BATCH, NOTHING_TO_WITHDRAW, OWN_SEQ_WAIT,
};

/// What one item of a batch becomes.
pub(super) enum Planned {
    /// A new record (seq filled in later), its E.164, and whether it is
    /// the batch's first item of its number (only such an item can repeat
    /// a stored report).
    Mint(Sighting, String, bool),
    /// A repeat of this organization's current report: its receipt.
    Existing(Receipt),
    /// A repeat of the batch's item at this index.
    Repeat(usize),
}

/// What makes two reports of a number the same report for idempotent
/// resubmission: kind, verdict, channel, brand and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facts {
    pub(super) kind: Kind,
    pub(super) verdict: Verdict,
    pub(super) channel: Channel,
    pub(super) brand: Option<String>,
    pub(super) links: Vec<sightline_protocol::Link>,
}

impl Facts {
    /// The facts of a report; `links` from its record (the store's compact
    /// reports do not carry them).
    fn of(s: &Sighting, links: Option<&[sightline_protocol::Link]>) -> Self {
        Facts {
            kind: s.kind,
            verdict: s.verdict,
            channel: s.channel,
            brand: s.brand.clone(),
            links: links.unwrap_or_default().to_vec(),
        }
    }
}

/// Where an item's receipt comes from.
pub(super) enum Slot {
    /// The batch's n-th new record.
    Minted(usize),
    /// An earlier report's.
    Existing(Receipt),
    /// The receipt of the batch's item at this index.
    Repeat(usize),
}

/// Where each item's receipt will come from, and the records to sign.
pub(super) fn slots_of(planned: Vec<Planned>) -> (Vec<Slot>, Vec<(Sighting, String)>) {
    let mut prepared = Vec::new();
    let mut slots = Vec::with_capacity(planned.len());
    for item in planned {
        slots.push(match item {
            Planned::Mint(sighting, e164, _) => {
                prepared.push((sighting, e164));
                Slot::Minted(prepared.len() - 1)
            }
            Planned::Existing(receipt) => Slot::Existing(receipt),
            Planned::Repeat(j) => Slot::Repeat(j),
        });
    }
    (slots, prepared)
}

/// The receipts of a batch in item order.
pub(super) fn receipts_of(slots: Vec<Slot>, minted: &[Receipt]) -> Vec<Receipt> {
    let mut out: Vec<Receipt> = Vec::with_capacity(slots.len());
    for slot in slots {
        let receipt = match slot {
            Slot::Minted(i) => minted[i].clone(),
            Slot::Existing(r) => r,
            Slot::Repeat(j) => Receipt {
                existing: true,
                ..out[j].clone()
            },
        };
        out.push(receipt);
    }
    out
}

impl NodeHandle {
    /// Waits (a while) until the own seq counter is confirmed by a peer, so
    /// a restored node never signs a seq its peers already hold.
    async fn wait_for_own_seq(&self) -> Result<(), SubmitError> {
        if *self.inner.own_seq_known.borrow() {
            return Ok(());
        }
        let mut known = self.inner.own_seq_known.subscribe();
        let confirmed = matches!(
            tokio::time::timeout(OWN_SEQ_WAIT, known.wait_for(|k| *k)).await,
            Ok(Ok(_))
        );
        if confirmed {
            Ok(())
        } else {
            Err(SubmitError::OwnSeqUnconfirmed)
        }
    }

    /// Submits a batch of sightings. The batch is validated whole: one invalid
    /// item rejects all of it and nothing is stored. Returns once every record
    /// is durable on disk; then publishes them. Re-submitting a number
    /// publishes a new seq that supersedes this organization's earlier report.
    ///
    /// # Panics
    /// Only if an internal store task panicked (a bug).
    ///
    /// # Errors
    /// [`SubmitError`].
    pub async fn submit(&self, batch: Vec<Submission>) -> Result<Vec<Receipt>, SubmitError> {
        if batch.is_empty() || batch.len() > MAX_BATCH {
            return Err(SubmitError::BatchSize(batch.len()));
        }
        let now = self.inner.clock.now();
        // Parsing 10,000 numbers takes ~0.1 s: off the async workers, and
        // before the submit lock so concurrent submitters parse in parallel.
        let handle = self.clone();
        let planned = blocking(move || handle.prepare(&batch, now)).await?;
        self.wait_for_own_seq().await?;
        let _order = self.inner.submit_lock.lock().await;
        // A store that failed to write acknowledges nothing until the node
        // has reopened it (store_task).
        self.inner.store.ensure_writable()?;
        // Repeats of stored reports are looked for under the lock, so a
        // retry of a request still in flight finds the report it signed.
        let handle = self.clone();
        let planned = blocking(move || handle.look_again(planned, now)).await?;
        let (slots, prepared) = slots_of(planned);
        if prepared.is_empty() {
            return Ok(receipts_of(slots, &[]));
        }
        // Peers ignore what is over this organization's limits: refuse it
        // here, before anything is signed.
        let entries: Vec<_> = prepared
            .iter()
            .map(|(s, _)| (s.last_seen, s.number, s.block))
            .collect();
        let (store, origin) = (self.inner.store.clone(), self.inner.signing.origin());
        match blocking(move || store.room(&origin, now, &entries)).await? {
            crate::store::Room::Fits => {}
            crate::store::Room::Wait(retry_after) => {
                return Err(SubmitError::OverLimit {
                    retry_after,
                    limits: self.inner.store.limits(),
                })
            }
            crate::store::Room::Never(limit) => {
                return Err(SubmitError::BatchOverLimit {
                    limit,
                    limits: self.inner.store.limits(),
                })
            }
        }
        let inner = self.inner.clone();
        let records = blocking(
            move || -> Result<Vec<(SignedSighting, String)>, StoreError> {
                let n = u64::try_from(prepared.len()).expect("batch fits u64");
                let seqs = inner.store.reserve_own_seqs(n)?;
                let mut out = Vec::with_capacity(prepared.len());
                let mut rows = Vec::with_capacity(prepared.len());
                for ((mut sighting, e164), seq) in prepared.into_iter().zip(seqs) {
                    sighting.seq = seq;
                    let record = sighting.sign(&inner.signing).expect("validated in prepare");
                    let s = record.sighting();
                    let purge =
                        ingest::purge_at(s.last_seen, s.expires, inner.config.retention_secs);
                    rows.push((record.clone(), purge, e164.clone()));
                    out.push((record, e164));
                }
                // One transaction: the batch and its raw numbers are stored
                // whole or not at all.
                inner.store.insert_own(&rows, inner.clock.now())?;
                inner.store.flush()?;
                Ok(out)
            },
        )
        .await?;
        self.inner
            .changes
            .send_modify(|c| *c += records.len() as u64);
        let mut minted = Vec::with_capacity(records.len());
        for (record, e164) in records {
            Metrics::incr(&self.inner.metrics.submitted);
            minted.push(Receipt {
                id: record.id().to_hex(),
                seq: record.sighting().seq,
                number: e164,
                existing: false,
            });
            if self
                .inner
                .client
                .publish(record.as_bytes().to_vec())
                .await
                .is_err()
            {
                tracing::warn!("network stopped; record stored and will be shared by catch-up");
            }
        }
        Ok(receipts_of(slots, &minted))
    }

    /// Validates a batch into unsigned records (seq filled in later), and
    /// finds the items that repeat a current report within the
    /// resubmission window (or an earlier item of the batch).
    fn prepare(&self, batch: &[Submission], now: u64) -> Result<Vec<Planned>, SubmitError> {
        let mut errors = Vec::new();
        let mut prepared = Vec::with_capacity(batch.len());
        // Numbers this batch itself reports before a withdrawal of them.
        let mut reported_here = std::collections::HashSet::new();
        // Per number: the batch's last item of it and what it said.
        let mut last_here: std::collections::HashMap<
            sightline_protocol::NumberHash,
            (usize, Facts),
        > = std::collections::HashMap::new();
        for (index, item) in batch.iter().enumerate() {
            let fail = |code: &'static str, reason: String| ItemError {
                index,
                number: item.number.clone(),
                code: code.to_owned(),
                reason,
            };
            let (mut sighting, parsed) = match self.draft(item, now) {
                Ok(drafted) => drafted,
                Err((code, reason)) => {
                    errors.push(fail(code, reason));
                    continue;
                }
            };
            if item.first_seen.is_none() {
                sighting.first_seen = self.first_sighting(&sighting, now)?;
            }
            if let Err(e) = sighting.validate() {
                errors.push(fail("invalid_field", e.to_string()));
                continue;
            }
            if let Err(e) = sighting.check_time(now, self.inner.config.max_clock_skew_secs) {
                errors.push(fail("bad_time", e.to_string()));
                continue;
            }
            let facts = Facts::of(&sighting, sighting.links.as_deref());
            let first = !last_here.contains_key(&sighting.number);
            let repeat = self.repeat_in_batch(&sighting, &facts, &last_here);
            last_here.insert(sighting.number, (index, facts));
            if let Some(planned) = repeat {
                prepared.push(planned);
                continue;
            }
            if sighting.verdict == Verdict::Withdrawn {
                // A withdrawal is a signed record every peer sees: only for
                // a report this organization has and has not withdrawn.
                let live = reported_here.contains(&sighting.number)
                    || self.inner.store.has_live_report(
                        &sighting.origin,
                        &sighting.number,
                        &sighting.block,
                    )?;
                if !live {
                    errors.push(fail(
                        NOTHING_TO_WITHDRAW,
                        format!(
                            "this organization has no current report of {} to withdraw",
                            parsed.e164
                        ),
                    ));
                    continue;
                }
                reported_here.remove(&sighting.number);
            } else {
                reported_here.insert(sighting.number);
            }
            prepared.push(Planned::Mint(
                sighting,
                parsed.e164.as_str().to_owned(),
                first,
            ));
        }
        if errors.is_empty() {
            Ok(prepared)
        } else {
            Err(SubmitError::Invalid(errors))
        }
    }

    /// An item as an unsigned record (seq 1 until signing) with its
    /// parsed number, or the item error code and reason.
    fn draft(
        &self,
        item: &Submission,
        now: u64,
    ) -> Result<(Sighting, sightline_protocol::ParsedNumber), (&'static str, String)> {
        let key = &self.inner.config.network.hash_key;
        let parsed = parse_number_with(&item.number, item.region.as_deref(), letters(item.vanity))
            .map_err(|e| (e.code(), e.to_string()))?;
        let (first_seen, last_seen) = self.seen_times(item, now)?;
        let links = self.links_of(item, &parsed.e164)?;
        let sighting = Sighting {
            network: self.inner.config.network.id.clone(),
            origin: self.inner.signing.origin(),
            seq: 1,
            number: key.number_hash(&parsed.e164),
            block: key.block_hash(&parsed.e164),
            cc: parsed.country_code,
            line: parsed.line,
            kind: item.kind,
            verdict: item.verdict,
            channel: item.channel,
            brand: item.brand.clone().filter(|b| !b.trim().is_empty()),
            confidence: item.confidence,
            count: item.count,
            first_seen,
            last_seen,
            expires: item.expires,
            links,
            role: item.role,
        };
        Ok((sighting, parsed))
    }

    /// When this organization first saw the number, for a report that
    /// does not say: the first sighting of its current, unexpired malicious
    /// report when this one is malicious too, so that re-reporting a number
    /// does not reset its clock (reputation.rs); else the report's own.
    fn first_sighting(&self, s: &Sighting, now: u64) -> Result<u64, StoreError> {
        if s.verdict != Verdict::Malicious {
            return Ok(s.first_seen);
        }
        let earlier = self
            .inner
            .store
            .current_report(&s.origin, &s.number, &s.block)?;
        Ok(match earlier {
            Some((_, e))
                if e.verdict == Verdict::Malicious && e.expires.is_none_or(|t| t > now) =>
            {
                e.first_seen.min(s.first_seen)
            }
            _ => s.first_seen,
        })
    }

    /// The record's links: `None` (version 1) while the network signs
    /// version 1, which refuses an item with links rather than drop them;
    /// under version 2, the number's 1,000-block and the item's tokens.
    fn links_of(
        &self,
        item: &Submission,
        e164: &sightline_protocol::E164,
    ) -> Result<Option<Vec<sightline_protocol::Link>>, (&'static str, String)> {
        let input = item.link_input();
        if self.inner.config.network.record_version < sightline_protocol::sighting::VERSION_2 {
            if input.is_empty() && item.verdict != Verdict::Protected && item.role.is_none() {
                return Ok(None);
            }
            if input.is_empty() {
                return Err((
                    LINKS_NEED_VERSION_2,
                    "protecting a number needs record version 2: this network signs version 1 until its network.toml says record_version = 2 (SPEC.md §13.4)".to_owned(),
                ));
            }
            return Err((
                LINKS_NEED_VERSION_2,
                "links (url, sender, campaign, message) need record version 2: this network signs version 1 until its network.toml says record_version = 2 (SPEC.md §13.4)".to_owned(),
            ));
        }
        input
            .tokens(&self.inner.config.network.hash_key, e164)
            .map(Some)
            .map_err(|e| ("invalid_link", e.to_string()))
    }

    /// An item's (`first_seen`, `last_seen`), or the item error code and
    /// reason for times in the future or past retention.
    fn seen_times(
        &self,
        item: &Submission,
        now: u64,
    ) -> Result<(u64, u64), (&'static str, String)> {
        let skew = self.inner.config.max_clock_skew_secs;
        if item
            .last_seen
            .or(item.first_seen)
            .is_some_and(|t| t > now.saturating_add(skew))
        {
            return Err((
                "bad_time",
                format!("timestamps may not be later than now ({now}) plus {skew} s"),
            ));
        }
        // Within the allowed skew a client clock ahead of ours is clamped
        // to now, so peers never see a record from their future.
        let first_seen = item
            .first_seen
            .map_or_else(|| item.last_seen.unwrap_or(now).min(now), |t| t.min(now));
        let last_seen = item.last_seen.map_or(now, |t| t.min(now)).max(first_seen);
        if last_seen.saturating_add(self.inner.config.retention_secs) <= now {
            return Err((
                "past_retention",
                format!("last_seen {last_seen} is older than the retention period"),
            ));
        }
        Ok((first_seen, last_seen))
    }

    /// Whether an item repeats the batch's last item for its number (the
    /// same facts): its receipt will be that item's. Whether it repeats a
    /// stored report is looked up once, under the submit lock
    /// ([`NodeHandle::look_again`]). Withdrawals are never repeats (a second
    /// one is refused: nothing to withdraw).
    fn repeat_in_batch(
        &self,
        sighting: &Sighting,
        facts: &Facts,
        last_here: &std::collections::HashMap<sightline_protocol::NumberHash, (usize, Facts)>,
    ) -> Option<Planned> {
        if self.inner.config.resubmit_window_secs == 0 || sighting.verdict == Verdict::Withdrawn {
            return None;
        }
        let (earlier, said) = last_here.get(&sighting.number)?;
        (said == facts).then_some(Planned::Repeat(*earlier))
    }

    /// The receipt of this organization's current report of the number if
    /// `sighting` repeats it: the same facts, and either within the
    /// resubmission window of its `last_seen` or the same times exactly (a
    /// retried import of an older sighting). A report past its `expires`
    /// is not repeated: the new one renews it.
    fn stored_repeat(
        &self,
        sighting: &Sighting,
        e164: &str,
        now: u64,
    ) -> Result<Option<Receipt>, StoreError> {
        let window = self.inner.config.resubmit_window_secs;
        if window == 0 || sighting.verdict == Verdict::Withdrawn {
            return Ok(None);
        }
        let current =
            self.inner
                .store
                .current_report(&sighting.origin, &sighting.number, &sighting.block)?;
        Ok(current.and_then(|(id, report)| {
            let live = report.expires.is_none_or(|e| e > now);
            let recent = now < report.last_seen.saturating_add(window);
            let same_times =
                (report.first_seen, report.last_seen) == (sighting.first_seen, sighting.last_seen);
            (live
                && Facts::of(&report, report.links.as_deref())
                    == Facts::of(sighting, sighting.links.as_deref())
                && (recent || same_times))
                .then(|| Receipt {
                    id: id.to_hex(),
                    seq: report.seq,
                    number: e164.to_owned(),
                    existing: true,
                })
        }))
    }

    /// [`NodeHandle::prepare`]'s plan, with each item that is the first of
    /// its number checked against the store (under the submit lock, so a
    /// retry of a request still in flight finds the report it signed).
    fn look_again(&self, planned: Vec<Planned>, now: u64) -> Result<Vec<Planned>, StoreError> {
        planned
            .into_iter()
            .map(|item| match item {
                Planned::Mint(sighting, e164, true) => {
                    Ok(match self.stored_repeat(&sighting, &e164, now)? {
                        Some(receipt) => Planned::Existing(receipt),
                        None => Planned::Mint(sighting, e164, true),
                    })
                }
                other => Ok(other),
            })
            .collect()
    }

    /// Withdraws this organization's report of a number (a new seq with
    /// verdict `withdrawn`, which counts zero everywhere).
    ///
    /// # Errors
    /// [`SubmitError`].
    pub async fn withdraw(
        &self,
        number: &str,
        region: Option<&str>,
    ) -> Result<Receipt, SubmitError> {
        self.withdraw_with(number, region, Letters::Refuse).await
    }

    /// [`NodeHandle::withdraw`], reading letters as `letters` says.
    ///
    /// # Errors
    /// As [`NodeHandle::submit`].
    pub async fn withdraw_with(
        &self,
        number: &str,
        region: Option<&str>,
        letters: Letters,
    ) -> Result<Receipt, SubmitError> {
        let mut item = Submission::new(number, Kind::Other);
        item.region = region.map(str::to_owned);
        item.verdict = Verdict::Withdrawn;
        item.confidence = 0;
        item.vanity = letters == Letters::Vanity;
        if let Ok(parsed) = parse_number_with(number, region, letters) {
            let key = &self.inner.config.network.hash_key;
            let (hash, block) = (key.number_hash(&parsed.e164), key.block_hash(&parsed.e164));
            let store = self.inner.store.clone();
            let own = self.inner.signing.origin();
            let network = self.inner.config.network.id.clone();
            let reports =
                blocking(move || store.reports(&network, &hash, &block, u64::MAX, |_| false))
                    .await?;
            if let Some(mine) = reports.current.iter().find(|s| s.origin == own) {
                item.kind = mine.kind;
                item.channel = mine.channel;
            }
        }
        let mut receipts = self.submit(vec![item]).await?;
        Ok(receipts.remove(0))
    }
}
