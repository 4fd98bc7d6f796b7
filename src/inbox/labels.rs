//! Conversation labels: a workspace's owners define them (a name and a colour of the palette);
//! the people who answer the inbox put them on conversations and take them off, and filter the
//! inbox by them.

use super::InboxError;
use crate::accounts::Caller;
use crate::domain::{Conversation, FieldError, Label, LabelColour, LabelId, WorkspaceId};
use crate::store::{Store, StoreError};

/// The longest label name.
pub const MAX_NAME: usize = 32;

const NAME_RULE: &str =
    "must be 1-32 characters of a-z, 0-9, '-' and '_', starting with a letter or digit";

/// A label name as stored: trimmed and lowercased ("VIP " is `vip`), then checked.
pub fn label_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(FieldError::new(field, NAME_RULE))
    }
}

fn invalid(e: FieldError) -> InboxError {
    InboxError::Invalid(vec![e])
}

/// Creates a label of the caller's workspace. Recorded in the audit log.
pub async fn create(
    store: &dyn Store,
    caller: &Caller,
    name: &str,
    colour: LabelColour,
) -> Result<Label, InboxError> {
    let name = label_name("name", name).map_err(invalid)?;
    let label = store.create_label(caller.workspace, &name, colour).await?;
    crate::accounts::audit(
        store,
        caller,
        "label.create",
        Some(label.id.to_string()),
        serde_json::json!({ "name": label.name, "colour": colour }),
    )
    .await;
    Ok(label)
}

/// Renames a label or changes its colour; the conversations carrying it keep it.
pub async fn update(
    store: &dyn Store,
    caller: &Caller,
    id: LabelId,
    name: Option<&str>,
    colour: Option<LabelColour>,
) -> Result<Label, InboxError> {
    let name = name
        .map(|n| label_name("name", n))
        .transpose()
        .map_err(invalid)?;
    let label = store
        .update_label(caller.workspace, id, name.as_deref(), colour)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no label {id}")))?;
    crate::accounts::audit(
        store,
        caller,
        "label.update",
        Some(id.to_string()),
        serde_json::json!({ "name": label.name, "colour": label.colour }),
    )
    .await;
    Ok(label)
}

/// Deletes a label, taking it off every conversation.
pub async fn delete(store: &dyn Store, caller: &Caller, id: LabelId) -> Result<(), InboxError> {
    if !store.delete_label(caller.workspace, id).await? {
        return Err(StoreError::NotFound(format!("no label {id}")).into());
    }
    crate::accounts::audit(
        store,
        caller,
        "label.delete",
        Some(id.to_string()),
        serde_json::Value::Null,
    )
    .await;
    Ok(())
}

/// The workspace's label named `name` (as typed: trimmed, any case), or why not, as `field`.
pub async fn named(
    store: &dyn Store,
    ws: WorkspaceId,
    field: &str,
    name: &str,
) -> Result<Label, InboxError> {
    let name = label_name(field, name).map_err(invalid)?;
    store.label_by_name(ws, &name).await?.ok_or_else(|| {
        invalid(FieldError::new(
            field,
            format!("no label `{name}` in this workspace (owners create labels in Settings)"),
        ))
    })
}

/// Puts the label named `name` on `conversation` (`on`) or takes it off; the labels on it now.
/// Doing what is already done changes nothing and is no event.
pub async fn set(
    store: &dyn Store,
    conversation: &Conversation,
    name: &str,
    on: bool,
) -> Result<Vec<Label>, InboxError> {
    let label = named(store, conversation.workspace_id, "label", name).await?;
    let (labels, _) = store
        .set_conversation_label(conversation.id, &label, on)
        .await?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::label_name;

    #[test]
    fn label_names_are_short_lowercase_words() {
        for (raw, expected) in [
            ("vip", Some("vip")),
            ("  VIP ", Some("vip")),
            ("refund-2026", Some("refund-2026")),
            ("follow_up", Some("follow_up")),
            ("9lives", Some("9lives")),
            ("", None),
            ("   ", None),
            ("-vip", None),
            ("_x", None),
            ("two words", None),
            ("café", None),
            ("a/b", None),
            ("<b>", None),
            (&"x".repeat(33), None),
        ] {
            assert_eq!(label_name("name", raw).ok().as_deref(), expected, "{raw:?}");
        }
        assert_eq!(label_name("name", &"x".repeat(32)).unwrap().len(), 32);
        let refused = label_name("label", "a b").unwrap_err();
        assert_eq!(refused.field, "label");
        assert!(refused.message.contains("a-z, 0-9"), "{}", refused.message);
    }
}
