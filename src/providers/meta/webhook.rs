//! Meta's `messages` webhooks: notifications, changes, customer messages and delivery statuses, parsed into events. Kapso's payloads carry the same message and status objects.

use super::*;

#[derive(Debug, Deserialize)]
pub(crate) struct Notification {
    #[serde(default)]
    pub(crate) object: Option<String>,
    #[serde(default)]
    pub(crate) entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    #[serde(default)]
    pub(crate) changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    #[serde(default)]
    pub(crate) field: Option<String>,
    #[serde(default)]
    pub(crate) value: Value,
}

/// Parses a Cloud API webhook body (also what Kapso forwards in "Meta webhooks" mode).
pub(crate) fn parse_notification(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not a Meta webhook: {e}")))?;
    match notification.object.as_deref() {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => {
            return Err(ProviderError::BadPayload(format!(
                "webhook object `{other}` is not WhatsApp"
            )))
        }
        None => {
            return Err(ProviderError::BadPayload(
                "not a Meta webhook: no `object`".into(),
            ))
        }
    }
    let mut events = Vec::new();
    for change in notification.entry.iter().flat_map(|entry| &entry.changes) {
        parse_change(change, &mut events);
    }
    Ok(events)
}

pub(crate) fn parse_change(change: &Change, events: &mut Vec<Event>) {
    let field = change.field.as_deref().unwrap_or("");
    let route = change
        .value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if field != "messages" && field != "smb_message_echoes" {
        events.push(Event::Ignored {
            route,
            reason: format!("meta webhook field `{field}`"),
        });
        return;
    }
    let Some(route) = route else {
        events.push(Event::Ignored {
            route: None,
            reason: "meta messages change without metadata.phone_number_id".into(),
        });
        return;
    };
    let contacts: Vec<WaContact> = array(&change.value, "contacts")
        .iter()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .collect();
    for raw in array(&change.value, "messages") {
        events.push(message_event(&route, raw, &contacts));
    }
    // Coexistence: what the business sent from the WhatsApp Business app on the same number.
    for raw in array(&change.value, "message_echoes") {
        events.push(echo_event(&route, raw));
    }
    for raw in array(&change.value, "statuses") {
        events.push(status_event(&route, raw));
    }
}

pub(crate) fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A message the business sent from the WhatsApp Business app (coexistence): a person took
/// over; or its edit or deletion.
pub(crate) fn echo_event(route: &str, raw: &Value) -> Event {
    let message = match serde_json::from_value::<WaMessage>(raw.clone()) {
        Ok(message) => message,
        Err(e) => {
            return Event::Ignored {
                route: Some(route.to_owned()),
                reason: format!("unreadable message echo: {e}"),
            };
        }
    };
    if let Some(change) = message.change_event(route) {
        return change;
    }
    let to = message
        .to
        .as_deref()
        .map(|t| t.trim_start_matches('+'))
        .filter(|t| !t.is_empty());
    let Some(to) = to else {
        return Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message echo without a recipient".into(),
        };
    };
    match message.to_inbound(to.to_owned(), None) {
        Some(message) => Event::OwnMessage {
            route: route.to_owned(),
            message,
        },
        None => Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message echo without an id".into(),
        },
    }
}

pub(crate) fn message_event(route: &str, raw: &Value, contacts: &[WaContact]) -> Event {
    let message = match serde_json::from_value::<WaMessage>(raw.clone()) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable meta message object");
            return Event::Ignored {
                route: Some(route.to_owned()),
                reason: format!("unreadable message object: {e}"),
            };
        }
    };
    if let Some(change) = message.change_event(route) {
        return change;
    }
    // A customer with a WhatsApp username may come with a business-scoped user id and no phone
    // number (`from_user_id`, the contact's `user_id`, no `from` or `wa_id`).
    let contact = contacts
        .iter()
        .find(|c| c.wa_id.is_some() && c.wa_id == message.from)
        .or_else(|| {
            contacts
                .iter()
                .find(|c| c.user_id.is_some() && c.user_id == message.from_user_id)
        })
        .or(contacts.first());
    let user_id = message
        .from_user_id
        .clone()
        .or_else(|| contact.and_then(|c| c.user_id.clone()))
        .filter(|id| !id.is_empty());
    let from = message
        .from
        .clone()
        .or_else(|| contact.and_then(|c| c.wa_id.clone()))
        .or_else(|| user_id.clone())
        .filter(|id| !id.is_empty());
    let contact_name = contact
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.clone());
    match from {
        Some(from) => match message.to_event(route, from, contact_name) {
            Event::Message { route, mut message } => {
                message.user_id = user_id;
                Event::Message { route, message }
            }
            other => other,
        },
        None => Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without a sender id".into(),
        },
    }
}

pub(crate) fn status_event(route: &str, raw: &Value) -> Event {
    let status = match serde_json::from_value::<WaStatus>(raw.clone()) {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable meta status object");
            return Event::Ignored {
                route: Some(route.to_owned()),
                reason: format!("unreadable status object: {e}"),
            };
        }
    };
    status.to_event(route)
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaContact {
    #[serde(default)]
    pub(crate) wa_id: Option<String>,
    /// Business-scoped user id, sent alongside or instead of `wa_id`.
    #[serde(default)]
    pub(crate) user_id: Option<String>,
    #[serde(default)]
    pub(crate) profile: Option<WaProfile>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaProfile {
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// A message object as the Cloud API (and Kapso) sends it. Every field is optional so that one
/// new or missing field never loses the message.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WaMessage {
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// The sender's business-scoped user id (2026), beside or instead of `from`.
    #[serde(default)]
    pub(crate) from_user_id: Option<String>,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) context: Option<WaContext>,
    #[serde(default)]
    pub(crate) text: Option<WaText>,
    #[serde(default)]
    pub(crate) image: Option<WaMedia>,
    #[serde(default)]
    pub(crate) audio: Option<WaMedia>,
    #[serde(default)]
    pub(crate) video: Option<WaMedia>,
    #[serde(default)]
    pub(crate) document: Option<WaMedia>,
    #[serde(default)]
    pub(crate) sticker: Option<WaMedia>,
    #[serde(default)]
    pub(crate) location: Option<WaLocation>,
    #[serde(default)]
    pub(crate) interactive: Option<WaInteractive>,
    #[serde(default)]
    pub(crate) button: Option<WaButton>,
    #[serde(default)]
    pub(crate) reaction: Option<WaReaction>,
    #[serde(default)]
    pub(crate) unsupported: Option<WaUnsupported>,
    /// Recipient, on message echoes.
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// An edit of an earlier message (`type: edit`).
    #[serde(default)]
    pub(crate) edit: Option<WaEdit>,
    /// A deletion of an earlier message (`type: revoke`).
    #[serde(default)]
    pub(crate) revoke: Option<WaRevoke>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaEdit {
    pub(crate) original_message_id: String,
    /// The message as it is now.
    #[serde(default)]
    pub(crate) message: Option<Box<WaMessage>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaRevoke {
    pub(crate) original_message_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaContext {
    #[serde(default)]
    pub(crate) id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaText {
    #[serde(default)]
    pub(crate) body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaMedia {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) mime_type: Option<String>,
    #[serde(default)]
    pub(crate) sha256: Option<String>,
    #[serde(default)]
    pub(crate) caption: Option<String>,
    #[serde(default)]
    pub(crate) filename: Option<String>,
    #[serde(default)]
    pub(crate) voice: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaLocation {
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaInteractive {
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) button_reply: Option<WaReply>,
    #[serde(default)]
    pub(crate) list_reply: Option<WaReply>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaReply {
    pub(crate) id: String,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// A tap on a template's quick-reply button.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaButton {
    #[serde(default)]
    pub(crate) payload: Option<String>,
    #[serde(default)]
    pub(crate) text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaReaction {
    pub(crate) message_id: String,
    #[serde(default)]
    pub(crate) emoji: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaUnsupported {
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
}

impl WaMessage {
    /// The customer message this object describes, sent by `from`.
    pub(crate) fn to_event(
        &self,
        route: &str,
        from: String,
        contact_name: Option<String>,
    ) -> Event {
        match self.to_inbound(from, contact_name) {
            Some(message) => Event::Message {
                route: route.to_owned(),
                message,
            },
            None => Event::Ignored {
                route: Some(route.to_owned()),
                reason: "message without an id".into(),
            },
        }
    }

    /// The edit or deletion this object announces, if it is one.
    pub(crate) fn change_event(&self, route: &str) -> Option<Event> {
        let (original_id, change) = match (self.kind.as_deref(), &self.edit, &self.revoke) {
            (Some("edit"), Some(edit), _) => {
                let (_, text, _) = edit.message.as_deref()?.content();
                (
                    edit.original_message_id.clone(),
                    MessageChange::Edited {
                        text: text.unwrap_or_default(),
                    },
                )
            }
            (Some("revoke"), _, Some(revoke)) => {
                (revoke.original_message_id.clone(), MessageChange::Deleted)
            }
            _ => return None,
        };
        if original_id.is_empty() {
            return None;
        }
        Some(Event::Changed {
            route: route.to_owned(),
            original_id,
            change,
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
        })
    }

    /// `None` when the message has no id: without one it cannot be deduplicated or answered.
    pub(crate) fn to_inbound(&self, from: String, contact_name: Option<String>) -> Option<Inbound> {
        let provider_message_id = self.id.clone().filter(|id| !id.is_empty())?;
        let (kind, text, mut details) = self.content();
        details.context_message_id = self.context.as_ref().and_then(|c| c.id.clone());
        Some(Inbound {
            provider_message_id,
            from,
            reply_to: None,
            user_id: None,
            contact_name: contact_name.filter(|n| !n.trim().is_empty()),
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
            kind,
            text,
            details,
        })
    }

    fn content(&self) -> (MessageKind, Option<String>, MessageDetails) {
        let type_name = self.kind.as_deref().unwrap_or("");
        let mut details = MessageDetails::default();
        let media = |media: &Option<WaMedia>, kind: MessageKind| {
            media.as_ref().map(|m| {
                let caption = m.caption.clone();
                let media_ref = MediaRef {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    mime_type: m.mime_type.clone(),
                    sha256: m.sha256.clone(),
                    filename: m.filename.clone(),
                    caption: caption.clone(),
                    voice: m.voice.unwrap_or(false),
                    ..MediaRef::default()
                };
                (kind, caption, media_ref)
            })
        };
        let media = match type_name {
            "image" => media(&self.image, MessageKind::Image),
            "audio" => media(&self.audio, MessageKind::Audio),
            "video" => media(&self.video, MessageKind::Video),
            "document" => media(&self.document, MessageKind::Document),
            "sticker" => media(&self.sticker, MessageKind::Sticker),
            _ => None,
        };
        if let Some((kind, caption, media_ref)) = media {
            details.media = Some(media_ref);
            return (kind, caption, details);
        }
        match type_name {
            "text" => {
                if let Some(text) = &self.text {
                    return (MessageKind::Text, text.body.clone(), details);
                }
            }
            "location" => {
                if let Some(l) = &self.location {
                    details.location = Some(Location {
                        latitude: l.latitude,
                        longitude: l.longitude,
                        name: l.name.clone(),
                        address: l.address.clone(),
                    });
                    return (MessageKind::Location, None, details);
                }
            }
            "interactive" => {
                if let Some(reply) =
                    self.interactive
                        .as_ref()
                        .and_then(|i| match i.kind.as_deref() {
                            Some("button_reply") => i.button_reply.as_ref(),
                            Some("list_reply") => i.list_reply.as_ref(),
                            _ => None,
                        })
                {
                    details.interactive = Some(InteractiveReply {
                        id: reply.id.clone(),
                        title: reply.title.clone(),
                        description: reply.description.clone(),
                    });
                    return (MessageKind::Interactive, Some(reply.title.clone()), details);
                }
                let sub = self
                    .interactive
                    .as_ref()
                    .and_then(|i| i.kind.as_deref())
                    .unwrap_or("unknown");
                details.original_type = Some(format!("interactive.{sub}"));
                return (MessageKind::Unsupported, None, details);
            }
            "button" => {
                if let Some(b) = &self.button {
                    let title = b.text.clone().unwrap_or_default();
                    details.interactive = Some(InteractiveReply {
                        id: b.payload.clone().unwrap_or_else(|| title.clone()),
                        title: title.clone(),
                        description: None,
                    });
                    return (MessageKind::Interactive, b.text.clone(), details);
                }
            }
            "reaction" => {
                if let Some(r) = &self.reaction {
                    details.reaction = Some(Reaction {
                        message_id: r.message_id.clone(),
                        emoji: r.emoji.clone().filter(|e| !e.is_empty()),
                    });
                    return (MessageKind::Reaction, None, details);
                }
            }
            "unsupported" => {
                let inner = self.unsupported.as_ref().and_then(|u| u.kind.clone());
                details.original_type = Some(inner.unwrap_or_else(|| "unsupported".into()));
                return (MessageKind::Unsupported, None, details);
            }
            _ => {}
        }
        details.original_type = Some(if type_name.is_empty() {
            "unknown".into()
        } else {
            type_name.into()
        });
        (MessageKind::Unsupported, None, details)
    }
}

/// A delivery status object (Cloud API `statuses[]`, Kapso `kapso.statuses[]`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaStatus {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(default)]
    pub(crate) errors: Vec<WaError>,
    /// What we sent as `biz_opaque_callback_data`.
    #[serde(default)]
    pub(crate) biz_opaque_callback_data: Option<String>,
}

/// An entry of `errors[]` on a status or message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaError {
    #[serde(default)]
    pub(crate) code: Option<i64>,
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) error_data: Option<WaErrorData>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaErrorData {
    #[serde(default)]
    pub(crate) details: Option<String>,
}

impl WaError {
    pub(crate) fn to_delivery_error(&self) -> DeliveryError {
        let title = self
            .title
            .clone()
            .or_else(|| self.message.clone())
            .unwrap_or_else(|| "delivery failed".into());
        let detail = self
            .error_data
            .as_ref()
            .and_then(|d| d.details.clone())
            .or_else(|| self.message.clone().filter(|m| *m != title));
        DeliveryError {
            code: self.code,
            title,
            detail,
        }
    }
}

/// A status name of the Cloud API, or `None` for ones we do not track (`deleted`, `warning`...).
pub(crate) fn delivery_status(name: &str) -> Option<DeliveryStatus> {
    match name {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "played" => Some(DeliveryStatus::Played),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

impl WaStatus {
    pub(crate) fn to_event(&self, route: &str) -> Event {
        match self.to_update() {
            Ok(update) => Event::Status {
                route: route.to_owned(),
                update,
            },
            Err(reason) => Event::Ignored {
                route: Some(route.to_owned()),
                reason,
            },
        }
    }

    pub(crate) fn to_update(&self) -> Result<StatusUpdate, String> {
        let id = self
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or("status without a message id")?;
        let name = self.status.as_deref().unwrap_or("");
        let status =
            delivery_status(name).ok_or_else(|| format!("status `{name}` is not tracked"))?;
        let error = match status {
            DeliveryStatus::Failed => Some(
                self.errors
                    .first()
                    .map(WaError::to_delivery_error)
                    .unwrap_or(DeliveryError {
                        code: None,
                        title: "delivery failed".into(),
                        detail: None,
                    }),
            ),
            _ => None,
        };
        Ok(StatusUpdate {
            provider_message_id: id,
            status,
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
            error,
            reference: self
                .biz_opaque_callback_data
                .clone()
                .filter(|r| !r.is_empty()),
        })
    }
}
