//! Webhooks in: a delivery is verified over the raw bytes against the channel's secret (or,
//! for providers with one URL for every channel, against each channel's), parsed into events,
//! and kept in the webhook journal (see `crate::store::JournalStore`) before it is acknowledged:
//! once the provider has its 200, the delivery is durable. The journal's recorder then records
//! what deliveries carried (messages, statuses, edits, connection changes) exactly once, in
//! journal order and in large batches, and removes each entry once that is committed. An entry
//! that cannot be recorded (the database is down) is kept and tried again later, never dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::HeaderMap;
use serde::Serialize;

use super::{ChannelError, Channels};
use crate::domain::{
    Channel, ChannelId, ChannelState, DeliveryStatus, EscalationReason, ProviderKind,
};
use crate::providers::{Credentials, Event, Inbound, WebhookScope};
use crate::store::{
    InboundPolicy, JournalEntry, NewEscalation, NewInbound, NewJournalEntry, RecordedInbound,
};

/// How long the channels and credentials read for verifying webhooks are used before being
/// read again: at a thousand webhooks a second, one read a second instead of one each.
const SIGNERS_TTL: Duration = Duration::from_secs(1);

/// A provider's channels with their opened credentials.
type SignerList = Arc<Vec<(Channel, Credentials)>>;

/// The channels of each provider with their opened credentials, as last read, and when that
/// read began.
#[derive(Default)]
pub(super) struct Signers {
    by_kind: Mutex<HashMap<ProviderKind, (Instant, SignerList)>>,
    /// Held while the list is read: webhooks that need a read at the same moment share one,
    /// so a flood of forged signatures costs one read at a time, not one each.
    reading: tokio::sync::Mutex<()>,
}

impl Signers {
    /// The list of `kind` when its read began at or after `since` (any list when `None`).
    fn read_since(&self, kind: ProviderKind, since: Option<Instant>) -> Option<SignerList> {
        let by_kind = self.by_kind.lock().unwrap_or_else(|e| e.into_inner());
        by_kind
            .get(&kind)
            .filter(|(began, _)| since.is_none_or(|since| *began >= since))
            .map(|(_, signers)| signers.clone())
    }

    fn put(&self, kind: ProviderKind, began: Instant, signers: SignerList) {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(|e| e.into_inner());
        by_kind.insert(kind, (began, signers));
    }

    /// Drops what was read: a channel of this process changed.
    pub(super) fn forget(&self) {
        self.by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The list of `kind` from a read that began at or after `since` (any read when `None`):
    /// the last one when it did, else one made now with `read`. Callers that need a read at
    /// the same moment share it, so a flood of webhooks that match no channel (forged
    /// signatures) costs one read at a time, not one each.
    async fn get_or_read<F, Fut>(
        &self,
        kind: ProviderKind,
        since: Option<Instant>,
        read: F,
    ) -> Result<SignerList, ChannelError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(Channel, Credentials)>, ChannelError>>,
    {
        if let Some(signers) = self.read_since(kind, since) {
            return Ok(signers);
        }
        let _reading = self.reading.lock().await;
        // Whoever held the lock may have just read what this call needs.
        if let Some(signers) = self.read_since(kind, since) {
            return Ok(signers);
        }
        let began = Instant::now();
        let signers = Arc::new(read().await?);
        self.put(kind, began, signers.clone());
        Ok(signers)
    }
}

/// Journal entries one pass of the recorder takes.
const RECORD_BATCH: usize = 512;

/// Deliveries one pass records at once: their messages share the store's group commits.
const RECORD_CONCURRENCY: usize = 128;

/// How long a pass holds its entries before another recorder (another replica) may take them.
const RECORD_LEASE: Duration = Duration::from_secs(60);

/// How often an idle recorder looks for entries it was not woken for: another replica's, an
/// expired lease, a retry come due.
const RECORD_POLL: Duration = Duration::from_millis(250);

/// Webhooks waiting for their journal append at once that mean intake is at capacity: the
/// recorder then rests after each pass as long as the pass took, so it never takes more than
/// about half the time the acknowledgements need (at a thousand webhooks a second, a handful
/// are under way at once and the recorder never rests).
const INTAKE_BUSY: usize = 8;

/// The longest rest of the recorder after one pass.
const REST_MAX: Duration = Duration::from_millis(200);

/// The longest wait before an entry that failed is tried again.
const RETRY_MAX: Duration = Duration::from_secs(600);

/// The answer to a webhook delivery: verified, understood and durable.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accepted {
    /// Events the delivery carried.
    pub events: usize,
    /// Whether it was kept to be recorded (false when every event is one Palaver ignores).
    pub journaled: bool,
}

/// What recording journaled deliveries did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Receipt {
    /// Customer messages stored.
    pub recorded: usize,
    /// Customer messages already stored before (provider retries).
    pub duplicates: usize,
    /// Delivery statuses applied.
    pub statuses: usize,
    /// Edits and deletions applied to stored messages.
    pub changes: usize,
    /// Events understood and not acted on.
    pub ignored: usize,
    /// Events for numbers no channel serves.
    pub unrouted: usize,
}

/// Counts a webhook as being journaled while it lives.
struct Journaling<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Journaling<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Journaling(count)
    }
}

impl Drop for Journaling<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Receipt {
    fn add(&mut self, other: &Receipt) {
        self.recorded += other.recorded;
        self.duplicates += other.duplicates;
        self.statuses += other.statuses;
        self.changes += other.changes;
        self.ignored += other.ignored;
        self.unrouted += other.unrouted;
    }
}

impl Channels {
    /// A webhook subscription handshake: the answer to echo when some channel of the provider
    /// has the token the query carries.
    pub async fn answer_subscription(
        &self,
        kind: ProviderKind,
        query: &HashMap<String, String>,
    ) -> Result<String, ChannelError> {
        let provider = self.provider(kind)?;
        let subscription = provider.subscription().ok_or_else(|| {
            ChannelError::NotFound(format!("{} makes no webhook handshake", kind.as_str()))
        })?;
        for channel in self.store.list_channels(None, Some(kind)).await? {
            let Ok(credentials) = self.credentials(&channel).await else {
                continue;
            };
            if let Some(answer) = subscription.answer(query, &credentials) {
                // The provider reached this server with the channel's token: the console shows
                // the channel as verified at once.
                if channel.state == ChannelState::Created {
                    self.store
                        .set_channel_state(
                            channel.id,
                            ChannelState::Connected,
                            Some("webhook verified"),
                            None,
                        )
                        .await?;
                }
                return Ok(answer);
            }
        }
        Err(ChannelError::Unauthorized("verification failed".into()))
    }

    /// Verifies, parses and journals one webhook delivery, answering once it is durable.
    /// `channel` is given when the URL names the channel; providers with one URL for every
    /// channel are checked against each of their channels' secrets, and the events are routed
    /// by the number each names when they are recorded.
    pub async fn receive(
        &self,
        kind: ProviderKind,
        channel: Option<ChannelId>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Accepted, ChannelError> {
        let provider = self.provider(kind)?;
        let scope = provider
            .webhooks()
            .ok_or_else(|| ChannelError::NotFound("no webhook for this provider".into()))?;
        if !matches!(
            (scope, channel),
            (WebhookScope::Channel, Some(_)) | (WebhookScope::Provider, None)
        ) {
            return Err(ChannelError::NotFound("no such webhook".into()));
        }
        // The channels whose secret signed this delivery: from the last second's list of the
        // provider's channels and their credentials, read again when none matches (a channel
        // created or a secret changed on another replica is not refused for it).
        let mut verified = Vec::new();
        let mut since = Instant::now().checked_sub(SIGNERS_TTL);
        for _ in 0..2 {
            let signers = self.signers(kind, since).await?;
            verified = signers
                .iter()
                .filter(|(c, _)| match (scope, channel) {
                    (WebhookScope::Channel, Some(id)) => c.id == id,
                    _ => true,
                })
                .filter(|(_, credentials)| provider.verify(credentials, headers, body).is_ok())
                .map(|(c, _)| c.clone())
                .collect();
            if !verified.is_empty() {
                break;
            }
            // None matched: a list read after this moment holds every channel committed before.
            since = Some(Instant::now());
        }
        if verified.is_empty() {
            metrics::counter!("palaver_webhooks_total", "provider" => kind.as_str(), "result" => "unauthorized").increment(1);
            // An unknown channel is refused like a bad signature: nothing tells a caller which
            // channel ids exist.
            return Err(ChannelError::Unauthorized(
                "missing or invalid webhook signature".into(),
            ));
        }
        let events = provider
            .parse(body)
            .map_err(|e| ChannelError::BadRequest(e.to_string()))?;
        let mut accepted = Accepted {
            events: events.len(),
            journaled: false,
        };
        if events.iter().any(|e| !matches!(e, Event::Ignored { .. })) {
            let _journaling = Journaling::enter(&self.journaling);
            self.store
                .journal(NewJournalEntry {
                    provider: kind,
                    channels: verified.iter().map(|c| c.id).collect(),
                    body: body.to_vec(),
                })
                .await?;
            self.journaled.notify_one();
            accepted.journaled = true;
        } else {
            for event in events {
                if let Event::Ignored { reason, .. } = event {
                    tracing::debug!(%reason, "webhook event ignored");
                }
            }
        }
        metrics::counter!("palaver_webhooks_total", "provider" => kind.as_str(), "result" => "accepted").increment(1);
        Ok(accepted)
    }

    /// Records journaled deliveries until `stopped` turns true: at once when one is journaled
    /// here, and every [`RECORD_POLL`] for those journaled elsewhere or come due for a retry.
    /// A pass under way when `stopped` turns is finished; what is left stays in the journal.
    pub async fn record_journal(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let began = Instant::now();
            match self.record_journaled().await {
                Ok(0) => {
                    tokio::select! {
                        _ = self.journaled.notified() => {}
                        _ = tokio::time::sleep(RECORD_POLL) => {}
                        _ = stopped.changed() => {}
                    }
                }
                Ok(_) => {
                    // Acknowledging webhooks comes first: when many wait for the journal, the
                    // CPU and the database go to them for as long as this pass took.
                    if self.journaling.load(std::sync::atomic::Ordering::Relaxed) >= INTAKE_BUSY {
                        metrics::counter!("palaver_journal_recorder_rests_total").increment(1);
                        tokio::select! {
                            _ = tokio::time::sleep(began.elapsed().min(REST_MAX)) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the webhook journal; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
        }
    }

    /// One pass of the recorder: takes up to [`RECORD_BATCH`] journaled deliveries, oldest
    /// first, records what they carry, and removes those recorded. One that fails stays, to be
    /// tried again after a wait that grows with its failures. Returns how many were taken.
    pub async fn record_journaled(&self) -> Result<usize, ChannelError> {
        let entries = self.store.take_journal(RECORD_BATCH, RECORD_LEASE).await?;
        let taken = entries.len();
        if taken == 0 {
            return Ok(0);
        }
        let outcomes: Vec<_> = futures::stream::iter(entries)
            .map(|entry| async move {
                let outcome = self.record_entry(&entry).await;
                (entry, outcome)
            })
            .buffered(RECORD_CONCURRENCY)
            .collect()
            .await;
        let mut done = Vec::with_capacity(taken);
        let mut total = Receipt::default();
        for (entry, outcome) in outcomes {
            match outcome {
                Ok(receipt) => {
                    total.add(&receipt);
                    done.push(entry.seq);
                }
                Err(e) => {
                    let wait = Duration::from_secs(1 << entry.attempts.min(10)).min(RETRY_MAX);
                    tracing::error!(entry = entry.seq, attempts = entry.attempts + 1, error = %e,
                        retry_in_secs = wait.as_secs(), "cannot record a journaled webhook; kept to try again");
                    let at = chrono::Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                    self.store
                        .retry_journal(entry.seq, &e.to_string(), at)
                        .await?;
                }
            }
        }
        self.store.finish_journal(&done).await?;
        metrics::counter!("palaver_journal_recorded_total").increment(done.len() as u64);
        tracing::debug!(
            entries = done.len(),
            recorded = total.recorded,
            duplicates = total.duplicates,
            statuses = total.statuses,
            changes = total.changes,
            "journaled webhooks recorded"
        );
        Ok(taken)
    }

    /// Waits until every delivery journaled so far is recorded or failed (and waits for a
    /// retry), recording them here too: with no recorder running, this is the recorder.
    pub async fn settle(&self) -> Result<(), ChannelError> {
        loop {
            if self.record_journaled().await? == 0 {
                // Another recorder may hold the rest.
                let backlog = self.store.journal_backlog().await?;
                if backlog.settled() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Records what one journaled delivery carries.
    async fn record_entry(&self, entry: &JournalEntry) -> Result<Receipt, ChannelError> {
        let kind = entry.provider;
        let provider = self.provider(kind)?;
        let events = provider
            .parse(&entry.body)
            .map_err(|e| ChannelError::BadRequest(e.to_string()))?;
        // The channels that verified it, as they are now; one deleted since is not served.
        let signers = self
            .signers(kind, Instant::now().checked_sub(SIGNERS_TTL))
            .await?;
        let mut verified = Vec::with_capacity(entry.channels.len());
        for id in &entry.channels {
            match signers.iter().find(|(c, _)| c.id == *id) {
                Some((c, _)) => verified.push(c.clone()),
                None => verified.extend(self.store.channel(*id).await?),
            }
        }
        let mut receipt = Receipt::default();
        for event in events {
            self.apply(kind, &verified, event, &mut receipt).await?;
        }
        Ok(receipt)
    }

    /// The channels of `kind` with their credentials, from a read that began at or after
    /// `since` (see [`Signers::get_or_read`]).
    async fn signers(
        &self,
        kind: ProviderKind,
        since: Option<Instant>,
    ) -> Result<SignerList, ChannelError> {
        self.signers
            .get_or_read(kind, since, || async {
                let mut signers = Vec::new();
                for c in self.store.list_channels(None, Some(kind)).await? {
                    match self.credentials(&c).await {
                        Ok(credentials) => signers.push((c, credentials)),
                        Err(e) => {
                            tracing::error!(channel = %c.id, error = %e, "cannot read channel credentials")
                        }
                    }
                }
                Ok(signers)
            })
            .await
    }

    fn route<'a>(verified: &'a [Channel], route: &str) -> Option<&'a Channel> {
        verified.iter().find(|c| c.route_key == route)
    }

    fn policy(&self) -> InboundPolicy {
        let debounce = Duration::from_millis(self.settings.pipeline.debounce_ms);
        InboundPolicy {
            debounce,
            max_delay: debounce * 3,
            idle_reset: Duration::from_secs(self.settings.pipeline.idle_reset_hours * 3600),
            limits: self.settings.workers.limits(),
            schedule: true,
        }
    }

    async fn apply(
        &self,
        kind: ProviderKind,
        verified: &[Channel],
        event: Event,
        receipt: &mut Receipt,
    ) -> Result<(), ChannelError> {
        match event {
            Event::Message { route, message } => {
                let Some(channel) = Self::route(verified, &route) else {
                    tracing::warn!(provider = kind.as_str(), %route, "message for a number no channel serves; acknowledged");
                    receipt.unrouted += 1;
                    return Ok(());
                };
                match self
                    .store
                    .record_inbound(channel, new_inbound(message), self.policy())
                    .await?
                {
                    RecordedInbound::New { message, .. } => {
                        tracing::info!(channel = %channel.id, message = %message.id, kind = message.kind.as_str(), "message received");
                        receipt.recorded += 1;
                    }
                    RecordedInbound::Duplicate => receipt.duplicates += 1,
                }
            }
            Event::OwnMessage { route, message } => {
                let Some(channel) = Self::route(verified, &route) else {
                    receipt.unrouted += 1;
                    return Ok(());
                };
                // Typed on the business's phone: a person took over this conversation.
                if let Some(conversation) = self
                    .store
                    .record_own_message(channel, new_inbound(message))
                    .await?
                {
                    self.store
                        .open_escalation(
                            conversation.id,
                            NewEscalation {
                                reason: EscalationReason::HumanTakeover,
                                detail: Some("message sent from the business phone".into()),
                                message_id: None,
                            },
                        )
                        .await?;
                    tracing::info!(conversation = %conversation.id, "human took over from the phone");
                } else {
                    receipt.ignored += 1;
                }
            }
            Event::Changed {
                route,
                original_id,
                change,
                timestamp,
            } => {
                let Some(channel) = Self::route(verified, &route) else {
                    receipt.unrouted += 1;
                    return Ok(());
                };
                match self
                    .store
                    .apply_change(channel.id, &original_id, &change, timestamp)
                    .await?
                {
                    Some(message) => {
                        tracing::info!(channel = %channel.id, message = %message.id, "message changed by its sender");
                        receipt.changes += 1;
                    }
                    None => {
                        tracing::info!(channel = %channel.id, "change to no stored message of the customer's; ignored");
                        receipt.ignored += 1;
                    }
                }
            }
            Event::Status { route, update } => {
                let Some(channel) = Self::route(verified, &route) else {
                    receipt.unrouted += 1;
                    return Ok(());
                };
                let reference = update.reference.as_deref().and_then(|r| r.parse().ok());
                self.store
                    .apply_status(
                        channel.id,
                        &update.provider_message_id,
                        update.status,
                        update.error.as_ref(),
                        update.timestamp,
                        reference,
                    )
                    .await?;
                if update.status == DeliveryStatus::Failed {
                    tracing::warn!(channel = %channel.id, error = ?update.error, "provider reports a message failed");
                }
                receipt.statuses += 1;
            }
            Event::Connection {
                route,
                state,
                detail,
            } => {
                if let Some(channel) = Self::route(verified, &route) {
                    self.store
                        .set_channel_state(channel.id, state, detail.as_deref(), None)
                        .await?;
                    tracing::info!(channel = %channel.id, state = state.as_str(), "channel connection changed");
                }
                receipt.ignored += 1;
            }
            Event::QrCode {
                route,
                image,
                code,
                pairing_code,
            } => {
                if let Some(channel) = Self::route(verified, &route) {
                    let qr = crate::providers::PairingQr {
                        image,
                        code,
                        pairing_code,
                    };
                    self.store
                        .set_channel_state(
                            channel.id,
                            ChannelState::Connecting,
                            None,
                            Some(Self::qr_view(&qr)),
                        )
                        .await?;
                }
                receipt.ignored += 1;
            }
            Event::Call {
                route,
                from,
                status,
                ..
            } => {
                // The provider rejects calls itself with the channel's message (set at creation).
                tracing::info!(%route, caller = %from, %status, "incoming call");
                metrics::counter!("palaver_calls_total", "status" => status).increment(1);
                receipt.ignored += 1;
            }
            Event::Ignored { reason, .. } => {
                tracing::debug!(%reason, "webhook event ignored");
                receipt.ignored += 1;
            }
        }
        Ok(())
    }
}

fn new_inbound(m: Inbound) -> NewInbound {
    let m = without_nul(m);
    NewInbound {
        provider_message_id: m.provider_message_id,
        from: m.from,
        reply_to: m.reply_to,
        user_id: m.user_id,
        contact_name: m.contact_name,
        kind: m.kind,
        text: m.text,
        details: m.details,
        sent_at: m.timestamp,
    }
}

/// `message` with every NUL character removed from its strings: Postgres refuses NUL in text and
/// JSON columns, SQLite takes it, and a message that cannot be stored must not hold back the rest
/// of its webhook batch. Both backends store the same, cleaned, message.
fn without_nul(message: Inbound) -> Inbound {
    fn clean(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => {
                s.retain(|c| c != '\0');
                true
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, v| clean(v) | c),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, v| clean(v) | c),
            _ => false,
        }
    }
    let Ok(mut value) = serde_json::to_value(&message) else {
        return message;
    };
    if !clean(&mut value) {
        return message;
    }
    serde_json::from_value(value).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::{MediaRef, MessageDetails, MessageKind};

    /// Webhooks that match no channel at the same moment share one read of the channels, and
    /// a read is never older than the moment its caller asks from.
    #[tokio::test]
    async fn webhooks_that_need_the_channels_read_share_one_read() {
        let signers = Signers::default();
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Vec::new())
        };
        let kind = ProviderKind::Meta;
        signers.get_or_read(kind, None, read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Within the TTL, the last read serves.
        signers.get_or_read(kind, None, read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);

        // Fifty forged webhooks at once: one read began before they all failed, at most one
        // after, whatever their number.
        let failed = Instant::now();
        let flood = (0..50).map(|_| signers.get_or_read(kind, Some(failed), read));
        for result in futures::future::join_all(flood).await {
            result.unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        let (began, _) = signers.by_kind.lock().unwrap()[&kind].clone();
        assert!(
            began >= failed,
            "the shared read began after the webhooks failed"
        );

        // A webhook failing after that read needs a newer one.
        let later = Instant::now();
        signers.get_or_read(kind, Some(later), read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        // Another provider's list is its own.
        signers
            .get_or_read(ProviderKind::Kapso, Some(later), read)
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn nul_characters_are_removed_from_every_string() {
        let message = Inbound {
            provider_message_id: "wamid.\u{0}1".into(),
            from: "5215550001".into(),
            reply_to: None,
            user_id: None,
            contact_name: Some("Ana\0 María".into()),
            timestamp: chrono::Utc::now(),
            kind: MessageKind::Image,
            text: Some("hola\0\0 mundo".into()),
            details: MessageDetails {
                media: Some(MediaRef {
                    caption: Some("m\0".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        let clean = without_nul(message.clone());
        assert_eq!(clean.provider_message_id, "wamid.1");
        assert_eq!(clean.contact_name.as_deref(), Some("Ana María"));
        assert_eq!(clean.text.as_deref(), Some("hola mundo"));
        assert_eq!(clean.details.media.unwrap().caption.as_deref(), Some("m"));
        assert_eq!(clean.timestamp, message.timestamp);
        // Nothing to clean: the message comes back as it was.
        let plain = Inbound {
            text: Some("hola".into()),
            contact_name: None,
            provider_message_id: "x".into(),
            details: MessageDetails::default(),
            ..message
        };
        assert_eq!(without_nul(plain.clone()), plain);
    }
}
