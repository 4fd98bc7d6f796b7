//! Canned responses: a workspace's owners keep prepared replies under short codes; a person
//! answering types `/` and the code to insert one, its variables filled for the conversation
//! and for them. Only the variables people can be given are accepted when one is saved.

use super::InboxError;
use crate::accounts::Caller;
use crate::domain::{CannedResponse, CannedResponseId, Conversation, FieldError};
use crate::store::{Store, StoreError};

/// The variables a canned response may use.
pub const VARIABLES: [&str; 3] = ["contact.name", "contact.phone", "agent.name"];

/// The longest short code.
pub const MAX_CODE: usize = 32;

/// The longest text (a WhatsApp message's limit).
pub const MAX_CONTENT: usize = 4096;

/// What the variables stand for in one conversation, for one person.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// The customer's name (empty when unknown).
    pub contact_name: String,
    /// The customer's number, as `+<digits>`.
    pub contact_phone: String,
    /// The name of the person answering (empty for an API key).
    pub agent_name: String,
}

impl Values {
    /// The values of `conversation` for `agent_name`.
    pub fn of(conversation: &Conversation, agent_name: Option<&str>) -> Self {
        Self {
            contact_name: conversation.contact.name.clone().unwrap_or_default(),
            contact_phone: format!("+{}", conversation.contact.wa_id),
            agent_name: agent_name.unwrap_or_default().to_string(),
        }
    }

    fn get(&self, variable: &str) -> Option<&str> {
        match variable {
            "contact.name" => Some(&self.contact_name),
            "contact.phone" => Some(&self.contact_phone),
            "agent.name" => Some(&self.agent_name),
            _ => None,
        }
    }
}

/// A piece of a canned response's text.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{{ name }}`, the name trimmed.
    Variable(&'a str),
}

/// The text split at its `{{ }}`s; an unclosed `{{` is an error.
fn pieces(content: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "has a `{{` that is not closed with `}}`".to_string())?;
        out.push(Piece::Variable(after[..close].trim()));
        rest = &after[close + 2..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// A short code as stored: trimmed, lowercased and without a leading `/`, then checked.
pub fn short_code(raw: &str) -> Result<String, FieldError> {
    let code = raw.trim().trim_start_matches('/').to_lowercase();
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(FieldError::new(
            "short_code",
            "must be 1-32 characters of a-z, 0-9, '-' and '_'",
        ))
    }
}

/// A canned response's text, checked: not empty, within a message's length, and using only
/// [`VARIABLES`] (an unknown one is named in the error).
pub fn content(raw: &str) -> Result<String, FieldError> {
    let err = |m: String| FieldError::new("content", m);
    let text = raw.trim();
    if text.is_empty() {
        return Err(err("must not be empty".into()));
    }
    if text.chars().count() > MAX_CONTENT {
        return Err(err(format!("must be at most {MAX_CONTENT} characters")));
    }
    for piece in pieces(text).map_err(err)? {
        if let Piece::Variable(name) = piece {
            if !VARIABLES.contains(&name) {
                return Err(err(format!(
                    "uses the unknown variable {{{{{name}}}}}; the variables are {}",
                    VARIABLES
                        .iter()
                        .map(|v| format!("{{{{{v}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(text.to_string())
}

/// The text with its variables filled in. Stored texts were checked; a variable that is not
/// known (none should be) is left as written.
pub fn render(content: &str, values: &Values) -> String {
    let Ok(pieces) = pieces(content) else {
        return content.to_string();
    };
    let mut out = String::with_capacity(content.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable(name) => match values.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("{{");
                    out.push_str(name);
                    out.push_str("}}");
                }
            },
        }
    }
    out
}

fn checked(
    code: Option<&str>,
    text: Option<&str>,
) -> Result<(Option<String>, Option<String>), InboxError> {
    let mut errors = Vec::new();
    let code = code.map(short_code).transpose().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let text = text.map(content).transpose().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if errors.is_empty() {
        Ok((code, text))
    } else {
        Err(InboxError::Invalid(errors))
    }
}

/// Creates a canned response of the caller's workspace.
pub async fn create(
    store: &dyn Store,
    caller: &Caller,
    code: &str,
    text: &str,
) -> Result<CannedResponse, InboxError> {
    let (code, text) = checked(Some(code), Some(text))?;
    let (code, text) = (code.unwrap_or_default(), text.unwrap_or_default());
    Ok(store
        .create_canned_response(caller.workspace, &code, &text)
        .await?)
}

/// Changes a canned response's short code or text.
pub async fn update(
    store: &dyn Store,
    caller: &Caller,
    id: CannedResponseId,
    code: Option<&str>,
    text: Option<&str>,
) -> Result<CannedResponse, InboxError> {
    let (code, text) = checked(code, text)?;
    Ok(store
        .update_canned_response(caller.workspace, id, code.as_deref(), text.as_deref())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no canned response {id}")))?)
}

/// Deletes a canned response.
pub async fn delete(
    store: &dyn Store,
    caller: &Caller,
    id: CannedResponseId,
) -> Result<(), InboxError> {
    if store.delete_canned_response(caller.workspace, id).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("no canned response {id}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            contact_name: "Ana Costa".into(),
            contact_phone: "+351912345678".into(),
            agent_name: "Rui".into(),
        }
    }

    #[test]
    fn variables_are_filled_where_they_stand() {
        for (text, expected) in [
            ("Hi {{contact.name}}!", "Hi Ana Costa!"),
            (
                "{{agent.name}} here; we call {{ contact.phone }} today.",
                "Rui here; we call +351912345678 today.",
            ),
            ("No variables", "No variables"),
            ("{{contact.name}}{{contact.name}}", "Ana CostaAna Costa"),
            ("Braces { alone } stay", "Braces { alone } stay"),
        ] {
            assert_eq!(render(text, &values()), expected, "{text}");
        }
    }

    #[test]
    fn only_known_variables_are_saved() {
        assert_eq!(
            content("  Hi {{contact.name}}, {{agent.name}} at {{contact.phone}} ").unwrap(),
            "Hi {{contact.name}}, {{agent.name}} at {{contact.phone}}"
        );
        let unknown = content("Hi {{contact.email}}").unwrap_err();
        assert_eq!(unknown.field, "content");
        assert!(
            unknown.message.contains("{{contact.email}}")
                && unknown.message.contains("{{contact.name}}"),
            "{}",
            unknown.message
        );
        assert!(content("Hi {{contact.name")
            .unwrap_err()
            .message
            .contains("not closed"));
        assert!(content("{{}}").is_err());
        assert!(content("   ").is_err());
        assert!(content(&"x".repeat(MAX_CONTENT + 1)).is_err());
        assert!(content(&"é".repeat(MAX_CONTENT)).is_ok());
    }

    #[test]
    fn short_codes_are_lowercase_words() {
        assert_eq!(short_code(" /Refund ").unwrap(), "refund");
        assert_eq!(short_code("opening-hours_2").unwrap(), "opening-hours_2");
        for bad in ["", "/", "two words", "ação", &"x".repeat(33)] {
            assert!(short_code(bad).is_err(), "{bad:?}");
        }
    }
}
