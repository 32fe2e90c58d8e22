//! The gateway feed: every number at or above a band, as hashes (a
//! gateway holds the network key and hashes what it checks), first as a
//! full snapshot in pages, then as changes since a cursor. A change is a
//! number whose reports changed since the cursor (a new report, a
//! supersede, a withdrawal), with its standing now: listed or not.
//! Scores also fall with time and purges remove reports without a new
//! arrival, so a cursor older than [`FULL_REFRESH_SECS`] is answered with a
//! new full snapshot, which replaces the gateway's set.

use std::collections::BTreeSet;

use serde::Serialize;
use sightline_protocol::{BlockHash, Kind, NumberHash};

use super::campaigns::Explored;
use super::{blocking, Inner, NodeHandle, StoreError};
use crate::reputation::{self, Band};

/// How old a snapshot may get before a change request is answered with a
/// new one (a day: a number's band falls over days, half-lives are 14 to
/// 45 days).
pub const FULL_REFRESH_SECS: u64 = 86_400;

/// Numbers (snapshot) or arrivals (changes) one page reads at most.
pub const MAX_FEED_PAGE: usize = 50_000;

/// One number of the feed.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FeedEntry {
    /// Number hash, hex (SPEC.md §5: HMAC-SHA256 under the network key).
    pub number_hash: String,
    /// Its 100-block's hash, hex.
    pub block: String,
    /// Score now, 0–1.
    pub score: f64,
    /// Band now.
    pub band: Band,
    /// Kinds its reports name.
    pub kinds: BTreeSet<Kind>,
    /// The campaign it belongs to, if any.
    pub campaign: Option<String>,
    /// Whether a gateway should hold it: band at or above the feed's, and
    /// no trusted member operates it. `false` in changes: drop it.
    pub listed: bool,
}

/// Where a feed reader is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The feed's band.
    pub band: Band,
    /// Arrivals below this mark are reflected (`Store::arrival_mark`).
    pub mark: u64,
    /// When the snapshot the reader holds was started.
    pub snapshot_at: u64,
    /// While a snapshot is being read: the last number it gave (`None`
    /// before the first). `None` once it is read: changes follow.
    pub scan: Option<Option<(BlockHash, NumberHash)>>,
}

impl Cursor {
    /// The cursor's text: `v1.BAND.MARK.AT.d` (changes), or
    /// `v1.BAND.MARK.AT.f[BLOCKHEX NUMBERHEX]` (inside a snapshot).
    pub fn encode(&self) -> String {
        let phase = match &self.scan {
            None => "d".to_owned(),
            Some(None) => "f".to_owned(),
            Some(Some((b, n))) => format!("f{}{}", b.to_hex(), n.to_hex()),
        };
        format!(
            "v1.{}.{}.{}.{phase}",
            self.band.as_str(),
            self.mark,
            self.snapshot_at
        )
    }

    /// Parses [`Cursor::encode`]'s text.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let band = match parts.next()? {
            "none" => Band::None,
            "low" => Band::Low,
            "medium" => Band::Medium,
            "high" => Band::High,
            _ => return None,
        };
        let mark = parts.next()?.parse().ok()?;
        let snapshot_at = parts.next()?.parse().ok()?;
        let phase = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let scan = if phase == "d" {
            None
        } else {
            let hex = phase.strip_prefix('f')?;
            if !hex.is_ascii() {
                return None;
            }
            if hex.is_empty() {
                Some(None)
            } else {
                if hex.len() != 128 {
                    return None;
                }
                Some(Some((
                    BlockHash::from_hex(&hex[..64])?,
                    NumberHash::from_hex(&hex[64..])?,
                )))
            }
        };
        Some(Cursor {
            band,
            mark,
            snapshot_at,
            scan,
        })
    }
}

/// A feed answer.
#[derive(Debug, Clone)]
pub enum FeedPage {
    /// Nothing changed since the cursor.
    Unchanged,
    /// Entries, and the cursor to ask with next.
    Entries {
        /// Part of a full snapshot: replace the held set with it (from its
        /// first page on).
        full: bool,
        /// Whether this page starts a new snapshot.
        first: bool,
        /// The entries.
        entries: Vec<FeedEntry>,
        /// Where to ask next.
        cursor: Cursor,
        /// Whether more is ready now (ask again at once).
        more: bool,
    },
}

/// Why a feed request was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor is not one this node gave, or belongs to another band.
    #[error("{0}")]
    Cursor(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Inner {
    /// A number's feed entry now (`explored`: the campaigns this page has
    /// explored already).
    fn feed_entry(
        &self,
        (block, number): (BlockHash, NumberHash),
        band: Band,
        now: u64,
        explored: &mut Explored,
    ) -> Result<FeedEntry, StoreError> {
        let (reports, found) = self.reports_at(&number, &block, now)?;
        let score = reputation::score(&reports, now, &self.config.half_lives);
        let listed = score.band >= band && score.band > Band::None && score.protected_by.is_empty();
        let campaign = if listed {
            // Listed: a trusted organization reports it malicious.
            self.campaign_of(&number, &block, (true, found.neighboured), now, explored)?
                .map(|c| c.id)
        } else {
            None
        };
        Ok(FeedEntry {
            number_hash: number.to_hex(),
            block: block.to_hex(),
            score: score.score,
            band: score.band,
            kinds: score.kinds,
            campaign,
            listed,
        })
    }

    /// One page of the feed.
    fn feed(
        &self,
        band: Band,
        since: Option<Cursor>,
        limit: usize,
        now: u64,
    ) -> Result<FeedPage, FeedError> {
        let limit = limit.clamp(1, MAX_FEED_PAGE);
        if since.as_ref().is_some_and(|c| c.band != band) {
            return Err(FeedError::Cursor(
                "the cursor belongs to a feed of another min_band",
            ));
        }
        let stale = |c: &Cursor| now >= c.snapshot_at.saturating_add(FULL_REFRESH_SECS);
        let (cursor, first) = match since {
            Some(c) if c.scan.is_some() || !stale(&c) => (c, false),
            // No cursor, or one whose snapshot is too old: a new snapshot.
            _ => (
                Cursor {
                    band,
                    mark: self.store.arrival_mark()?,
                    snapshot_at: now,
                    scan: Some(None),
                },
                true,
            ),
        };
        let mut explored = Explored::default();
        if let Some(position) = cursor.scan {
            let (numbers, done) = self.store.numbers_after(position, limit)?;
            let mut entries = Vec::new();
            for n in &numbers {
                let entry = self.feed_entry(*n, band, now, &mut explored)?;
                if entry.listed {
                    entries.push(entry);
                }
            }
            let next = Cursor {
                scan: (!done).then(|| numbers.last().copied()),
                ..cursor
            };
            return Ok(FeedPage::Entries {
                full: true,
                first,
                entries,
                cursor: next,
                more: !done,
            });
        }
        let (numbers, last, more) = self.store.arrived_since(cursor.mark, limit)?;
        if numbers.is_empty() && last == cursor.mark {
            return Ok(FeedPage::Unchanged);
        }
        let entries = numbers
            .into_iter()
            .map(|n| self.feed_entry(n, band, now, &mut explored))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FeedPage::Entries {
            full: false,
            first: false,
            entries,
            cursor: Cursor {
                mark: last,
                ..cursor
            },
            more,
        })
    }
}

impl NodeHandle {
    /// The arrival mark of now: a change stream started here reports what
    /// is stored from now on.
    ///
    /// # Errors
    /// Store errors.
    pub async fn feed_mark(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.store.arrival_mark()).await
    }

    /// The entries of numbers a reader was given before, as they stand now
    /// (decay and purges change a band without a new report). Entries
    /// whose hashes are not hex are skipped.
    ///
    /// # Errors
    /// Store errors.
    pub async fn feed_again(
        &self,
        entries: Vec<FeedEntry>,
        band: Band,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let inner = self.inner.clone();
        let now = inner.clock.now();
        blocking(move || {
            let mut explored = Explored::default();
            entries
                .iter()
                .filter_map(|e| {
                    Some((
                        BlockHash::from_hex(&e.block)?,
                        NumberHash::from_hex(&e.number_hash)?,
                    ))
                })
                .map(|pair| inner.feed_entry(pair, band, now, &mut explored))
                .collect()
        })
        .await
    }

    /// One page of the feed of numbers at `band` or above (see the module
    /// documentation): a snapshot without `since`, else what changed.
    ///
    /// # Errors
    /// [`FeedError`].
    pub async fn feed(
        &self,
        band: Band,
        since: Option<Cursor>,
        limit: usize,
    ) -> Result<FeedPage, FeedError> {
        let inner = self.inner.clone();
        let now = inner.clock.now();
        blocking(move || inner.feed(band, since, limit, now)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_refuse_what_no_node_wrote() {
        let b = BlockHash::from_bytes([0xab; 32]);
        let n = NumberHash::from_bytes([0x01; 32]);
        for scan in [None, Some(None), Some(Some((b, n)))] {
            let c = Cursor {
                band: Band::High,
                mark: 42,
                snapshot_at: 1_796_601_600,
                scan,
            };
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        let multibyte = format!("v1.high.1.2.faa{}", "€".repeat(42));
        assert_eq!(Cursor::decode(&multibyte), None);
        for bad in [
            "",
            "v2.high.1.2.d",
            "v1.extreme.1.2.d",
            "v1.high.x.2.d",
            "v1.high.1.2.q",
            "v1.high.1.2.fzz",
            "v1.high.1.2.d.9",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
