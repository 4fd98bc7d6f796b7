//! Kapso webhooks (`whatsapp.message.*`, `whatsapp.conversation.*`, project events), batched or single, parsed into events.

use super::*;

/// Parses a Kapso delivery: one v2 event, a batch (`{"batch": true, "data": [...]}` or a bare
/// array), or a raw Meta payload forwarded by Kapso.
pub(crate) fn parse_body(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
    match &value {
        Value::Array(items) => items.iter().map(|item| parse_item(item, None)).collect(),
        Value::Object(object) => {
            if object.contains_key("object") {
                return meta::parse_notification(body);
            }
            let batch = object.get("batch").and_then(Value::as_bool) == Some(true);
            match object.get("data").and_then(Value::as_array) {
                Some(items) if batch || object.get("type").is_some_and(Value::is_string) => {
                    let hint = object.get("type").and_then(Value::as_str);
                    items.iter().map(|item| parse_item(item, hint)).collect()
                }
                _ => Ok(vec![parse_item(&value, None)?]),
            }
        }
        _ => Err(ProviderError::BadPayload(
            "a Kapso webhook is a JSON object or array".into(),
        )),
    }
}

/// The event a v2 payload carries. Kapso names it only in the `X-Webhook-Event` header (and in a
/// batch's `type`), so single payloads are recognised by their shape.
pub(crate) fn event_name(item: &Value, hint: Option<&str>) -> Option<String> {
    if let Some(event) = item.get("event").and_then(Value::as_str) {
        return Some(event.to_owned());
    }
    if let Some(hint) = hint {
        return Some(hint.to_owned());
    }
    if let Some(message) = item.get("message") {
        let kapso = message.get("kapso");
        let direction = kapso
            .and_then(|k| k.get("direction"))
            .and_then(Value::as_str);
        let status = kapso.and_then(|k| k.get("status")).and_then(Value::as_str);
        return match (direction, status) {
            (Some("inbound"), _) => Some("whatsapp.message.received".into()),
            (Some("outbound"), Some(status)) => Some(format!("whatsapp.message.{status}")),
            _ => None,
        };
    }
    if let Some(conversation) = item.get("conversation") {
        let name = if item.get("inactivity").is_some() {
            "inactive"
        } else if conversation.get("status").and_then(Value::as_str) == Some("ended") {
            "ended"
        } else {
            "created"
        };
        return Some(format!("whatsapp.conversation.{name}"));
    }
    if item.get("project").is_some() && item.get("phone_number_id").is_some() {
        return Some("whatsapp.phone_number.created".into());
    }
    None
}

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(crate) fn route_of(item: &Value) -> Option<String> {
    str_at(item, "/phone_number_id")
        .or_else(|| str_at(item, "/conversation/phone_number_id"))
        .or_else(|| str_at(item, "/message/kapso/phone_number_id"))
        .map(str::to_owned)
}

pub(crate) fn parse_item(item: &Value, hint: Option<&str>) -> Result<Event, ProviderError> {
    if !item.is_object() {
        return Err(ProviderError::BadPayload(
            "a Kapso event is a JSON object".into(),
        ));
    }
    let route = route_of(item);
    let Some(name) = event_name(item, hint) else {
        if route.is_some() {
            return Ok(Event::Ignored {
                route,
                reason: "unrecognised kapso event".into(),
            });
        }
        return Err(ProviderError::BadPayload("not a Kapso event".into()));
    };
    let Some(status) = name.strip_prefix("whatsapp.message.") else {
        return Ok(Event::Ignored {
            route,
            reason: format!("kapso event {name}"),
        });
    };
    let Some(route) = route else {
        return Ok(Event::Ignored {
            route: None,
            reason: format!("kapso {name} without phone_number_id"),
        });
    };
    let Some(raw) = item.get("message") else {
        return Ok(Event::Ignored {
            route: Some(route),
            reason: format!("kapso {name} without a message"),
        });
    };
    let message: WaMessage = match serde_json::from_value(raw.clone()) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable kapso message object");
            return Ok(Event::Ignored {
                route: Some(route),
                reason: format!("unreadable message object: {e}"),
            });
        }
    };
    if status == "received" {
        Ok(received(item, raw, &message, &route))
    } else {
        Ok(status_update(raw, &message, status, &route))
    }
}

pub(crate) fn received(item: &Value, raw: &Value, message: &WaMessage, route: &str) -> Event {
    let user_id = message
        .from_user_id
        .clone()
        .or_else(|| str_at(item, "/conversation/business_scoped_user_id").map(str::to_owned))
        .filter(|id| !id.is_empty());
    let from = message
        .from
        .clone()
        .filter(|f| !f.is_empty())
        .or_else(|| str_at(item, "/conversation/phone_number").map(digits))
        .or_else(|| user_id.clone());
    let Some(from) = from else {
        return Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without a sender id".into(),
        };
    };
    let contact_name = str_at(item, "/conversation/kapso/contact_name")
        .or_else(|| str_at(raw, "/kapso/contact_name"))
        .map(str::to_owned);
    let Some(mut inbound) = message.to_inbound(from, contact_name) else {
        return Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without an id".into(),
        };
    };
    inbound.user_id = user_id;
    inbound.details.provider_transcript = str_at(raw, "/kapso/transcript/text").map(str::to_owned);
    if let Some(media) = inbound.details.media.as_mut() {
        let url = str_at(raw, "/kapso/media_url").or_else(|| str_at(raw, "/kapso/media_data/url"));
        media.url = media.url.take().or_else(|| url.map(str::to_owned));
        media.mime_type = media
            .mime_type
            .take()
            .or_else(|| str_at(raw, "/kapso/media_data/content_type").map(str::to_owned));
        media.filename = media
            .filename
            .take()
            .or_else(|| str_at(raw, "/kapso/media_data/filename").map(str::to_owned));
    }
    Event::Message {
        route: route.to_owned(),
        message: inbound,
    }
}

/// A `whatsapp.message.{sent,delivered,read,failed}` event: the status entry of that name in
/// `kapso.statuses` carries its time and errors.
pub(crate) fn status_update(raw: &Value, message: &WaMessage, status: &str, route: &str) -> Event {
    let history: Vec<WaStatus> = raw
        .pointer("/kapso/statuses")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let entry = history
        .into_iter()
        .rev()
        .find(|entry| entry.status.as_deref() == Some(status))
        .unwrap_or(WaStatus {
            biz_opaque_callback_data: None,
            id: None,
            status: None,
            timestamp: None,
            errors: Vec::new(),
        });
    let entry = WaStatus {
        biz_opaque_callback_data: None,
        id: message.id.clone().or(entry.id),
        status: Some(status.to_owned()),
        timestamp: entry.timestamp.or_else(|| message.timestamp.clone()),
        errors: entry.errors,
    };
    entry.to_event(route)
}

pub(crate) fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}
