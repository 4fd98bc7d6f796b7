//! `/contacts`: the business's customers, with what it keeps about them (language, notes,
//! labels and its own attributes, such as a CRM's case id), so a CRM links a case to its
//! WhatsApp conversation (`GET /conversations?attribute=crm_case:4711`). Everyone reads them;
//! owners and inbox agents change them.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::{Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::{ContactId, FieldError};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::store::{ContactFilter, ContactPatch, ContactProfile};

/// Routes under `/contacts`.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/contacts", Roles::ANY, list),
        Route::get("/contacts/{contact}", Roles::ANY, read),
        Route::patch("/contacts/{contact}", Roles::INBOX, update),
    ]
}

/// Labels and attribute keys: 1-64 characters of `a-z`, `0-9`, `-`, `_`, `.` and `:`.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c))
}

const KEY_RULE: &str = "must be 1-64 characters of a-z, 0-9, '-', '_', '.' or ':'";

/// `key:value` of an attribute filter, checked.
pub(crate) fn attribute_filter(raw: &str) -> Result<(String, String), ApiError> {
    match raw.split_once(':') {
        Some((key, value)) if valid_key(key) && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(ApiError::invalid(
            "attribute",
            "must be `key:value`, the key 1-64 characters of a-z, 0-9, '-', '_' or '.'",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    label: Option<String>,
    attribute: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/contacts",
    operation_id = "list_contacts",
    tag = "contacts",
    summary = "List contacts",
    params(ListParams),
    responses((status = 200, description = "Contacts", body = Vec<ContactProfile>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<ContactProfile>>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let filter = ContactFilter {
        label: p.label,
        attribute: p.attribute.as_deref().map(attribute_filter).transpose()?,
        search: p.q,
        limit,
        offset: p.offset.unwrap_or(0),
    };
    Ok(Json(
        state.store.list_contacts(caller.workspace, &filter).await?,
    ))
}

async fn find(
    state: &AppState,
    caller: &Caller,
    id: ContactId,
) -> Result<ContactProfile, ApiError> {
    state
        .store
        .contact(id)
        .await?
        .filter(|c| c.workspace_id == caller.workspace)
        .ok_or_else(|| ApiError::NotFound(format!("no contact {id}")))
}

#[utoipa::path(
    get,
    path = "/contacts/{contact}",
    operation_id = "get_contact",
    tag = "contacts",
    summary = "Read a contact",
    params(("contact" = ContactId, Path, description = "The contact")),
    responses((status = 200, description = "The contact", body = ContactProfile))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
) -> Result<Json<ContactProfile>, ApiError> {
    Ok(Json(find(&state, &caller, id).await?))
}

/// Text fields: `null` clears them.
fn text_field(
    body: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<Option<String>> {
    match body.get(field)? {
        Value::Null => Some(None),
        Value::String(s) if s.trim().is_empty() => Some(None),
        Value::String(s) if s.chars().count() <= max => Some(Some(s.trim().to_string())),
        Value::String(_) => {
            errors.push(FieldError::new(
                field,
                format!("must be at most {max} characters"),
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(field, "must be a string or null"));
            None
        }
    }
}

/// The patch a request body asks for, or every problem with it.
fn patch_from(body: Value) -> Result<ContactPatch, Vec<FieldError>> {
    let Value::Object(body) = body else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in body.keys() {
        if !["name", "language", "notes", "labels", "attributes"].contains(&key.as_str()) {
            errors.push(FieldError::new(key.clone(), "is not a contact field"));
        }
    }
    let mut patch = ContactPatch {
        name: text_field(&body, "name", 200, &mut errors),
        language: text_field(&body, "language", 3, &mut errors),
        notes: text_field(&body, "notes", 10_000, &mut errors),
        ..Default::default()
    };
    if let Some(Some(language)) = &patch.language {
        if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_lowercase()) {
            errors.push(FieldError::new(
                "language",
                "must be an ISO 639 code such as `en` or `pt`",
            ));
        }
    }
    match body.get("labels") {
        None => {}
        Some(Value::Array(items)) if items.len() <= 50 => {
            let mut labels = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(l) if valid_key(l) => labels.push(l.to_string()),
                    _ => errors.push(FieldError::new(format!("labels[{i}]"), KEY_RULE)),
                }
            }
            labels.sort();
            labels.dedup();
            patch.labels = Some(labels);
        }
        Some(_) => errors.push(FieldError::new(
            "labels",
            "must be a list of at most 50 labels",
        )),
    }
    match body.get("attributes") {
        None => {}
        Some(Value::Object(map)) if map.len() <= 50 => {
            let mut attributes = BTreeMap::new();
            for (key, value) in map {
                let field = format!("attributes.{key}");
                if !valid_key(key) {
                    errors.push(FieldError::new(field, KEY_RULE));
                    continue;
                }
                let value = match value {
                    Value::Null => None,
                    Value::String(s) if !s.is_empty() && s.chars().count() <= 500 => {
                        Some(s.clone())
                    }
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => {
                        errors.push(FieldError::new(
                            field,
                            "must be text (1-500 characters), a number, true/false, or null to remove it",
                        ));
                        continue;
                    }
                };
                attributes.insert(key.clone(), value);
            }
            patch.attributes = attributes;
        }
        Some(_) => errors.push(FieldError::new(
            "attributes",
            "must be an object of at most 50 attributes",
        )),
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

#[utoipa::path(
    patch,
    path = "/contacts/{contact}",
    operation_id = "update_contact",
    tag = "contacts",
    summary = "Change a contact",
    description = "`labels` replace the list; an attribute set to `null` is removed.",
    params(("contact" = ContactId, Path, description = "The contact")),
    request_body = crate::store::ContactPatch,
    responses((status = 200, description = "The contact", body = ContactProfile))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
    Json(body): Json<Value>,
) -> Result<Json<ContactProfile>, ApiError> {
    find(&state, &caller, id).await?;
    let patch = patch_from(body).map_err(ApiError::Invalid)?;
    let contact = state
        .store
        .update_contact(id, &patch)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no contact {id}")))?;
    crate::accounts::audit(
        state.store.as_ref(),
        &caller,
        "contact.update",
        Some(id.to_string()),
        serde_json::json!({"labels": patch.labels, "attributes": patch.attributes.keys().collect::<Vec<_>>()}),
    )
    .await;
    Ok(Json(contact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_is_checked_field_by_field() {
        let patch = patch_from(json!({
            "name": "Maria Silva", "language": "pt", "notes": null,
            "labels": ["vip", "vip", "b2b"], "attributes": {"crm_case": "4711", "orders": 3, "old": null}
        }))
        .unwrap();
        assert_eq!(patch.name, Some(Some("Maria Silva".into())));
        assert_eq!(patch.notes, Some(None));
        assert_eq!(patch.labels, Some(vec!["b2b".into(), "vip".into()]));
        assert_eq!(patch.attributes["orders"], Some("3".into()));
        assert_eq!(patch.attributes["old"], None);
        let errors = patch_from(json!({
            "language": "Portuguese", "labels": ["VIP!"], "attributes": {"Bad Key": "x", "list": [1]},
            "phone": "123"
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "phone",
                "language",
                "labels[0]",
                "attributes.Bad Key",
                "attributes.list"
            ]
        );
        assert!(attribute_filter("crm_case:4711").is_ok());
        assert!(attribute_filter("crm_case").is_err());
        assert!(attribute_filter("Bad:1").is_err());
    }
}
