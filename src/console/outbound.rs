//! Writing first, and writing after the window closed: the New conversation page (a channel,
//! the customer's number, an approved template and its values) and, in a conversation whose
//! 24-hour customer-service window has closed, the template form that takes the reply box's
//! place. Choosing a channel and a template is a plain GET form; sending is a POST with the
//! session's CSRF token. Both send through [`crate::inbox`], whose checks (the number as a
//! contact's, the values against the template) are the JSON API's own.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{acting, describe, error_page, page_viewer, render, Viewer};
use crate::accounts::{people, Roles};
use crate::channels::templates::{Template, TemplateSend};
use crate::channels::{ChannelError, WindowState};
use crate::domain::{Channel, ChannelId, Conversation, ProviderKind};
use crate::http::{ApiError, AppState};
use crate::inbox;

/// The routes of the New conversation page.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/inbox/new", get(new_page).post(start))
}

/// What the choosing form sends: a channel, and a template as `name:language`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Choice {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    to: String,
}

/// How a placeholder is asked for.
fn placeholder_label(placeholder: &str) -> String {
    let (part, name) = placeholder.split_once('.').unwrap_or((placeholder, ""));
    match (part, name) {
        ("header", "image" | "video" | "document") => {
            format!("Header {name} (a link, or a WhatsApp media id)")
        }
        ("header", "latitude" | "longitude") => format!("Header location's {name}"),
        ("header", "location_name") => "Header location's name".into(),
        ("header", "location_address") => "Header location's address".into(),
        ("header" | "body", n) => format!("{} {{{{{n}}}}}", capitalised(part)),
        ("button", n) => match n.parse::<usize>() {
            Ok(i) => format!("Button {} (the end of its link)", i + 1),
            Err(_) => format!("Button {n}"),
        },
        ("coupon", _) => "Coupon code (at most 15 characters)".into(),
        _ => placeholder.to_string(),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A template as the select names it.
fn template_key(t: &Template) -> String {
    format!("{}:{}", t.name, t.language)
}

/// The values of the template forms: the channel's approved templates (or why there are
/// none), the chosen one with a field per placeholder (holding what was `given`), and the
/// problems found with `errors` by field.
async fn template_values(
    state: &AppState,
    channel: &Channel,
    chosen: &str,
    given: &BTreeMap<String, String>,
    errors: &[crate::domain::FieldError],
) -> Value {
    let listed = state.channels.templates(channel, false).await;
    let (templates, unavailable) = match listed {
        Ok(list) => (
            list.iter()
                .filter(|t| t.status == "APPROVED")
                .cloned()
                .collect::<Vec<_>>(),
            None,
        ),
        Err(ChannelError::Unsupported(why)) => (Vec::new(), Some(why)),
        Err(e) => {
            tracing::warn!(channel = %channel.id, error = %e, "the channel's templates could not be read");
            (
                Vec::new(),
                Some(
                    "the channel's templates could not be read just now; try again in a moment"
                        .into(),
                ),
            )
        }
    };
    let template = templates.iter().find(|t| template_key(t) == chosen);
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.clone())
    };
    let fields: Vec<Value> = template
        .map(|t| {
            t.placeholders
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    context! {
                        name => format!("p.{p}"),
                        id => format!("param-{i}"),
                        label => placeholder_label(p),
                        value => given.get(p).cloned().unwrap_or_default(),
                        error => error_of(&format!("parameters.{p}")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    context! {
        templates => templates
            .iter()
            .map(|t| context! {
                key => template_key(t),
                title => format!("{} ({})", t.name, t.language),
            })
            .collect::<Vec<_>>(),
        unavailable,
        chosen => template.map(|t| context! {
            key => template_key(t),
            name => t.name,
            language => t.language,
            header => t.header.as_ref().and_then(|h| h.text.clone()),
            body => t.body,
            footer => t.footer,
        }),
        fields,
        template_error => error_of("name").or_else(|| error_of("language")),
    }
}

/// What was wrong, each field named as the form names it.
fn said(fields: &[crate::domain::FieldError]) -> String {
    let named: Vec<String> = fields
        .iter()
        .map(|f| {
            let name = match f.field.as_str() {
                "to" => "Customer's number".to_string(),
                "name" | "language" => "Template".to_string(),
                other => other
                    .strip_prefix("parameters.")
                    .map(placeholder_label)
                    .unwrap_or_else(|| other.to_string()),
            };
            format!("{name}: {}", f.message)
        })
        .collect();
    format!("Not sent. {}", named.join("; "))
}

/// The form's values: `p.<placeholder>` fields.
pub(super) fn parameters(form: &[(String, String)]) -> BTreeMap<String, String> {
    form.iter()
        .filter_map(|(k, v)| k.strip_prefix("p.").map(|p| (p.to_string(), v.clone())))
        .collect()
}

/// The template the form names (`name:language`), its values checked by the API's rules.
pub(super) fn template_send(
    form: &HashMap<String, String>,
    pairs: &[(String, String)],
) -> Result<TemplateSend, ApiError> {
    let chosen = form.get("template").map(String::as_str).unwrap_or("");
    let (name, language) = chosen.rsplit_once(':').unwrap_or((chosen, ""));
    TemplateSend::new(name, language, parameters(pairs)).map_err(ApiError::Invalid)
}

/// The workspace's channels a person can write from (not the sandbox's).
async fn channels(state: &AppState, viewer: &Viewer) -> Result<Vec<Channel>, ApiError> {
    Ok(state
        .store
        .list_channels(Some(viewer.caller.workspace), None)
        .await?
        .into_iter()
        .filter(|c| c.provider != ProviderKind::Sandbox)
        .collect())
}

/// The New conversation page's values.
async fn new_values(
    state: &AppState,
    viewer: &Viewer,
    choice: &Choice,
    given: &BTreeMap<String, String>,
    errors: &[crate::domain::FieldError],
) -> Result<Value, ApiError> {
    let numbers = channels(state, viewer).await?;
    // One number needs no choosing.
    let channel = match numbers.as_slice() {
        [only] => Some(only),
        _ => numbers.iter().find(|c| c.id.to_string() == choice.channel),
    };
    let templates = match channel {
        Some(channel) => {
            Some(template_values(state, channel, &choice.template, given, errors).await)
        }
        None => None,
    };
    Ok(context! {
        page => "inbox",
        channels => numbers
            .iter()
            .map(|c| context! { id => c.id.to_string(), name => c.name })
            .collect::<Vec<_>>(),
        channel => channel.map(|c| c.id.to_string()),
        channel_name => channel.map(|c| c.name.clone()),
        to => choice.to,
        to_error => errors.iter().find(|e| e.field == "to").map(|e| e.message.clone()),
        form => templates,
        key => people::random_token(),
    })
}

async fn new_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(choice): Query<Choice>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::INBOX, "/inbox/new").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match new_values(&state, &viewer, &choice, &BTreeMap::new(), &[]).await {
        Ok(page) => render(StatusCode::OK, "new_conversation.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// A form that sends: signed in, CSRF checked, allowed to answer the inbox.
async fn sender(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Viewer, Response> {
    let viewer = acting(state, headers, form).await?;
    if !Roles::INBOX.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role may not write to customers",
            viewer.caller.role
        ));
        return Err(error_page(Some(&viewer), e));
    }
    Ok(viewer)
}

/// The form's idempotency key, kept apart from the API's keys.
pub(super) fn key(form: &HashMap<String, String>) -> Option<String> {
    form.get("key")
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| format!("console:{k}"))
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let viewer = match sender(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let choice = Choice {
        channel: form.get("channel").cloned().unwrap_or_default(),
        template: form.get("template").cloned().unwrap_or_default(),
        to: form.get("to").cloned().unwrap_or_default(),
    };
    let started = async {
        let id: ChannelId = choice
            .channel
            .parse()
            .map_err(|_| ApiError::invalid("channel", "choose a channel"))?;
        let channel = crate::http::api::find_channel(&state, &viewer.caller, id).await?;
        let send = template_send(&form, &pairs)?;
        Ok::<_, ApiError>(
            inbox::start_conversation(
                state.store.as_ref(),
                &state.channels,
                &viewer.caller,
                &channel,
                &choice.to,
                &send,
                key(&form).as_deref(),
            )
            .await?,
        )
    };
    let e = match started.await {
        Ok((conversation, _, _)) => {
            return Redirect::to(&format!("/inbox/{}", conversation.id)).into_response()
        }
        Err(e) => e,
    };
    if e.status_code().is_server_error() {
        return error_page(Some(&viewer), e);
    }
    let fields = match &e {
        ApiError::Invalid(fields) => fields.clone(),
        _ => Vec::new(),
    };
    let said = match fields.is_empty() {
        true => describe(&e),
        false => said(&fields),
    };
    match new_values(&state, &viewer, &choice, &parameters(&pairs), &fields).await {
        Ok(page) => render(
            e.status_code(),
            "new_conversation.html",
            Some(&viewer),
            context! { error => said, ..page },
        ),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The conversation page's window and, once it has closed, its template form (the template
/// `chosen`, with the values `given` and the `errors` found in them).
pub(super) async fn window_values(
    state: &AppState,
    conversation: &Conversation,
    chosen: &str,
    given: &BTreeMap<String, String>,
    errors: &[crate::domain::FieldError],
) -> Result<Value, ApiError> {
    let now = chrono::Utc::now();
    let window = state.channels.service_window(conversation, now).await?;
    let closed = window.is_some_and(|w| !w.is_open());
    let template_form = if closed {
        match state.store.channel(conversation.channel_id).await? {
            Some(channel) => Some(template_values(state, &channel, chosen, given, errors).await),
            None => None,
        }
    } else {
        None
    };
    let window = window.map(|w| match w {
        WindowState::Open { closes_at } => {
            let left = (closes_at - now).num_minutes().max(0);
            context! {
                open => true,
                until => closes_at.to_rfc3339(),
                left => match (left / 60, left % 60) {
                    (0, m) => format!("{m} min"),
                    (h, 0) => format!("{h} h"),
                    (h, m) => format!("{h} h {m} min"),
                },
            }
        }
        WindowState::Closed { closed_at } => context! {
            open => false,
            since => closed_at.map(|t| t.to_rfc3339()),
        },
    });
    Ok(context! {
        window,
        template_form,
        template_key => people::random_token(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_asked_for_in_words() {
        for (placeholder, label) in [
            ("body.1", "Body {{1}}"),
            ("body.customer_name", "Body {{customer_name}}"),
            ("header.1", "Header {{1}}"),
            (
                "header.image",
                "Header image (a link, or a WhatsApp media id)",
            ),
            ("button.0", "Button 1 (the end of its link)"),
            ("coupon.1", "Coupon code (at most 15 characters)"),
        ] {
            assert_eq!(placeholder_label(placeholder), label);
        }
    }

    #[test]
    fn the_form_names_a_template_and_its_values() {
        let pairs: Vec<(String, String)> = [
            ("template", "order_update:pt_BR"),
            ("p.body.1", "Ana"),
            ("p.button.0", "x1"),
            ("to", "+351 912"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let form: HashMap<String, String> = pairs.iter().cloned().collect();
        let send = template_send(&form, &pairs).unwrap();
        assert_eq!(
            (send.name.as_str(), send.language.as_str()),
            ("order_update", "pt_BR")
        );
        assert_eq!(send.parameters.len(), 2);
        assert_eq!(send.parameters["body.1"], "Ana");
        let none = HashMap::new();
        assert!(matches!(
            template_send(&none, &[]),
            Err(ApiError::Invalid(_))
        ));
    }
}
