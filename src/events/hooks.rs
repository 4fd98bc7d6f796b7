//! Outgoing webhooks: other systems (a CRM's case page, an automation) subscribe a URL to a
//! workspace's events. The event log is the source: a dispatcher, woken by the live hub, turns
//! the events past each subscription's cursor into deliveries (see [`crate::store::HookStore`]),
//! and `hook` jobs POST them, in order per conversation, retried with the job runner's backoff.
//!
//! Each request is signed like the webhooks Palaver itself verifies: `X-Palaver-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the subscription's secret>`, with
//! `X-Palaver-Event` (the type), `X-Palaver-Event-Id` (its number in the workspace's log) and
//! `X-Palaver-Delivery` (the same on every attempt of one delivery, so a receiver can drop a
//! repeat). A subscription that fails `events.hook_pause_after` attempts in a row is paused
//! and shown as such; resuming it sends what waited. Targets pass the same URL guard as every
//! other configurable URL (no loopback, private or link-local address unless the instance
//! allows it) and redirects are not followed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::watch;

use super::{EventHub, LiveEvent};
use crate::config::Settings;
use crate::crypto::Sealer;
use crate::domain::{
    EventKind, Hook, HookDeliveryId, HookDeliveryStatus, HookId, HookStatus, WorkspaceId,
};
use crate::net::{GuardedClient, UrlError, UrlGuard};
use crate::store::{
    HookAttempt, HookChanges, JobLimits, NewHook, NewHookDelivery, Store, StoreError,
};

/// The signature header of every delivery.
pub const SIGNATURE_HEADER: &str = "x-palaver-signature";
/// Events read from the log per dispatch query.
const PAGE: u32 = 500;
/// The pause between two dispatches.
const DISPATCH_PAUSE: Duration = Duration::from_millis(200);
/// The most of a receiver's `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// What went wrong with a subscription or a delivery.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A field of the request is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The workspace has as many subscriptions as it may.
    #[error("a workspace can have at most {0} webhook subscriptions")]
    Limit(usize),
    /// The stored secret cannot be opened (the instance key changed).
    #[error("the subscription's signing secret cannot be opened with this instance's key")]
    Sealed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a delivery job does next.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    /// Nothing more to do: delivered, paused with its subscription, or no longer wanted.
    Done,
    /// Try again (after the receiver's `Retry-After`, when it gave one).
    Retry {
        /// Why this attempt failed.
        why: String,
        /// The receiver's requested delay.
        after: Option<Duration>,
    },
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256("<timestamp>.<body>")>`: the signature of one delivery.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = signed_content(secret, timestamp, body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`, before finalising.
fn signed_content(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a signature header over `body` as a receiver should: a `v1` that matches (in constant
/// time) and a timestamp within `tolerance` of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: Duration) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return false;
    }
    signatures.iter().any(|signature| {
        signed_content(secret, timestamp, body)
            .verify_slice(signature)
            .is_ok()
    })
}

/// Reads a receiver's answer: delivered on 2xx; anything else is a failed attempt, retried
/// after its `Retry-After` (capped) when it sent one.
pub fn judge(status: u16, retry_after: Option<&str>) -> Result<(), (String, Option<Duration>)> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    Err((format!("the receiver answered HTTP {status}"), after))
}

/// Parses event type names; unknown ones are an error naming them.
pub fn parse_kinds(names: &[String]) -> Result<Vec<EventKind>, HookError> {
    let mut kinds = Vec::new();
    for name in names {
        let kind: EventKind = name.parse().map_err(|_| HookError::Invalid {
            field: "events",
            message: format!(
                "unknown event type `{name}` (known: {})",
                EventKind::ALL
                    .iter()
                    .filter(|k| !k.internal())
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        if kind.internal() {
            return Err(HookError::Invalid {
                field: "events",
                message: format!(
                    "`{name}` is internal to the workspace's people and never sent to webhooks"
                ),
            });
        }
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// A subscription's changes from the API: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct HookUpdate {
    /// A new URL.
    pub url: Option<String>,
    /// New event types (empty: every type).
    pub events: Option<Vec<EventKind>>,
    /// A new note.
    pub description: Option<String>,
    /// Pause (false) or resume (true).
    pub active: Option<bool>,
}

/// Outgoing webhooks of every workspace.
pub struct Hooks {
    store: Arc<dyn Store>,
    sealer: Sealer,
    client: GuardedClient,
    settings: Arc<Settings>,
}

impl Hooks {
    /// Outgoing webhooks over `store`, their secrets sealed with `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, settings: Arc<Settings>) -> Self {
        let guard = UrlGuard::new(settings.channels.allow_private_urls);
        let timeout = Duration::from_secs(settings.events.hook_timeout_secs);
        let client = GuardedClient::new(guard, timeout, timeout.min(Duration::from_secs(5)))
            .expect("an HTTP client with rustls builds");
        Self {
            store,
            sealer,
            client,
            settings,
        }
    }

    fn limits(&self) -> JobLimits {
        self.settings.workers.limits()
    }

    async fn check_url(&self, url: &str) -> Result<String, HookError> {
        let checked = self
            .client
            .guard()
            .check(url.trim())
            .await
            .map_err(|e: UrlError| HookError::Invalid {
                field: "url",
                message: e.to_string(),
            })?;
        Ok(checked.to_string())
    }

    /// Subscribes `url` to `events` (every type when empty) of workspace `ws`; returns the
    /// subscription and its signing secret, which is shown only here.
    pub async fn create(
        &self,
        ws: WorkspaceId,
        url: &str,
        events: Vec<EventKind>,
        description: &str,
    ) -> Result<(Hook, String), HookError> {
        let url = self.check_url(url).await?;
        let limit = self.settings.events.hooks_per_workspace;
        if self.store.list_hooks(ws).await?.len() >= limit {
            return Err(HookError::Limit(limit));
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("whsec_{}", hex::encode(bytes));
        let hook = self
            .store
            .create_hook(NewHook {
                workspace_id: ws,
                url,
                sealed_secret: self.sealer.seal(secret.as_bytes()),
                events,
                description: description.trim().to_string(),
            })
            .await?;
        tracing::info!(hook = %hook.id, workspace = %ws, "webhook subscription created");
        Ok((hook, secret))
    }

    /// Changes a subscription; resuming one sends the deliveries that waited while it was
    /// paused. `None` when the workspace has no such subscription.
    pub async fn update(
        &self,
        ws: WorkspaceId,
        id: HookId,
        update: HookUpdate,
    ) -> Result<Option<Hook>, HookError> {
        let url = match update.url {
            Some(url) => Some(self.check_url(&url).await?),
            None => None,
        };
        let changes = HookChanges {
            url,
            events: update.events,
            description: update.description.map(|d| d.trim().to_string()),
        };
        let Some(hook) = self.store.update_hook(ws, id, changes).await? else {
            return Ok(None);
        };
        Ok(match (update.active, hook.status) {
            (Some(true), HookStatus::Paused) => {
                self.store.resume_hook(ws, id, self.limits()).await?
            }
            (Some(false), HookStatus::Active) => {
                self.store.pause_hook(ws, id, "paused by an owner").await?
            }
            _ => Some(hook),
        })
    }

    /// Queues a delivery for every event past the cursor of every active subscription that
    /// wants it; returns how many. Safe to run on every replica at once.
    pub async fn dispatch(&self) -> Result<usize, StoreError> {
        let mut queued = 0;
        for hook in self.store.hooks_behind().await? {
            let mut cursor = hook.cursor;
            loop {
                let page = self
                    .store
                    .events_after(hook.workspace_id, cursor, PAGE)
                    .await?;
                let Some(last) = page.last().map(|e| e.id) else {
                    break;
                };
                let deliveries: Vec<NewHookDelivery> = page
                    .into_iter()
                    .filter(|e| hook.wants(e.kind))
                    .map(|e| NewHookDelivery {
                        event_id: e.id,
                        event_type: e.kind,
                        conversation_id: e.conversation_id,
                        body: LiveEvent::from(e).json,
                    })
                    .collect();
                let count = deliveries.len();
                if !self
                    .store
                    .dispatch_hook(&hook, cursor, last, deliveries, self.limits())
                    .await?
                {
                    // Another replica moved it (or it was paused): it is theirs.
                    break;
                }
                queued += count;
                cursor = last;
            }
        }
        Ok(queued)
    }

    /// Dispatches whenever the hub passes on events (at most every [`DISPATCH_PAUSE`], and
    /// every few seconds for a missed wake-up), until `stop` turns true.
    pub async fn run(self: Arc<Self>, hub: Arc<EventHub>, mut stop: watch::Receiver<bool>) {
        let mut wake = hub.wake_up();
        let mut sweep = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                woken = wake.changed() => {
                    if woken.is_err() {
                        break;
                    }
                }
                _ = sweep.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            // One dispatch for everything that woke it meanwhile.
            wake.borrow_and_update();
            if let Err(e) = self.dispatch().await {
                tracing::warn!(error = %e, "cannot dispatch events to webhooks");
            }
            // At most a few dispatches a second, however busy the log: a burst of events is
            // queued in one pass, and intake never shares the store with a query per event.
            tokio::time::sleep(DISPATCH_PAUSE).await;
        }
    }

    /// Makes one attempt at a delivery.
    #[tracing::instrument(skip_all, fields(delivery = %id))]
    pub async fn deliver(&self, id: HookDeliveryId) -> Result<HookOutcome, HookError> {
        let Some(delivery) = self.store.hook_delivery(id).await? else {
            return Ok(HookOutcome::Done);
        };
        if delivery.status != HookDeliveryStatus::Pending {
            return Ok(HookOutcome::Done);
        }
        let Some(hook) = self
            .store
            .hook(delivery.workspace_id, delivery.hook_id)
            .await?
        else {
            return Ok(HookOutcome::Done);
        };
        if hook.status == HookStatus::Paused {
            self.store
                .set_hook_delivery_status(id, HookDeliveryStatus::Paused, None)
                .await?;
            return Ok(HookOutcome::Done);
        }
        let secret = self
            .store
            .hook_secret(hook.id)
            .await?
            .and_then(|sealed| self.sealer.open(&sealed).ok())
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or(HookError::Sealed)?;
        let body = delivery.body.into_bytes();
        let signature = sign(&secret, chrono::Utc::now().timestamp(), &body);
        let started = Instant::now();
        let answer = match reqwest::Url::parse(&hook.url)
            .map_err(|_| UrlError::Malformed)
            .and_then(|url| self.client.request(reqwest::Method::POST, url))
        {
            Ok(request) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::USER_AGENT, "Palaver-Webhooks/1")
                .header(SIGNATURE_HEADER, signature)
                .header("x-palaver-event", delivery.event_type.as_str())
                .header("x-palaver-event-id", delivery.event_id.to_string())
                .header("x-palaver-delivery", id.to_string())
                .body(body)
                .send()
                .await
                .map_err(|e| describe(&e)),
            Err(e) => Err(e.to_string()),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (status, failure) = match &answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok());
                (Some(status), judge(status, retry_after).err())
            }
            Err(why) => (None, Some((why.clone(), None))),
        };
        let attempt = HookAttempt {
            status,
            elapsed_ms,
            error: failure.as_ref().map(|(why, _)| why.clone()),
        };
        let after = self
            .store
            .record_hook_attempt(id, &attempt, self.settings.events.hook_pause_after)
            .await?;
        match failure {
            None => Ok(HookOutcome::Done),
            Some((why, _)) if after.is_some_and(|h| h.status == HookStatus::Paused) => {
                tracing::warn!(hook = %hook.id, error = %why, "webhook subscription paused after repeated failures");
                Ok(HookOutcome::Done)
            }
            Some((why, after)) => Ok(HookOutcome::Retry { why, after }),
        }
    }

    /// A delivery's retries ran out: it is marked failed (the delivery log shows it, and the
    /// API can send it again).
    pub async fn give_up(&self, id: HookDeliveryId, why: &str) -> Result<(), HookError> {
        self.store
            .set_hook_delivery_status(id, HookDeliveryStatus::Failed, Some(why))
            .await?;
        Ok(())
    }
}

/// A transport failure in a few words (never the URL's query, which may carry a token).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        "the request to the receiver failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_body_and_time_only() {
        let body = br#"{"id":7,"type":"message.received"}"#;
        let header = sign("whsec_abc", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        let window = Duration::from_secs(300);
        let cases: [(&str, &str, &[u8], i64, bool); 6] = [
            ("whsec_abc", header.as_str(), body, 1_700_000_000, true),
            ("whsec_abc", header.as_str(), body, 1_700_000_299, true),
            ("whsec_abc", header.as_str(), body, 1_700_000_301, false),
            ("whsec_abd", header.as_str(), body, 1_700_000_000, false),
            ("whsec_abc", header.as_str(), b"{}", 1_700_000_000, false),
            ("whsec_abc", "v1=00", body, 1_700_000_000, false),
        ];
        for (secret, header, body, now, expected) in cases {
            assert_eq!(
                verify(secret, header, body, now, window),
                expected,
                "{secret} {header} {now}"
            );
        }
    }

    #[test]
    fn answers_are_judged_by_status_with_retry_after_capped() {
        // (status, Retry-After, delivered or the delay asked for in seconds)
        type Case<'a> = (u16, Option<&'a str>, Result<(), Option<u64>>);
        let cases: [Case; 6] = [
            (200, None, Ok(())),
            (204, None, Ok(())),
            (301, None, Err(None)),
            (500, None, Err(None)),
            (429, Some("7"), Err(Some(7))),
            (503, Some("999999999"), Err(Some(900))),
        ];
        for (status, retry_after, expected) in cases {
            let got = judge(status, retry_after).map_err(|(_, after)| after.map(|d| d.as_secs()));
            assert_eq!(got, expected, "{status} {retry_after:?}");
        }
    }

    #[test]
    fn event_types_are_parsed_once_each_and_unknown_ones_named() {
        let kinds = parse_kinds(&[
            "message.received".into(),
            "channel.state".into(),
            "message.received".into(),
        ])
        .unwrap();
        assert_eq!(kinds, [EventKind::MessageReceived, EventKind::ChannelState]);
        let err = parse_kinds(&["message.recieved".into()]).unwrap_err();
        assert!(err.to_string().contains("`message.recieved`"), "{err}");
    }
}
