//! Message templates: a channel's approved templates listed through its provider (kept for a
//! while, refreshed on request), and a template sent to re-open a conversation outside the
//! 24-hour window, its values checked against the template first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ChannelError, Channels};
use crate::domain::{
    Channel, ChannelId, Conversation, FieldError, Message, MessageDetails, MessageKind,
    TemplateRef, UserId,
};
pub use crate::providers::templates::Template;

/// How long a channel's template list is kept before it is read again.
pub const TEMPLATES_KEPT: Duration = Duration::from_secs(15 * 60);

/// A channel's template list and when it was read.
type Kept = (Instant, Arc<Vec<Template>>);

/// Cached template lists, per channel.
#[derive(Default)]
pub struct TemplateCache(std::sync::Mutex<std::collections::HashMap<ChannelId, Kept>>);

/// A template to send.
#[derive(Debug, Clone)]
pub struct TemplateSend {
    /// Its name.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// Values by placeholder.
    pub parameters: BTreeMap<String, String>,
}

impl TemplateSend {
    /// A template to send, its name and language checked (1-512 characters each); the values
    /// are checked against the channel's template itself ([`Channels::checked_template`]).
    pub fn new(
        name: &str,
        language: &str,
        parameters: BTreeMap<String, String>,
    ) -> Result<Self, Vec<FieldError>> {
        let errors: Vec<FieldError> = [("name", name), ("language", language)]
            .into_iter()
            .filter(|(_, value)| value.trim().is_empty() || value.len() > 512)
            .map(|(field, _)| FieldError::new(field, "must be 1-512 characters"))
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name: name.trim().to_string(),
            language: language.trim().to_string(),
            parameters,
        })
    }
}

/// The text a template shows with `values` filled in, as the inbox records it.
fn rendered(template: &Template, values: &BTreeMap<String, String>) -> String {
    let fill = |text: &str, component: &str| {
        let mut out = text.to_string();
        for (key, value) in values {
            if let Some(name) = key
                .strip_prefix(component)
                .and_then(|k| k.strip_prefix('.'))
            {
                out = out.replace(&format!("{{{{{name}}}}}"), value);
            }
        }
        out
    };
    let mut parts = Vec::new();
    if let Some(text) = template.header.as_ref().and_then(|h| h.text.as_deref()) {
        parts.push(fill(text, "header"));
    }
    parts.push(fill(&template.body, "body"));
    if let Some(footer) = &template.footer {
        parts.push(footer.clone());
    }
    parts.join("\n\n")
}

impl Channels {
    /// The channel's templates, from the cache when read less than [`TEMPLATES_KEPT`] ago
    /// unless `refresh`.
    pub async fn templates(
        &self,
        channel: &Channel,
        refresh: bool,
    ) -> Result<Arc<Vec<Template>>, ChannelError> {
        if !refresh {
            let cache = self.templates.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, list)) = cache.get(&channel.id) {
                if at.elapsed() < TEMPLATES_KEPT {
                    return Ok(list.clone());
                }
            }
        }
        let provider = self.provider(channel.provider)?.clone();
        let lister = provider.templates().ok_or_else(|| {
            ChannelError::Unsupported(format!(
                "{} channels have no message templates",
                channel.provider.as_str()
            ))
        })?;
        let ctx = self.context(channel).await?;
        let list = Arc::new(lister.list_templates(&ctx).await?);
        self.templates
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel.id, (Instant::now(), list.clone()));
        Ok(list)
    }

    /// The channel's template `send` names, once `send`'s values are checked against it:
    /// approved, every placeholder given a well-formed value and nothing else. A template not
    /// in the kept list is read again once (it may be newly approved).
    pub async fn checked_template(
        &self,
        channel: &Channel,
        send: &TemplateSend,
    ) -> Result<Template, ChannelError> {
        let find = |list: &[Template]| {
            list.iter()
                .find(|t| t.name == send.name && t.language == send.language)
                .cloned()
        };
        let template = match find(&self.templates(channel, false).await?) {
            Some(t) => t,
            None => find(&self.templates(channel, true).await?).ok_or_else(|| {
                ChannelError::Invalid(vec![FieldError::new(
                    "name",
                    format!(
                        "the channel has no template `{}` in language `{}`",
                        send.name, send.language
                    ),
                )])
            })?,
        };
        let errors = template.check(&send.parameters);
        if !errors.is_empty() {
            return Err(ChannelError::Invalid(errors));
        }
        Ok(template)
    }

    /// Queues `send` to the conversation's customer, once per idempotency key, after checking
    /// it against the channel's template ([`Channels::checked_template`]).
    pub async fn send_template(
        &self,
        conversation: &Conversation,
        send: &TemplateSend,
        sent_by: Option<UserId>,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), ChannelError> {
        let channel = self
            .store
            .channel(conversation.channel_id)
            .await?
            .ok_or_else(|| ChannelError::NotFound("the conversation's channel is gone".into()))?;
        let template = self.checked_template(&channel, send).await?;
        let text = rendered(&template, &send.parameters);
        let details = MessageDetails {
            template: Some(TemplateRef {
                name: send.name.clone(),
                language: send.language.clone(),
                parameters: send.parameters.clone(),
            }),
            ..Default::default()
        };
        let (message, created) = self
            .record_human(
                conversation,
                (MessageKind::Template, Some(text), details),
                sent_by,
                "template",
                idempotency_key,
            )
            .await?;
        let same = message
            .details
            .template
            .as_ref()
            .map(|t| (&t.name, &t.parameters))
            == Some((&send.name, &send.parameters));
        if !created && !same {
            return Err(super::delivery::key_reused());
        }
        if created {
            tracing::info!(conversation = %conversation.id, template = %send.name, "template queued");
        }
        Ok((message, created))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reengagement_template_names_the_customer() {
        let template: TemplateRef = serde_json::from_value(serde_json::json!({
            "name": "follow_up", "language": "pt_BR",
            "parameters": {"body.1": "{customer_name}", "body.2": "pedido de {customer_number}"}
        }))
        .unwrap();
        let mut contact = crate::domain::Contact {
            id: crate::domain::ContactId::new(),
            channel_id: ChannelId::new(),
            wa_id: "5511988887777".into(),
            reply_to: None,
            user_id: None,
            name: Some("Maria".into()),
        };
        let filled = template.parameters_for(&contact);
        assert_eq!(filled["body.1"], "Maria");
        assert_eq!(filled["body.2"], "pedido de 5511988887777");
        contact.name = None;
        assert_eq!(template.parameters_for(&contact)["body.1"], "5511988887777");
    }

    #[test]
    fn the_inbox_shows_the_template_as_the_customer_reads_it() {
        let page: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/meta/templates.list.response.json"
        ))
        .unwrap();
        let template = Template::from_graph(&page["data"][1]).unwrap();
        let values: BTreeMap<String, String> = [
            ("header.1", "Pablo"),
            ("body.1", "SUMMER20"),
            ("body.2", "10"),
            ("button.0", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            rendered(&template, &values),
            "Act fast, Pablo!\n\nJust a quick reminder—your exclusive coupon code, SUMMER20, *expires in only 10 days!*\n\nLucky Shrub Succulents"
        );
    }
}
