//! Request bodies for the Cloud API's `/messages` (Kapso's proxy takes the same), checked against WhatsApp's limits before anything is sent.

use super::*;

/// Buttons and list limits of the Cloud API, checked before sending so a bad message fails with
/// a clear reason instead of Graph's generic parameter error.
pub(crate) const MAX_BUTTONS: usize = 3;
pub(crate) const MAX_BUTTON_TITLE: usize = 20;
pub(crate) const MAX_LIST_ROWS: usize = 10;
pub(crate) const MAX_ROW_TITLE: usize = 24;
pub(crate) const MAX_ROW_DESCRIPTION: usize = 72;
pub(crate) const MAX_ID: usize = 200;

/// The Cloud API request body for `message` (Kapso's proxy takes the same).
pub(crate) fn message_body(message: &Outbound) -> Result<Value, ProviderError> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
    });
    // A customer known only by a business-scoped user id is addressed by `recipient`; `to`
    // takes phone numbers (and WhatsApp ids) only.
    let address = if is_business_scoped_user_id(&message.to) {
        "recipient"
    } else {
        "to"
    };
    body[address] = json!(message.to);
    // Echoed back in this message's status webhooks: names our message even if the send's
    // answer is lost.
    if let Some(key) = &message.idempotency_key {
        body["biz_opaque_callback_data"] = json!(key);
    }
    let (kind, content) = match &message.body {
        OutboundBody::Text { text } => (
            "text",
            json!({ "preview_url": has_link(text), "body": text }),
        ),
        OutboundBody::Template {
            name,
            language,
            parameters,
        } => {
            let mut template = json!({ "name": name, "language": { "code": language } });
            let components = super::super::templates::components(parameters);
            if !components.is_empty() {
                template["components"] = json!(components);
            }
            ("template", template)
        }
        OutboundBody::Reaction { message_id, emoji } => (
            "reaction",
            json!({ "message_id": message_id, "emoji": emoji }),
        ),
        OutboundBody::Media {
            kind,
            link,
            caption,
            filename,
        } => media_content(
            kind,
            json!({ "link": link }),
            caption.as_deref(),
            filename.as_deref(),
        )?,
        OutboundBody::Upload {
            kind,
            media,
            caption,
            filename,
        } => {
            let Uploaded::Id(id) = media else {
                return Err(ProviderError::Permanent(
                    "the Cloud API sends uploaded media by id".into(),
                ));
            };
            media_content(
                kind,
                json!({ "id": id }),
                caption.as_deref(),
                filename.as_deref(),
            )?
        }
        OutboundBody::Buttons { text, buttons } => ("interactive", buttons_content(text, buttons)?),
        OutboundBody::List { text, button, rows } => {
            ("interactive", list_content(text, button, rows)?)
        }
    };
    // A reaction already names its message; a quote on it is meaningless.
    if let (Some(reply_to), false) = (&message.reply_to_message, kind == "reaction") {
        body["context"] = json!({ "message_id": reply_to });
    }
    body["type"] = json!(kind);
    body[kind] = content;
    Ok(body)
}

/// Link previews only when there is a link, so a plain answer never waits on a preview fetch.
pub(crate) fn has_link(text: &str) -> bool {
    text.contains("https://") || text.contains("http://")
}

/// A media message's content; `source` is `{"link": ...}` or `{"id": ...}`.
pub(crate) fn media_content(
    kind: &str,
    source: Value,
    caption: Option<&str>,
    filename: Option<&str>,
) -> Result<(&'static str, Value), ProviderError> {
    let voice = kind == "voice";
    let (kind, captioned): (&'static str, bool) = match kind {
        "image" => ("image", true),
        "video" => ("video", true),
        "document" => ("document", true),
        "audio" | "voice" => ("audio", false),
        "sticker" => ("sticker", false),
        other => {
            return Err(ProviderError::Permanent(format!(
                "unknown media kind `{other}`"
            )))
        }
    };
    let mut content = source;
    if let Some(caption) = caption {
        if !captioned {
            return Err(ProviderError::Permanent(format!(
                "{kind} messages cannot carry a caption"
            )));
        }
        content["caption"] = json!(caption);
    }
    if let Some(filename) = filename {
        if kind != "document" {
            return Err(ProviderError::Permanent(
                "only documents carry a file name".into(),
            ));
        }
        content["filename"] = json!(filename);
    }
    if voice {
        content["voice"] = json!(true);
    }
    Ok((kind, content))
}

pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<(), ProviderError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(ProviderError::Permanent(format!(
            "{what} must have 1 to {max} characters, not {len}"
        )));
    }
    Ok(())
}

pub(crate) fn buttons_content(
    text: &str,
    buttons: &[(String, String)],
) -> Result<Value, ProviderError> {
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        return Err(ProviderError::Permanent(format!(
            "a message takes 1 to {MAX_BUTTONS} buttons, not {}",
            buttons.len()
        )));
    }
    let mut out = Vec::with_capacity(buttons.len());
    for (id, title) in buttons {
        check_len("button id", id, MAX_ID)?;
        check_len("button title", title, MAX_BUTTON_TITLE)?;
        out.push(json!({ "type": "reply", "reply": { "id": id, "title": title } }));
    }
    Ok(json!({
        "type": "button",
        "body": { "text": text },
        "action": { "buttons": out },
    }))
}

pub(crate) fn list_content(
    text: &str,
    button: &str,
    rows: &[(String, String, Option<String>)],
) -> Result<Value, ProviderError> {
    if rows.is_empty() || rows.len() > MAX_LIST_ROWS {
        return Err(ProviderError::Permanent(format!(
            "a list takes 1 to {MAX_LIST_ROWS} rows, not {}",
            rows.len()
        )));
    }
    check_len("list button", button, MAX_BUTTON_TITLE)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, title, description) in rows {
        check_len("row id", id, MAX_ID)?;
        check_len("row title", title, MAX_ROW_TITLE)?;
        let mut row = json!({ "id": id, "title": title });
        if let Some(description) = description {
            check_len("row description", description, MAX_ROW_DESCRIPTION)?;
            row["description"] = json!(description);
        }
        out.push(row);
    }
    Ok(json!({
        "type": "list",
        "body": { "text": text },
        "action": { "button": button, "sections": [{ "rows": out }] },
    }))
}

/// Body marking `message_id` read, optionally showing "typing…" until we answer (at most 25 s).
pub(crate) fn read_body(message_id: &str, typing: bool) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
    });
    if typing {
        body["typing_indicator"] = json!({ "type": "text" });
    }
    body
}

#[derive(Debug, Deserialize)]
pub(crate) struct SendResponse {
    #[serde(default)]
    pub(crate) messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentMessage {
    pub(crate) id: String,
}

/// Reads `messages[0].id` from a successful send.
pub(crate) fn sent_from(reply: &Reply) -> Result<Sent, ProviderError> {
    let response: SendResponse = reply.json("send")?;
    let id = response
        .messages
        .into_iter()
        .next()
        .map(|m| m.id)
        .ok_or_else(|| ProviderError::Permanent("send response without messages[0].id".into()))?;
    Ok(Sent {
        provider_message_id: id,
    })
}
