//! Contacts: what a business keeps about its customers (name, language, notes, labels and its
//! own attributes) and the file that carries them in and out. The JSON API and the console call
//! these, so a contact is checked by one set of rules whichever way it changes: a JSON patch
//! ([`patch_from_json`]), the console's form ([`patch_from_form`]) or a CSV import
//! ([`read_import`]), which is checked row by row and written all at once or not at all.
//! Everyone in a workspace reads its contacts; owners and inbox agents change them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::accounts::Caller;
use crate::domain::{is_business_scoped_user_id, Channel, ContactId, FieldError, ProviderKind};
use crate::store::{
    ContactFilter, ContactImport, ContactPatch, ContactProfile, ImportCounts, Store, StoreError,
};

/// The longest name.
pub const MAX_NAME: usize = 200;
/// The longest notes.
pub const MAX_NOTES: usize = 10_000;
/// The most labels on one contact.
pub const MAX_LABELS: usize = 50;
/// The most attributes on one contact.
pub const MAX_ATTRIBUTES: usize = 50;
/// The longest attribute value.
pub const MAX_VALUE: usize = 500;
/// The most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// The largest import file.
pub const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;
/// The most problems an import reports (a file wrong throughout says so once it has this many).
const MAX_PROBLEMS: usize = 500;

/// Why a contact change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// Bad fields.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// An import file with problems: nothing of it was written.
    #[error("the file was not imported: {} problem(s)", .0.len())]
    Rejected(Vec<RowProblem>),
    /// No such contact in the caller's workspace.
    #[error("no contact {0}")]
    NotFound(ContactId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One problem of an import file: where (the line the row starts on, the column) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowProblem {
    /// The file's line (1 is the header).
    pub line: u64,
    /// The column's name, or empty for the whole row or file.
    pub column: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl RowProblem {
    fn new(line: u64, column: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            column: column.into(),
            message: message.into(),
        }
    }
}

/// Labels and attribute keys: 1-64 characters of `a-z`, `0-9`, `-`, `_`, `.` and `:`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c))
}

/// The rule [`valid_key`] checks, in words.
pub const KEY_RULE: &str = "must be 1-64 characters of a-z, 0-9, '-', '_', '.' or ':'";

/// A name as kept: trimmed, empty is none; at most [`MAX_NAME`] characters and no control
/// characters.
pub fn check_name(raw: &str) -> Result<Option<String>, String> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must be one line of text".into());
    }
    Ok((!name.is_empty()).then(|| name.to_string()))
}

/// A language as kept: trimmed and lowercased, empty is none; an ISO 639 code.
pub fn check_language(raw: &str) -> Result<Option<String>, String> {
    let language = raw.trim().to_lowercase();
    if language.is_empty() {
        return Ok(None);
    }
    if (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_lowercase()) {
        Ok(Some(language))
    } else {
        Err("must be an ISO 639 code such as `en` or `pt`".into())
    }
}

/// Notes as kept: trimmed, lines ending in `\n` (a browser's form sends `\r\n`), empty is
/// none; at most [`MAX_NOTES`] characters, lines and tabs but no other control characters.
pub fn check_notes(raw: &str) -> Result<Option<String>, String> {
    let notes = raw.replace("\r\n", "\n").replace('\r', "\n");
    let notes = notes.trim();
    if notes.chars().count() > MAX_NOTES {
        return Err(format!("must be at most {MAX_NOTES} characters"));
    }
    if notes
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err("must be text (a control character is in it)".into());
    }
    Ok((!notes.is_empty()).then(|| notes.to_string()))
}

/// Labels as typed in one field: separated by commas, semicolons or spaces; lowercased,
/// sorted, each once.
pub fn check_labels(raw: &str) -> Result<Vec<String>, String> {
    let mut labels = BTreeSet::new();
    for label in raw
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|l| !l.is_empty())
    {
        let label = label.to_lowercase();
        if !valid_key(&label) {
            return Err(format!("`{label}` {KEY_RULE}"));
        }
        labels.insert(label);
    }
    if labels.len() > MAX_LABELS {
        return Err(format!("must be at most {MAX_LABELS} labels"));
    }
    Ok(labels.into_iter().collect())
}

/// An attribute value as kept: 1-[`MAX_VALUE`] characters of one line.
pub fn check_value(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > MAX_VALUE || value.chars().any(char::is_control)
    {
        return Err(format!("must be one line of 1-{MAX_VALUE} characters"));
    }
    Ok(value.to_string())
}

/// A customer's number as kept: a phone number in international form (country code first;
/// `+`, spaces, dashes, dots and brackets are dropped) as its digits, or a business-scoped
/// user id as it is. The second value is the user id, when it is one.
pub fn check_number(raw: &str) -> Result<(String, Option<String>), String> {
    let raw = raw.trim();
    if is_business_scoped_user_id(raw) {
        return Ok((raw.to_string(), Some(raw.to_string())));
    }
    const RULE: &str = "must be a phone number with its country code (such as +55 11 91234-5678) \
        or a WhatsApp user id (such as US.13491208655302741918)";
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    if rest
        .chars()
        .any(|c| !(c.is_ascii_digit() || " -.()".contains(c)))
    {
        return Err(RULE.into());
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(RULE.into());
    }
    if digits.starts_with('0') {
        return Err("must start with the country code, not 0 or 00".into());
    }
    if !(7..=15).contains(&digits.len()) {
        return Err("must have 7 to 15 digits with the country code".into());
    }
    Ok((digits, None))
}

/// The patch a JSON body asks for, or every problem with it: `null` or `""` clears a text
/// field, `labels` replace the list, an attribute set to `null` is removed.
pub fn patch_from_json(body: Value) -> Result<ContactPatch, Vec<FieldError>> {
    let Value::Object(body) = body else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in body.keys() {
        if !["name", "language", "notes", "labels", "attributes"].contains(&key.as_str()) {
            errors.push(FieldError::new(key.clone(), "is not a contact field"));
        }
    }
    let mut text =
        |field: &str, check: fn(&str) -> Result<Option<String>, String>| match body.get(field)? {
            Value::Null => Some(None),
            Value::String(s) => match check(s) {
                Ok(v) => Some(v),
                Err(message) => {
                    errors.push(FieldError::new(field, message));
                    None
                }
            },
            _ => {
                errors.push(FieldError::new(field, "must be a string or null"));
                None
            }
        };
    let mut patch = ContactPatch {
        name: text("name", check_name),
        language: text("language", check_language),
        notes: text("notes", check_notes),
        ..Default::default()
    };
    match body.get("labels") {
        None => {}
        Some(Value::Array(items)) if items.len() <= MAX_LABELS => {
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
        Some(Value::Object(map)) if map.len() <= MAX_ATTRIBUTES => {
            for (key, value) in map {
                let field = format!("attributes.{key}");
                if !valid_key(key) {
                    errors.push(FieldError::new(field, KEY_RULE));
                    continue;
                }
                let value = match value {
                    Value::Null => None,
                    Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_VALUE => {
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
                patch.attributes.insert(key.clone(), value);
            }
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

/// The patch the console's contact form asks for: each field as typed (`labels` in one line,
/// `attributes` a `key = value` line each). The form shows every attribute, so one no longer
/// in it is removed from `current`.
pub fn patch_from_form(
    current: &ContactProfile,
    form: &HashMap<String, String>,
) -> Result<ContactPatch, Vec<FieldError>> {
    let field = |name: &str| form.get(name).map(String::as_str);
    let mut errors = Vec::new();
    let mut text = |name: &str, check: fn(&str) -> Result<Option<String>, String>| {
        let raw = field(name)?;
        check(raw)
            .map_err(|message| errors.push(FieldError::new(name, message)))
            .ok()
    };
    let mut patch = ContactPatch {
        name: text("name", check_name),
        language: text("language", check_language),
        notes: text("notes", check_notes),
        ..Default::default()
    };
    if let Some(raw) = field("labels") {
        match check_labels(raw) {
            Ok(labels) => patch.labels = Some(labels),
            Err(message) => errors.push(FieldError::new("labels", message)),
        }
    }
    if let Some(raw) = field("attributes") {
        let mut given = BTreeMap::new();
        for (i, line) in raw.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                errors.push(FieldError::new(
                    "attributes",
                    format!("line {}: write `key = value`", i + 1),
                ));
                continue;
            };
            let key = key.trim().to_lowercase();
            if !valid_key(&key) {
                errors.push(FieldError::new(
                    "attributes",
                    format!("line {}: the key `{key}` {KEY_RULE}", i + 1),
                ));
                continue;
            }
            match check_value(value) {
                Ok(value) => {
                    given.insert(key, Some(value));
                }
                Err(message) => errors.push(FieldError::new(
                    "attributes",
                    format!("line {}: the value of `{key}` {message}", i + 1),
                )),
            }
        }
        if given.len() > MAX_ATTRIBUTES {
            errors.push(FieldError::new(
                "attributes",
                format!("must be at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        for key in current.attributes.keys() {
            given.entry(key.clone()).or_insert(None);
        }
        patch.attributes = given;
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

/// The contact `id` of the caller's workspace.
pub async fn find(
    store: &dyn Store,
    caller: &Caller,
    id: ContactId,
) -> Result<ContactProfile, ContactError> {
    store
        .contact(id)
        .await?
        .filter(|c| c.workspace_id == caller.workspace)
        .ok_or(ContactError::NotFound(id))
}

/// Applies `patch` to the contact `id` of the caller's workspace; recorded in the audit log
/// (which labels and attribute keys, never the notes or values).
pub async fn update(
    store: &dyn Store,
    caller: &Caller,
    id: ContactId,
    patch: &ContactPatch,
) -> Result<ContactProfile, ContactError> {
    find(store, caller, id).await?;
    let contact = store
        .update_contact(id, patch)
        .await?
        .ok_or(ContactError::NotFound(id))?;
    crate::accounts::audit(
        store,
        caller,
        "contact.update",
        Some(id.to_string()),
        serde_json::json!({
            "labels": patch.labels,
            "attributes": patch.attributes.keys().collect::<Vec<_>>(),
        }),
    )
    .await;
    Ok(contact)
}

/// The columns of the contacts file besides the attributes (`attribute:<key>`), in order.
pub const COLUMNS: [&str; 6] = ["name", "number", "channel", "language", "labels", "notes"];
/// How an attribute's column is named: this, then its key.
pub const ATTRIBUTE_PREFIX: &str = "attribute:";

/// A cell as written to a file people open in spreadsheets: one that a spreadsheet would read
/// as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
/// `'`, and so does one starting with `'`, so that [`from_cell`] gives back what was written.
fn to_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'') => format!("'{value}"),
        _ => value.to_string(),
    }
}

/// A cell as read from a file: the `'` [`to_cell`] puts before a formula's first character
/// is taken off.
fn from_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) => rest,
        _ => cell,
    }
}

/// How the file names a channel: by its name when no other number of the workspace has it,
/// else by its id.
fn channel_key(channel: &Channel, channels: &[Channel]) -> String {
    if channels.iter().filter(|c| c.name == channel.name).count() == 1 {
        channel.name.clone()
    } else {
        channel.id.to_string()
    }
}

/// The workspace's numbers contacts can be with (its sandbox is not one).
async fn real_channels(store: &dyn Store, caller: &Caller) -> Result<Vec<Channel>, StoreError> {
    Ok(store
        .list_channels(Some(caller.workspace), None)
        .await?
        .into_iter()
        .filter(|c| c.provider != ProviderKind::Sandbox)
        .collect())
}

/// The workspace's contacts that `search` finds (all without it) as a CSV file: the columns
/// of [`COLUMNS`] and one per attribute any of them has. Cells a spreadsheet would run as a
/// formula are escaped; [`read_import`] reads the file back to the same contacts.
pub async fn export(
    store: &dyn Store,
    caller: &Caller,
    search: Option<&str>,
) -> Result<Vec<u8>, ContactError> {
    let channels = real_channels(store, caller).await?;
    let mut contacts = Vec::new();
    loop {
        let page = store
            .list_contacts(
                caller.workspace,
                &ContactFilter {
                    search: search.map(str::to_string),
                    limit: 500,
                    offset: contacts.len() as u32,
                    ..Default::default()
                },
            )
            .await?;
        let done = page.len() < 500;
        contacts.extend(page);
        if done {
            break;
        }
    }
    let keys: BTreeSet<&String> = contacts.iter().flat_map(|c| c.attributes.keys()).collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(keys.iter().map(|k| format!("{ATTRIBUTE_PREFIX}{k}")))
        .collect();
    let written = |e: csv::Error| StoreError::Corrupt(format!("cannot write the CSV: {e}"));
    out.write_record(&header).map_err(written)?;
    for c in &contacts {
        let channel = channels
            .iter()
            .find(|ch| ch.id == c.channel_id)
            .map(|ch| channel_key(ch, &channels))
            .unwrap_or_else(|| c.channel_id.to_string());
        let mut record = vec![
            c.name.clone().unwrap_or_default(),
            c.wa_id.clone(),
            channel,
            c.language.clone().unwrap_or_default(),
            c.labels.join("; "),
            c.notes.clone().unwrap_or_default(),
        ];
        record.extend(
            keys.iter()
                .map(|k| c.attributes.get(*k).cloned().unwrap_or_default()),
        );
        out.write_record(record.iter().map(|v| to_cell(v)))
            .map_err(written)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| StoreError::Corrupt(format!("cannot write the CSV: {e}")))?;
    tracing::info!(
        workspace = %caller.workspace,
        contacts = contacts.len(),
        "contacts exported"
    );
    Ok(bytes)
}

/// What a file's header says each column is.
enum Column {
    Name,
    Number,
    Channel,
    Language,
    Labels,
    Notes,
    Attribute(String),
}

/// The line a byte offset of `bytes` is on.
fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

/// Reads a contacts file (UTF-8 CSV whose first line names its columns: `number` at least,
/// and any of [`COLUMNS`] and `attribute:<key>`) into the rows an import writes, checking
/// every row: the number's form, each field's length and characters, the channel (which may
/// be left out when the workspace has one number), the same customer twice. Every problem is
/// reported with its line; one problem and nothing is to be written. An empty cell clears the
/// field (an attribute's cell removes the attribute); a column left out leaves it as it is for
/// attributes, and empty for the rest.
pub fn read_import(bytes: &[u8], channels: &[Channel]) -> Result<Vec<ContactImport>, ContactError> {
    let reject = |line: u64, column: &str, message: &str| {
        ContactError::Rejected(vec![RowProblem::new(line, column, message)])
    };
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(reject(
            0,
            "",
            &format!("the file is larger than {} MiB", MAX_IMPORT_BYTES >> 20),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Err(reject(
                line_of(bytes, e.valid_up_to()),
                "",
                "is not UTF-8 text: save the file as CSV UTF-8",
            ))
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\0') {
        let at = text.find('\0').unwrap_or(0);
        return Err(reject(
            line_of(text.as_bytes(), at),
            "",
            "holds a NUL character: this is not a CSV text file",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) if h.iter().any(|c| !c.trim().is_empty()) => h,
        Some(Err(e)) => return Err(reject(1, "", &format!("cannot be read as CSV: {e}"))),
        _ => {
            return Err(reject(
                1,
                "",
                "the file is empty: its first line names the columns (number, name, ...)",
            ))
        }
    };
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    let mut seen = BTreeSet::new();
    for name in header.iter() {
        let name = name.trim().to_lowercase();
        let column = match name.as_str() {
            "name" => Column::Name,
            "number" => Column::Number,
            "channel" => Column::Channel,
            "language" => Column::Language,
            "labels" => Column::Labels,
            "notes" => Column::Notes,
            other => match other.strip_prefix(ATTRIBUTE_PREFIX) {
                Some(key) if valid_key(key) => Column::Attribute(key.to_string()),
                Some(key) => {
                    problems.push(RowProblem::new(
                        1,
                        &name,
                        format!("the attribute key `{key}` {KEY_RULE}"),
                    ));
                    continue;
                }
                None => {
                    problems.push(RowProblem::new(
                        1,
                        &name,
                        "is not a contact column (name, number, channel, language, labels, notes, attribute:<key>)",
                    ));
                    continue;
                }
            },
        };
        if !seen.insert(name.clone()) {
            problems.push(RowProblem::new(1, &name, "is named twice"));
        }
        columns.push((name, column));
    }
    if !seen.contains("number") {
        problems.push(RowProblem::new(
            1,
            "number",
            "the file needs a number column",
        ));
    }
    if columns
        .iter()
        .filter(|(_, c)| matches!(c, Column::Attribute(_)))
        .count()
        > MAX_ATTRIBUTES
    {
        problems.push(RowProblem::new(
            1,
            "",
            format!("has more than {MAX_ATTRIBUTES} attribute columns"),
        ));
    }
    if !problems.is_empty() {
        return Err(ContactError::Rejected(problems));
    }
    // Which column each cell of a row is: the header's, by position (a column the header
    // refused above has stopped the import already).
    let names: Vec<&(String, Column)> = columns.iter().collect();
    let mut rows = Vec::new();
    let mut counted = 0;
    let mut first_line: HashMap<(String, String), u64> = HashMap::new();
    for record in records {
        if problems.len() >= MAX_PROBLEMS {
            problems.push(RowProblem::new(
                0,
                "",
                format!("and more: the first {MAX_PROBLEMS} problems are listed"),
            ));
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push(RowProblem::new(
                    line,
                    "",
                    "cannot be read as CSV (a quote left open?)",
                ));
                break;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        counted += 1;
        if counted > MAX_IMPORT_ROWS {
            problems.push(RowProblem::new(
                line,
                "",
                format!("the file has more than {MAX_IMPORT_ROWS} contacts: import it in parts"),
            ));
            break;
        }
        if record.len() != names.len() {
            problems.push(RowProblem::new(
                line,
                "",
                format!(
                    "has {} cells where the header names {} columns",
                    record.len(),
                    names.len()
                ),
            ));
            continue;
        }
        let before = problems.len();
        let mut row = ContactImport::default();
        let mut number = None;
        let mut channel_cell = None;
        for ((name, column), cell) in names.iter().map(|c| (&c.0, &c.1)).zip(record.iter()) {
            let cell = from_cell(cell);
            let mut fail = |message: String| problems.push(RowProblem::new(line, name, message));
            match column {
                Column::Name => match check_name(cell) {
                    Ok(v) => row.name = v,
                    Err(m) => fail(m),
                },
                Column::Language => match check_language(cell) {
                    Ok(v) => row.language = v,
                    Err(m) => fail(m),
                },
                Column::Notes => match check_notes(cell) {
                    Ok(v) => row.notes = v,
                    Err(m) => fail(m),
                },
                Column::Labels => match check_labels(cell) {
                    Ok(v) => row.labels = v,
                    Err(m) => fail(m),
                },
                Column::Number if cell.trim().is_empty() => fail("is required".into()),
                Column::Number => match check_number(cell) {
                    Ok(n) => number = Some(n),
                    Err(m) => fail(m),
                },
                Column::Channel => channel_cell = Some(cell.trim()),
                Column::Attribute(key) if cell.trim().is_empty() => {
                    row.attributes.insert(key.clone(), None);
                }
                Column::Attribute(key) => match check_value(cell) {
                    Ok(v) => {
                        row.attributes.insert(key.clone(), Some(v));
                    }
                    Err(m) => fail(m),
                },
            }
        }
        match channel_for(channel_cell.filter(|c| !c.is_empty()), channels) {
            Ok(channel) => row.channel_id = channel,
            Err(message) => problems.push(RowProblem::new(line, "channel", message)),
        }
        let Some((wa_id, user_id)) = number else {
            continue;
        };
        // The same customer twice is named even when the first row has problems of its own.
        let key = (row.channel_id.to_string(), wa_id.clone());
        if let Some(first) = first_line.get(&key) {
            problems.push(RowProblem::new(
                line,
                "number",
                format!("the same customer as line {first}: a number is imported once"),
            ));
            continue;
        }
        first_line.insert(key, line);
        if problems.len() > before {
            continue;
        }
        row.wa_id = wa_id;
        row.user_id = user_id;
        rows.push(row);
    }
    if !problems.is_empty() {
        return Err(ContactError::Rejected(problems));
    }
    if rows.is_empty() {
        return Err(reject(2, "", "the file has no contacts below its header"));
    }
    Ok(rows)
}

/// The channel a row names (by name or id), or the workspace's one number when it names none.
fn channel_for(
    cell: Option<&str>,
    channels: &[Channel],
) -> Result<crate::domain::ChannelId, String> {
    match cell {
        None => match channels {
            [only] => Ok(only.id),
            [] => Err("this workspace has no WhatsApp number yet: connect one first".into()),
            several => Err(format!(
                "is required: this workspace has several numbers ({})",
                several
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        Some(cell) => {
            if let Some(c) = channels.iter().find(|c| c.id.to_string() == cell) {
                return Ok(c.id);
            }
            let named: Vec<&Channel> = channels.iter().filter(|c| c.name == cell).collect();
            match named.as_slice() {
                [only] => Ok(only.id),
                [] => Err(format!("no number of this workspace is named `{cell}`")),
                _ => Err(format!(
                    "several numbers are named `{cell}`: give the channel's id"
                )),
            }
        }
    }
}

/// Imports a contacts file ([`read_import`]) into the caller's workspace in one transaction:
/// all of it, or, with any problem, nothing. Recorded in the audit log.
pub async fn import(
    store: &dyn Store,
    caller: &Caller,
    bytes: &[u8],
) -> Result<ImportCounts, ContactError> {
    let channels = real_channels(store, caller).await?;
    let rows = match read_import(bytes, &channels) {
        Ok(rows) => rows,
        Err(e) => {
            if let ContactError::Rejected(problems) = &e {
                tracing::info!(
                    workspace = %caller.workspace,
                    problems = problems.len(),
                    "a contacts file was refused"
                );
            }
            return Err(e);
        }
    };
    let counts = store.import_contacts(caller.workspace, &rows).await?;
    crate::accounts::audit(
        store,
        caller,
        "contact.import",
        None,
        serde_json::json!({ "created": counts.created, "updated": counts.updated }),
    )
    .await;
    tracing::info!(
        workspace = %caller.workspace,
        created = counts.created,
        updated = counts.updated,
        "contacts imported"
    );
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelId, WorkspaceId};
    use serde_json::json;

    #[test]
    fn a_patch_is_checked_field_by_field() {
        let patch = patch_from_json(json!({
            "name": "Maria Silva", "language": "pt", "notes": null,
            "labels": ["vip", "vip", "b2b"], "attributes": {"crm_case": "4711", "orders": 3, "old": null}
        }))
        .unwrap();
        assert_eq!(patch.name, Some(Some("Maria Silva".into())));
        assert_eq!(patch.notes, Some(None));
        assert_eq!(patch.labels, Some(vec!["b2b".into(), "vip".into()]));
        assert_eq!(patch.attributes["orders"], Some("3".into()));
        assert_eq!(patch.attributes["old"], None);
        let errors = patch_from_json(json!({
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
    }

    fn profile(attributes: &[(&str, &str)]) -> ContactProfile {
        ContactProfile {
            id: ContactId::new(),
            workspace_id: WorkspaceId::new(),
            channel_id: ChannelId::new(),
            wa_id: "351912345678".into(),
            user_id: None,
            name: None,
            language: None,
            notes: None,
            labels: vec![],
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_form_replaces_labels_and_attributes() {
        let form: HashMap<String, String> = [
            ("name", "  Rui Costa "),
            ("language", "PT"),
            ("notes", " Ring twice.\r\nAfter 18:00 "),
            ("labels", "VIP, catering;vip"),
            ("attributes", "crm_case = 4711\n\ntier= gold \n"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let patch = patch_from_form(&profile(&[("old", "1"), ("tier", "silver")]), &form).unwrap();
        assert_eq!(patch.name, Some(Some("Rui Costa".into())));
        assert_eq!(patch.language, Some(Some("pt".into())));
        assert_eq!(patch.notes, Some(Some("Ring twice.\nAfter 18:00".into())));
        assert_eq!(patch.labels, Some(vec!["catering".into(), "vip".into()]));
        assert_eq!(
            patch.attributes,
            BTreeMap::from([
                ("crm_case".into(), Some("4711".into())),
                ("old".into(), None),
                ("tier".into(), Some("gold".into())),
            ])
        );
        let bad: HashMap<String, String> = [("attributes", "no equals sign"), ("language", "xx1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let errors = patch_from_form(&profile(&[]), &bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["language", "attributes"]);
    }

    #[test]
    fn numbers_are_international_or_user_ids() {
        for (raw, expected) in [
            ("+55 11 91234-5678", Ok("5511912345678")),
            ("351912345678", Ok("351912345678")),
            ("(351) 912.345.678", Ok("351912345678")),
            ("US.13491208655302741918", Ok("US.13491208655302741918")),
            ("0044 20 7946 0000", Err("country code")),
            ("12345", Err("7 to 15")),
            ("1234567890123456", Err("7 to 15")),
            ("+55 11 CALL-ME", Err("phone number")),
            ("=1+1", Err("phone number")),
            ("", Err("phone number")),
        ] {
            match (check_number(raw), expected) {
                (Ok((n, _)), Ok(e)) => assert_eq!(n, e, "{raw}"),
                (Err(m), Err(e)) => assert!(m.contains(e), "{raw}: {m}"),
                (got, e) => panic!("{raw}: {got:?}, expected {e:?}"),
            }
        }
        assert_eq!(
            check_number("US.1349").unwrap().1.as_deref(),
            Some("US.1349")
        );
    }

    #[test]
    fn formula_cells_are_escaped_and_read_back() {
        for value in [
            "=HYPERLINK(\"http://evil\")",
            "+351",
            "-2",
            "@SUM(A1)",
            "\tx",
            "'quoted",
            "''twice",
            "plain",
            "",
        ] {
            let cell = to_cell(value);
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t']), "{cell:?}");
            assert_eq!(from_cell(&cell), value);
        }
        assert_eq!(to_cell("=1+1"), "'=1+1");
        // A quote a person typed before ordinary text stays.
        assert_eq!(from_cell("'hello"), "'hello");
    }

    fn channel(name: &str) -> Channel {
        serde_json::from_value(json!({
            "id": ChannelId::new(), "workspace_id": WorkspaceId::new(), "name": name,
            "provider": "meta", "route_key": name, "agent_id": null, "settings": {},
            "state": "connected", "state_detail": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .expect("a channel")
    }

    fn problems(csv: &str, channels: &[Channel]) -> Vec<(u64, String)> {
        match read_import(csv.as_bytes(), channels) {
            Err(ContactError::Rejected(p)) => p
                .into_iter()
                .map(|p| (p.line, format!("{}: {}", p.column, p.message)))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_import_is_checked_row_by_row() {
        let shop = channel("Shop");
        let rows = read_import(
            "\u{feff}Name,Number,Labels,Notes,attribute:crm_case\n\
             Maria,+55 11 91234-5678,vip;b2b,\"Two\nlines\",4711\n\
             '=Rui,351912345678,,,\n"
                .as_bytes(),
            std::slice::from_ref(&shop),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].wa_id, "5511912345678");
        assert_eq!(rows[0].channel_id, shop.id);
        assert_eq!(rows[0].notes.as_deref(), Some("Two\nlines"));
        assert_eq!(rows[0].labels, ["b2b", "vip"]);
        assert_eq!(rows[1].name.as_deref(), Some("=Rui"));
        assert_eq!(rows[1].attributes["crm_case"], None);

        let found = problems(
            "number,name,language\n\
             351912345678,Ana,pt\n\
             12,Bad,pt\n\
             351 912 345 678,Again,pt\n\
             351911111111,Long,portuguese\n\
             351922222222,Too,many,cells\n",
            std::slice::from_ref(&shop),
        );
        let lines: Vec<u64> = found.iter().map(|p| p.0).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{found:?}");
        assert!(found[0].1.starts_with("number: must have 7 to 15 digits"));
        assert!(found[1].1.contains("the same customer as line 2"));
        assert!(found[2].1.starts_with("language:"));
        assert!(found[3].1.contains("4 cells where the header names 3"));

        // A note spanning lines: the next row's line is still right.
        let found = problems(
            "number,notes\n351912345678,\"one\ntwo\nthree\"\nnope,x\n",
            std::slice::from_ref(&shop),
        );
        assert_eq!(found[0].0, 5, "{found:?}");
    }

    #[test]
    fn a_file_is_refused_whole_for_its_header_encoding_and_size() {
        let shop = channel("Shop");
        let one = std::slice::from_ref(&shop);
        assert_eq!(problems("", one)[0].0, 1);
        assert!(problems("name,phone\nA,1\n", one)
            .iter()
            .any(|p| p.1.starts_with("phone: is not a contact column")));
        assert!(problems("name,name\n", one)
            .iter()
            .any(|p| p.1.contains("named twice")));
        assert!(problems("name\nAna\n", one)[0]
            .1
            .contains("needs a number column"));
        assert_eq!(problems("number\n", one)[0].0, 2, "no rows");
        let mut latin1 = b"number,name\n351912345678,Jos".to_vec();
        latin1.extend([0xe9, b'\n']);
        match read_import(&latin1, one) {
            Err(ContactError::Rejected(p)) => {
                assert_eq!(p[0].line, 2);
                assert!(p[0].message.contains("UTF-8"));
            }
            other => panic!("{other:?}"),
        }
        let big = vec![b'a'; MAX_IMPORT_BYTES + 1];
        assert!(matches!(
            read_import(&big, one),
            Err(ContactError::Rejected(p)) if p[0].message.contains("larger")
        ));
        let long = format!("number,name\n351912345678,{}\n", "x".repeat(MAX_NAME + 1));
        assert!(problems(&long, one)[0].1.contains("at most 200"));
        // Several numbers: a row names its own, by name or id.
        let other = channel("Shop");
        let two = [shop.clone(), other.clone()];
        let found = problems("number,channel\n351912345678,\n351912345679,Shop\n", &two);
        assert!(found[0].1.contains("several numbers"), "{found:?}");
        assert!(
            found[1].1.contains("several numbers are named"),
            "{found:?}"
        );
        let rows = read_import(
            format!("number,channel\n351912345678,{}\n", other.id).as_bytes(),
            &two,
        )
        .unwrap();
        assert_eq!(rows[0].channel_id, other.id);
    }
}
