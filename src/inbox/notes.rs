//! Private notes: the workspace's people write them on a conversation for each other. A note is
//! kept with the conversation and shown in its thread, and never goes to the customer: it is
//! not a message, so neither the outbox nor the bot's history ever reads it.
//!
//! A note may mention people with `@`: `@ana` is the member whose email starts `ana@`, or else
//! the one whose name, without spaces, is `ana` (`@AnaSilva` for "Ana Silva"), or else the one
//! whose first name is `Ana` when only one member has it. Case does not matter; a `.`, `-` or
//! `_` ending the word is punctuation (`@ana.` at the end of a sentence). A mention is resolved
//! when the note is written, among the members of the conversation's workspace (everyone there
//! reads the inbox); a word that names nobody, or more than one person, stays plain text, and
//! mentioning yourself notifies nobody. Each person mentioned gets a `note.mentioned` event on
//! their own streams.

use std::ops::Range;

use super::InboxError;
use crate::accounts::Caller;
use crate::domain::{Conversation, FieldError, Note, UserId};
use crate::store::{Member, NewNote, Store};

/// The longest note, in characters.
pub const MAX_CHARS: usize = 4000;

/// The most notes a thread shows and the API lists.
pub const SHOWN: u32 = 500;

/// The longest word after `@` that is read as a mention.
const MAX_MENTION: usize = 64;

/// A note's text as stored (trimmed), or why it is refused.
pub fn check_text(raw: &str) -> Result<&str, FieldError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldError::new("text", "must not be empty"));
    }
    if text.chars().count() > MAX_CHARS {
        return Err(FieldError::new(
            "text",
            format!("must be at most {MAX_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            "text",
            "must not contain NUL or other control characters",
        ));
    }
    Ok(text)
}

fn mention_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The `@words` of `text`: where each is (the `@` included) and the word, lowercased. An `@`
/// inside a word (an email address, `a@b`) is no mention.
pub fn mentions(text: &str) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && !previous.is_some_and(|p| mention_char(p) || p == '@');
        previous = Some(c);
        if !starts {
            continue;
        }
        let mut end = at + 1;
        while let Some(&(i, next)) = chars.peek() {
            if !mention_char(next) {
                break;
            }
            end = i + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let word = text[at + 1..end].trim_end_matches(['.', '-', '_']);
        if !word.is_empty() && word.chars().count() <= MAX_MENTION {
            let end = at + 1 + word.len();
            found.push((at..end, word.to_lowercase()));
        }
    }
    found
}

/// The member `word` (lowercased, without its `@`) names, by the rule above; `None` for
/// nobody or several.
pub fn resolve<'m>(word: &str, members: &'m [Member]) -> Option<&'m Member> {
    let only = |hits: Vec<&'m Member>| (hits.len() == 1).then(|| hits[0]);
    let by_email = members
        .iter()
        .filter(|m| {
            m.user
                .email
                .split('@')
                .next()
                .is_some_and(|local| local.to_lowercase() == word)
        })
        .collect::<Vec<_>>();
    if !by_email.is_empty() {
        return only(by_email);
    }
    let squeezed =
        |name: &str| -> String { name.split_whitespace().collect::<String>().to_lowercase() };
    let by_name: Vec<_> = members
        .iter()
        .filter(|m| squeezed(&m.user.name) == word)
        .collect();
    if !by_name.is_empty() {
        return only(by_name);
    }
    only(
        members
            .iter()
            .filter(|m| {
                m.user
                    .name
                    .split_whitespace()
                    .next()
                    .is_some_and(|first| first.to_lowercase() == word)
            })
            .collect(),
    )
}

/// How `member` is mentioned among `members`: the first of their email's local part, their
/// name without spaces and their first name that names them alone (see [`resolve`]), lower-case;
/// `None` when none does (two people with one email name and one full name). The console offers
/// it as someone types `@`.
pub fn handle(member: &Member, members: &[Member]) -> Option<String> {
    let local = member.user.email.split('@').next().unwrap_or_default();
    let squeezed: String = member.user.name.split_whitespace().collect();
    let first = member
        .user
        .name
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let found = [local, squeezed.as_str(), first]
        .into_iter()
        .map(str::to_lowercase)
        .filter(|word| {
            !word.is_empty()
                && word.chars().count() <= MAX_MENTION
                && word.chars().all(mention_char)
                && mentions(&format!("@{word}")).first().map(|(_, w)| w) == Some(word)
        })
        .find(|word| resolve(word, members).is_some_and(|m| m.user.id == member.user.id));
    found
}

/// The people `text` mentions among `members`, each once, in the order first mentioned,
/// leaving out `author`.
pub fn mentioned(text: &str, members: &[Member], author: Option<UserId>) -> Vec<UserId> {
    let mut ids = Vec::new();
    for (_, word) in mentions(text) {
        if let Some(m) = resolve(&word, members) {
            if Some(m.user.id) != author && !ids.contains(&m.user.id) {
                ids.push(m.user.id);
            }
        }
    }
    ids
}

/// Writes the caller's note on `conversation`, its mentions resolved among the workspace's
/// members; each person mentioned is told through their event stream.
pub async fn add(
    store: &dyn Store,
    caller: &Caller,
    conversation: &Conversation,
    text: &str,
) -> Result<Note, InboxError> {
    let text = check_text(text).map_err(|e| InboxError::Invalid(vec![e]))?;
    let members = store.members(conversation.workspace_id).await?;
    let author = caller.actor.user();
    let author_name = match author {
        Some(id) => match members.iter().find(|m| m.user.id == id) {
            Some(m) => m.user.name.clone(),
            None => store
                .user(id)
                .await?
                .map(|u| u.name)
                .unwrap_or_else(|| caller.actor.label()),
        },
        None => "API key".to_string(),
    };
    let mentions = mentioned(text, &members, author);
    let note = store
        .add_note(
            conversation.workspace_id,
            conversation.id,
            NewNote {
                author_id: author,
                author_name: &author_name,
                text,
                mentions: &mentions,
            },
        )
        .await?;
    tracing::info!(
        conversation = %conversation.id,
        note = %note.id,
        mentions = mentions.len(),
        "private note written"
    );
    Ok(note)
}

/// A note's text cut into plain parts and mentions of the people it notified, for showing:
/// `(text, true)` for a mention of one of `notified`.
pub fn segments(text: &str, members: &[Member], notified: &[UserId]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    for (range, word) in mentions(text) {
        let known = resolve(&word, members).is_some_and(|m| notified.contains(&m.user.id));
        if !known {
            continue;
        }
        if range.start > at {
            out.push((text[at..range.start].to_string(), false));
        }
        out.push((text[range.clone()].to_string(), true));
        at = range.end;
    }
    if at < text.len() {
        out.push((text[at..].to_string(), false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MemberRole, User};

    fn member(email: &str, name: &str) -> Member {
        Member {
            user: User {
                id: UserId::new(),
                email: email.into(),
                name: name.into(),
                instance_owner: false,
                created_at: chrono::Utc::now(),
            },
            role: MemberRole::Agent,
        }
    }

    #[test]
    fn a_handle_mentions_its_person_alone() {
        let members = vec![
            member("ana@shop.example", "Ana Silva"),
            member("ana@other.example", "Ana Costa"),
            member("rui.p@shop.example", "Rui Pereira"),
            member("x@shop.example", "Ana Silva"),
        ];
        // Two "ana@" emails: the full name names Ana Costa alone.
        assert_eq!(handle(&members[1], &members).as_deref(), Some("anacosta"));
        assert_eq!(handle(&members[2], &members).as_deref(), Some("rui.p"));
        assert_eq!(handle(&members[3], &members).as_deref(), Some("x"));
        // Nothing names the first Ana alone: her email name and her full name are shared.
        assert_eq!(handle(&members[0], &members), None);
        for m in &members[1..] {
            let word = handle(m, &members).unwrap();
            let named = mentioned(&format!("cc @{word}, thanks"), &members, None);
            assert_eq!(named, vec![m.user.id], "{word}");
        }
    }

    fn words(text: &str) -> Vec<String> {
        mentions(text).into_iter().map(|(_, w)| w).collect()
    }

    #[test]
    fn mentions_are_at_words_not_emails() {
        for (text, expected) in [
            ("@ana can you look?", vec!["ana"]),
            ("ask @Ana.", vec!["ana"]),
            (
                "cc @ana.silva, @rui_p and @joão",
                vec!["ana.silva", "rui_p", "joão"],
            ),
            ("(@ana)", vec!["ana"]),
            ("@ana@rui", vec!["ana"]),
            ("write to ana@casanube.example", vec![]),
            ("an @ alone", vec![]),
            ("@@ana", vec![]),
            ("@-", vec![]),
            ("", vec![]),
        ] {
            assert_eq!(words(text), expected, "{text:?}");
        }
        let long = format!("@{}", "a".repeat(65));
        assert!(words(&long).is_empty());
        // Ranges cover the `@` and the word, not the punctuation after it.
        let text = "ok @Ana.";
        let (range, _) = &mentions(text)[0];
        assert_eq!(&text[range.clone()], "@Ana");
    }

    #[test]
    fn mentions_resolve_by_email_then_name_then_a_unique_first_name() {
        let ana = member("ana@casanube.example", "Ana Silva");
        let rui = member("rui.p@casanube.example", "Rui Pereira");
        let rita = member("rita@casanube.example", "Rui Costa");
        let members = vec![ana.clone(), rui.clone(), rita.clone()];
        let who = |word: &str| resolve(word, &members).map(|m| m.user.email.clone());
        assert_eq!(who("ana").as_deref(), Some("ana@casanube.example"));
        assert_eq!(who("rui.p").as_deref(), Some("rui.p@casanube.example"));
        assert_eq!(who("anasilva").as_deref(), Some("ana@casanube.example"));
        assert_eq!(who("ruicosta").as_deref(), Some("rita@casanube.example"));
        // Two members are called Rui: `@rui` names nobody.
        assert_eq!(who("rui"), None);
        assert_eq!(who("bruno"), None);
        assert_eq!(
            mentioned("@Ana and @rui.p, also @ana and @nobody", &members, None),
            vec![ana.user.id, rui.user.id]
        );
        // Mentioning yourself notifies nobody.
        assert_eq!(
            mentioned("note to @ana", &members, Some(ana.user.id)),
            Vec::<UserId>::new()
        );
    }

    #[test]
    fn note_texts_are_checked() {
        assert_eq!(check_text("  hello \n").unwrap(), "hello");
        assert!(check_text("line one\nline two\tend").is_ok());
        for bad in ["", "   \n ", "a\0b", "bell\u{7}"] {
            assert_eq!(check_text(bad).unwrap_err().field, "text", "{bad:?}");
        }
        assert!(check_text(&"é".repeat(MAX_CHARS)).is_ok());
        assert!(check_text(&"é".repeat(MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn only_resolved_mentions_are_marked() {
        let ana = member("ana@casanube.example", "Ana Silva");
        let members = vec![ana.clone()];
        assert_eq!(
            segments("@ana, see @bruno.", &members, &[ana.user.id]),
            vec![
                ("@ana".to_string(), true),
                (", see @bruno.".to_string(), false)
            ]
        );
        assert_eq!(
            segments("plain", &members, &[]),
            vec![("plain".into(), false)]
        );
    }
}
