//! Evolution API v2 webhooks (`messages.upsert`, `messages.update`, `messages.edited`,
//! `messages.delete`, `send.message`, `connection.update`, `qrcode.updated`, `call`), parsed into events.

use super::*;

pub(crate) fn parse_webhook(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
    let event = envelope
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::BadPayload("not an Evolution webhook: no `event`".into()))?;
    let route = envelope
        .get("instance")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ProviderError::BadPayload("not an Evolution webhook: no `instance`".into())
        })?;
    // The body names events in dotted lowercase; configuration uses UPPER_SNAKE. Accept both.
    let event = event.to_ascii_lowercase().replace('_', ".");
    let data = envelope.get("data").unwrap_or(&Value::Null);
    let sent_at = envelope
        .get("date_time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let items = || match data {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        other => vec![other],
    };
    let events = match event.as_str() {
        "messages.upsert" => items()
            .into_iter()
            .map(|d| upsert_event(route, d))
            .collect(),
        "messages.update" => items()
            .into_iter()
            .map(|d| update_event(route, d, sent_at))
            .collect(),
        "send.message" => vec![ignored(route, "echo of a message sent through the API")],
        "messages.edited" => items()
            .into_iter()
            .map(|d| protocol_event(route, d, d.pointer("/key/id"), sent_at))
            .collect(),
        "messages.delete" => items()
            .into_iter()
            .map(|d| delete_event(route, d, sent_at))
            .collect(),
        "connection.update" => vec![connection_event(route, data)],
        "qrcode.updated" => vec![qr_event(route, data)],
        "call" => items().into_iter().map(|d| call_event(route, d)).collect(),
        other => vec![ignored(route, &format!("evolution event {other}"))],
    };
    Ok(events)
}

pub(crate) fn ignored(route: &str, reason: &str) -> Event {
    Event::Ignored {
        route: Some(route.to_owned()),
        reason: reason.to_owned(),
    }
}

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The text of an edited message's new content (text, or a caption).
fn edited_text(message: &Value) -> Option<String> {
    let message = message
        .pointer("/message")
        .filter(|m| m.is_object())
        .unwrap_or(message);
    [
        "/conversation",
        "/extendedTextMessage/text",
        "/imageMessage/caption",
        "/videoMessage/caption",
        "/documentMessage/caption",
    ]
    .iter()
    .find_map(|p| message.pointer(p).and_then(Value::as_str))
    .map(str::to_owned)
}

/// A protocol message (`messages.edited`, or one delivered as an upsert): an edit or a
/// deletion of the message `key.id`; anything else (ephemeral settings...) is ignored. The
/// key's `fromMe` and `remoteJid` are from the sender's side and not trusted; the id is.
pub(crate) fn protocol_event(
    route: &str,
    protocol: &Value,
    original: Option<&Value>,
    sent_at: Option<DateTime<Utc>>,
) -> Event {
    let Some(original_id) = original.and_then(Value::as_str).filter(|id| !id.is_empty()) else {
        return ignored(route, "protocol message without the id it changes");
    };
    // protobufjs writes enums by name; older builds by number.
    let kind = match protocol.get("type") {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => "REVOKE".into(),
            Some(14) => "MESSAGE_EDIT".into(),
            _ => n.to_string(),
        },
        _ => String::new(),
    };
    let change = match kind.as_str() {
        "REVOKE" => MessageChange::Deleted,
        "MESSAGE_EDIT" => match protocol.get("editedMessage").and_then(edited_text) {
            Some(text) => MessageChange::Edited { text },
            None => return ignored(route, "edit without its new text"),
        },
        other => return ignored(route, &format!("protocol message {other}")),
    };
    let timestamp = protocol
        .get("timestampMs")
        .and_then(|t| match t {
            Value::String(s) => s.parse::<i64>().ok(),
            other => other.as_i64(),
        })
        .and_then(DateTime::from_timestamp_millis)
        .or(sent_at)
        .unwrap_or_else(Utc::now);
    Event::Changed {
        route: route.to_owned(),
        original_id: original_id.to_owned(),
        change,
        timestamp,
    }
}

/// `messages.delete`: the message `id` (or `key.id`) was deleted for everyone.
pub(crate) fn delete_event(route: &str, data: &Value, sent_at: Option<DateTime<Utc>>) -> Event {
    match str_at(data, "/id").or_else(|| str_at(data, "/key/id")) {
        Some(id) => Event::Changed {
            route: route.to_owned(),
            original_id: id.to_owned(),
            change: MessageChange::Deleted,
            timestamp: sent_at.unwrap_or_else(Utc::now),
        },
        None => ignored(route, "deletion without a message id"),
    }
}

pub(crate) fn upsert_event(route: &str, data: &Value) -> Event {
    let (Some(remote_jid), Some(id)) = (str_at(data, "/key/remoteJid"), str_at(data, "/key/id"))
    else {
        return ignored(route, "message without a key");
    };
    if remote_jid.ends_with("@g.us") {
        return ignored(route, "group");
    }
    if remote_jid.ends_with("@broadcast") {
        return ignored(route, "status broadcast");
    }
    if remote_jid.ends_with("@newsletter") {
        return ignored(route, "channel (newsletter)");
    }
    // Baileys 7 may address a chat by LID; the phone-number JID then comes in remoteJidAlt.
    let (from, reply_to) = if remote_jid.ends_with("@lid") {
        match str_at(data, "/key/remoteJidAlt").filter(|alt| alt.ends_with("@s.whatsapp.net")) {
            Some(alt) => (jid_user(alt), Some(alt)),
            None => (jid_user(remote_jid), Some(remote_jid)),
        }
    } else {
        (jid_user(remote_jid), None)
    };
    let outer = data.get("message").unwrap_or(&Value::Null);
    let mut message = outer;
    let mut type_name = data
        .get("messageType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| detect_type(outer));
    // Disappearing, view-once and captioned-document messages wrap the real one.
    while let Some(wrapper) = type_name.as_deref().filter(|t| WRAPPERS.contains(t)) {
        let Some(inner) = message.get(wrapper).and_then(|w| w.get("message")) else {
            break;
        };
        message = inner;
        type_name = detect_type(inner);
    }
    let type_name = type_name.unwrap_or_default();
    // Edits and deletions delivered as messages (older builds).
    if type_name == "protocolMessage" {
        let protocol = message.get("protocolMessage").unwrap_or(&Value::Null);
        let at = Some(message_time(data.get("messageTimestamp")));
        return protocol_event(route, protocol, protocol.pointer("/key/id"), at);
    }
    if type_name == "editedMessage" {
        if let Some(protocol) = message.pointer("/editedMessage/message/protocolMessage") {
            let at = Some(message_time(data.get("messageTimestamp")));
            return protocol_event(route, protocol, protocol.pointer("/key/id"), at);
        }
    }
    let Some((kind, text, mut details)) = content(&type_name, message, outer, id) else {
        let what = if type_name.is_empty() {
            "empty"
        } else {
            &type_name
        };
        return ignored(route, &format!("{what} message"));
    };
    details.context_message_id = str_at(data, "/contextInfo/stanzaId")
        .or_else(|| {
            message
                .get(&type_name)
                .and_then(|inner| str_at(inner, "/contextInfo/stanzaId"))
        })
        .map(str::to_owned);
    let inbound = Inbound {
        provider_message_id: id.to_owned(),
        from: from.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        user_id: None,
        contact_name: str_at(data, "/pushName").map(str::to_owned),
        timestamp: message_time(data.get("messageTimestamp")),
        kind,
        text,
        details,
    };
    if data.pointer("/key/fromMe").and_then(Value::as_bool) == Some(true) {
        Event::OwnMessage {
            route: route.to_owned(),
            message: inbound,
        }
    } else {
        Event::Message {
            route: route.to_owned(),
            message: inbound,
        }
    }
}

/// Baileys timestamps come as a number, a string, or a protobuf Long `{low, high}`.
pub(crate) fn message_time(value: Option<&Value>) -> DateTime<Utc> {
    if let Some(low) = value.and_then(|v| v.get("low")).and_then(Value::as_i64) {
        let high = value
            .and_then(|v| v.get("high"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(at) = DateTime::from_timestamp((high << 32) | (low & 0xffff_ffff), 0) {
            return at;
        }
    }
    timestamp_or_now(value)
}

/// Message types that only wrap another message under `.message`.
pub(crate) const WRAPPERS: &[&str] = &[
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
];

/// Keys that only carry encryption or device metadata next to the real content.
pub(crate) const METADATA_KEYS: &[&str] = &["messageContextInfo", "base64", "mediaUrl"];

pub(crate) fn detect_type(message: &Value) -> Option<String> {
    message
        .as_object()?
        .keys()
        .find(|k| !METADATA_KEYS.contains(&k.as_str()))
        .cloned()
}

/// Kind, text and details of an Evolution message, or `None` for protocol traffic that is not a
/// customer message at all (deletions, key distribution, history sync notices).
pub(crate) fn content(
    type_name: &str,
    message: &Value,
    outer: &Value,
    id: &str,
) -> Option<(MessageKind, Option<String>, MessageDetails)> {
    let mut details = MessageDetails::default();
    let inner = message.get(type_name).unwrap_or(&Value::Null);
    let text_at = |pointer: &str| str_at(inner, pointer).map(str::to_owned);
    match type_name {
        "conversation" => {
            if let Some(text) = message.get("conversation").and_then(Value::as_str) {
                return Some((MessageKind::Text, Some(text.to_owned()), details));
            }
        }
        "extendedTextMessage" => {
            if let Some(text) = text_at("/text") {
                return Some((MessageKind::Text, Some(text), details));
            }
        }
        "imageMessage" | "videoMessage" | "audioMessage" | "documentMessage" | "stickerMessage"
        | "ptvMessage" => {
            let kind = match type_name {
                "imageMessage" => MessageKind::Image,
                "videoMessage" | "ptvMessage" => MessageKind::Video,
                "audioMessage" => MessageKind::Audio,
                "documentMessage" => MessageKind::Document,
                _ => MessageKind::Sticker,
            };
            let media = media_ref(inner, outer, id);
            let caption = media.caption.clone();
            details.media = Some(media);
            return Some((kind, caption, details));
        }
        "locationMessage" | "liveLocationMessage" => {
            let coordinate = |key: &str| inner.get(key).and_then(Value::as_f64);
            if let (Some(latitude), Some(longitude)) = (
                coordinate("degreesLatitude"),
                coordinate("degreesLongitude"),
            ) {
                details.location = Some(Location {
                    latitude,
                    longitude,
                    name: text_at("/name"),
                    address: text_at("/address"),
                });
                return Some((MessageKind::Location, None, details));
            }
        }
        "reactionMessage" => {
            if let Some(message_id) = text_at("/key/id") {
                details.reaction = Some(Reaction {
                    message_id,
                    emoji: text_at("/text"),
                });
                return Some((MessageKind::Reaction, None, details));
            }
        }
        "buttonsResponseMessage" | "templateButtonReplyMessage" | "listResponseMessage" => {
            let (id, title) = match type_name {
                "buttonsResponseMessage" => (
                    text_at("/selectedButtonId"),
                    text_at("/selectedDisplayText"),
                ),
                "templateButtonReplyMessage" => {
                    (text_at("/selectedId"), text_at("/selectedDisplayText"))
                }
                _ => (
                    text_at("/singleSelectReply/selectedRowId"),
                    text_at("/title"),
                ),
            };
            if let Some(id) = id {
                let title = title.unwrap_or_else(|| id.clone());
                details.interactive = Some(InteractiveReply {
                    id,
                    title: title.clone(),
                    description: text_at("/description"),
                });
                return Some((MessageKind::Interactive, Some(title), details));
            }
        }
        "protocolMessage" | "senderKeyDistributionMessage" | "messageContextInfo" | "" => {
            return None
        }
        _ => {}
    }
    details.original_type = Some(if type_name.is_empty() {
        "unknown".into()
    } else {
        type_name.into()
    });
    Some((MessageKind::Unsupported, None, details))
}

/// The most inline base64 kept with a stored message (about a minute of voice note); media sent
/// inline beyond it is fetched by message id when it is needed.
pub(crate) const MAX_KEPT_INLINE_BASE64: usize = 256 * 1024;

/// The webhook body Evolution may send: instances whose webhook was configured elsewhere may
/// still carry media inline, and WhatsApp media reach 16 MB (about 21 MB as base64).
pub const MAX_WEBHOOK_BYTES: usize = 32 * 1024 * 1024;

/// `outer` is the webhook's message object, where Evolution adds `base64` and `mediaUrl`.
pub(crate) fn media_ref(inner: &Value, outer: &Value, id: &str) -> MediaRef {
    let text = |key: &str| {
        inner
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    MediaRef {
        // Evolution downloads media by the message's key.
        id: Some(id.to_owned()),
        // `url` in the message is the encrypted CDN file; only an S3 copy is directly usable.
        url: str_at(outer, "/mediaUrl").map(str::to_owned),
        mime_type: text("mimetype"),
        sha256: text("fileSha256"),
        filename: text("fileName"),
        caption: text("caption"),
        voice: inner.get("ptt").and_then(Value::as_bool).unwrap_or(false),
        seconds: inner
            .get("seconds")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok()),
        // Small inline media is kept (no second download); larger media is fetched by id when
        // needed rather than stored with the message.
        inline_base64: str_at(outer, "/base64")
            .filter(|b| b.len() <= MAX_KEPT_INLINE_BASE64)
            .map(str::to_owned),
        file: None,
    }
}

pub(crate) fn update_event(route: &str, data: &Value, sent_at: Option<DateTime<Utc>>) -> Event {
    let from_me = data
        .get("fromMe")
        .or_else(|| data.pointer("/key/fromMe"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !from_me {
        // Acks of the customer's own messages (we read them): not a status of ours.
        return ignored(route, "status of a customer message");
    }
    let Some(id) = str_at(data, "/keyId").or_else(|| str_at(data, "/key/id")) else {
        return ignored(route, "status without a message id");
    };
    let status = match data.get("status") {
        Some(Value::String(s)) => s.clone(),
        // Baileys' numeric WAMessageStatus.
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => "ERROR".into(),
            Some(1) => "PENDING".into(),
            Some(2) => "SERVER_ACK".into(),
            Some(3) => "DELIVERY_ACK".into(),
            Some(4) => "READ".into(),
            Some(5) => "PLAYED".into(),
            _ => n.to_string(),
        },
        _ => String::new(),
    };
    let (status, error) = match status.as_str() {
        "SERVER_ACK" => (DeliveryStatus::Sent, None),
        "DELIVERY_ACK" => (DeliveryStatus::Delivered, None),
        "READ" => (DeliveryStatus::Read, None),
        "PLAYED" => (DeliveryStatus::Played, None),
        "ERROR" => (
            DeliveryStatus::Failed,
            Some(DeliveryError {
                code: None,
                title: "WhatsApp reported an error delivering the message".into(),
                detail: None,
            }),
        ),
        other => return ignored(route, &format!("status `{other}` is not tracked")),
    };
    Event::Status {
        route: route.to_owned(),
        update: StatusUpdate {
            reference: None,
            provider_message_id: id.to_owned(),
            status,
            timestamp: sent_at.unwrap_or_else(Utc::now),
            error,
        },
    }
}

/// Baileys' disconnect reasons, in words.
pub(crate) fn disconnect_reason(code: i64) -> Option<&'static str> {
    Some(match code {
        401 => "logged out from the phone",
        403 => "forbidden by WhatsApp",
        408 => "connection lost or QR code timed out",
        411 => "multi-device mismatch",
        428 => "connection closed",
        440 => "replaced by another session",
        500 => "bad session",
        503 => "WhatsApp unavailable",
        515 => "restart required",
        _ => return None,
    })
}

pub(crate) fn connection_event(route: &str, data: &Value) -> Event {
    let state_name = data.get("state").and_then(Value::as_str).unwrap_or("");
    let Some(state) = channel_state(state_name) else {
        return ignored(route, &format!("connection state `{state_name}`"));
    };
    let code = data.get("statusReason").and_then(Value::as_i64);
    let detail = match (state, code) {
        (ChannelState::Connected | ChannelState::Connecting, _) | (_, None) => None,
        // Evolution refuses the connection only when the QR code limit is reached.
        (ChannelState::Broken, Some(code)) => {
            Some(format!("{state_name}: QR code limit reached ({code})"))
        }
        (_, Some(code)) => Some(match disconnect_reason(code) {
            Some(words) => format!("{state_name}: {words} ({code})"),
            None => format!("{state_name} ({code})"),
        }),
    };
    Event::Connection {
        route: route.to_owned(),
        state,
        detail,
    }
}

pub(crate) fn qr_event(route: &str, data: &Value) -> Event {
    if let Some(qr) = data.get("qrcode").and_then(pairing_qr) {
        return Event::QrCode {
            route: route.to_owned(),
            image: qr.image,
            code: qr.code,
            pairing_code: qr.pairing_code,
        };
    }
    // Evolution stops generating codes after QRCODE_LIMIT and says so in this event.
    match str_at(data, "/message") {
        Some(message) => Event::Connection {
            route: route.to_owned(),
            state: ChannelState::Disconnected,
            detail: Some(message.to_owned()),
        },
        None => ignored(route, "qrcode.updated without a code"),
    }
}

pub(crate) fn call_event(route: &str, data: &Value) -> Event {
    let id = str_at(data, "/id");
    // `from` may be a LID; `callerPn` is the phone number when Baileys knows it.
    let from = str_at(data, "/callerPn").or_else(|| str_at(data, "/from"));
    let status = str_at(data, "/status");
    match (id, from, status) {
        (Some(id), Some(from), Some(status)) => Event::Call {
            route: route.to_owned(),
            call_id: id.to_owned(),
            from: jid_user(from).to_owned(),
            status: status.to_owned(),
        },
        _ => ignored(route, "call event without id, caller or status"),
    }
}
