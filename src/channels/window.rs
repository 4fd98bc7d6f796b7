//! The customer-service window of a conversation: on providers that keep one (Meta's Cloud
//! API: 24 hours after the customer's last message), free-form messages may be sent while it
//! is open, and only approved templates once it has closed. Whether it is open is decided by
//! [`window_at`], a pure function; [`Channels::service_window`] asks the conversation's
//! provider for its window's length.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ChannelError, Channels};
use crate::domain::Conversation;

/// Where a conversation's customer-service window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WindowState {
    /// Free-form messages may be sent until `closes_at`.
    Open {
        /// When it closes (unless the customer writes again).
        closes_at: DateTime<Utc>,
    },
    /// Only approved templates may be sent, until the customer writes again.
    Closed {
        /// When it closed; `None` when the customer never wrote (a conversation the business
        /// started).
        closed_at: Option<DateTime<Utc>>,
    },
}

impl WindowState {
    /// Whether free-form messages may be sent.
    pub fn is_open(&self) -> bool {
        matches!(self, WindowState::Open { .. })
    }
}

/// The window of `length` after the customer's last message, at `now`.
pub fn window_at(
    length: Duration,
    last_inbound: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> WindowState {
    let length = chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX);
    match last_inbound.and_then(|at| at.checked_add_signed(length)) {
        Some(closes_at) if closes_at > now => WindowState::Open { closes_at },
        closes => WindowState::Closed { closed_at: closes },
    }
}

impl Channels {
    /// The conversation's window at `now`; `None` when its provider keeps none (Evolution,
    /// the sandbox: anything may be sent at any time), or is not served here.
    pub async fn service_window(
        &self,
        conversation: &Conversation,
        now: DateTime<Utc>,
    ) -> Result<Option<WindowState>, ChannelError> {
        let Some(channel) = self.store.channel(conversation.channel_id).await? else {
            return Ok(None);
        };
        let Ok(provider) = self.provider(channel.provider) else {
            return Ok(None);
        };
        Ok(provider
            .service_window()
            .map(|w| window_at(w.length(), conversation.last_inbound_at, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_for_a_day_after_the_customer_wrote() {
        let day = Duration::from_secs(24 * 3600);
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        for (last, expected) in [
            (
                at("2026-11-26T11:00:00Z"),
                WindowState::Open {
                    closes_at: at("2026-11-27T11:00:00Z").unwrap(),
                },
            ),
            (
                at("2026-11-25T12:00:01Z"),
                WindowState::Open {
                    closes_at: at("2026-11-26T12:00:01Z").unwrap(),
                },
            ),
            // Exactly 24 hours later it has closed.
            (
                at("2026-11-25T12:00:00Z"),
                WindowState::Closed {
                    closed_at: at("2026-11-26T12:00:00Z"),
                },
            ),
            (
                at("2026-11-20T08:00:00Z"),
                WindowState::Closed {
                    closed_at: at("2026-11-21T08:00:00Z"),
                },
            ),
            // The customer never wrote: the business started the conversation.
            (None, WindowState::Closed { closed_at: None }),
        ] {
            assert_eq!(window_at(day, last, now), expected, "{last:?}");
        }
    }
}
