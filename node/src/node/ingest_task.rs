//! The ingest task: records from gossip and catch-up, checked and stored in
//! batches, with the verdict reported back to gossipsub.

use super::{
    mpsc, network, watch, Arc, CancellationToken, Client, IngestPipeline, Ingestor,
    MessageAcceptance, MessageId, PeerId, Rejection, RetryPulls, Severity, INGEST_BATCH,
};

/// Where a received record came from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Gossip { message_id: MessageId, peer: PeerId },
    Sync { peer: PeerId },
}

#[derive(Debug)]
pub(super) struct IngestItem {
    pub(super) data: Vec<u8>,
    pub(super) source: Source,
}

pub(super) struct IngestTask {
    pub(super) ingestor: Ingestor,
    /// Shared with the core task's catch-up.
    pub(super) retry_pulls: RetryPulls,
    pub(super) changes: Arc<watch::Sender<u64>>,
    pub(super) client: Client,
}

pub(super) async fn ingest_task(
    task: IngestTask,
    mut queue: mpsc::Receiver<IngestItem>,
    shutdown: CancellationToken,
) {
    let mut pipeline = IngestPipeline::new(task.ingestor.clone());
    // Sources of the batch being stored, in order.
    let mut storing: Vec<Source> = Vec::new();
    loop {
        let first = tokio::select! {
            item = queue.recv() => match item { Some(i) => i, None => break },
            () = shutdown.cancelled() => break,
        };
        let mut batch = vec![first];
        while batch.len() < INGEST_BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (data, sources): (Vec<Vec<u8>>, Vec<Source>) =
            batch.into_iter().map(|i| (i.data, i.source)).unzip();
        // Under load the next batch is checked while this one is stored;
        // when the queue is empty, finish at once so gossip is not held.
        if let Some(results) = pipeline.push(data).await {
            if task
                .report(std::mem::take(&mut storing), results)
                .await
                .is_err()
            {
                return;
            }
        }
        storing = sources;
        if queue.is_empty() {
            if let Some(results) = pipeline.finish().await {
                if task
                    .report(std::mem::take(&mut storing), results)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    if let Some(results) = pipeline.finish().await {
        let _ = task.report(storing, results).await;
    }
}

impl IngestTask {
    /// Announces what was stored and answers gossipsub (Accept / Reject /
    /// Ignore) for each record; penalizes senders of invalid records.
    /// Fails when the network loop has stopped.
    async fn report(
        &self,
        sources: Vec<Source>,
        results: Vec<Result<(), Rejection>>,
    ) -> Result<(), network::Stopped> {
        let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
        if stored > 0 {
            self.changes.send_modify(|c| *c += stored);
        }
        for (source, result) in sources.into_iter().zip(results) {
            let invalid = matches!(
                result,
                Err(Rejection {
                    severity: Severity::Reject,
                    ..
                })
            );
            let sender = match &source {
                Source::Gossip { peer, .. } | Source::Sync { peer } => *peer,
            };
            if matches!(&result, Err(r) if r.is_transient()) {
                self.retry_pulls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(sender);
            }
            if invalid {
                self.client.invalid_from(sender).await?;
            }
            if let Source::Gossip { message_id, peer } = source {
                let acceptance = match result {
                    Ok(()) => MessageAcceptance::Accept,
                    Err(Rejection {
                        severity: Severity::Reject,
                        ..
                    }) => MessageAcceptance::Reject,
                    Err(Rejection {
                        severity: Severity::Ignore,
                        ..
                    }) => MessageAcceptance::Ignore,
                };
                self.client.validate(message_id, peer, acceptance).await?;
            }
        }
        Ok(())
    }
}
