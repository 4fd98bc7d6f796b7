//! [`ContactStore`]: what a business keeps about its customers beyond the WhatsApp profile
//! (language, notes, labels, its own attributes such as a CRM's case id), so that a CRM can
//! find the conversation of its case and people see who they are talking to.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::rows::{db_err, get, now_ms, parse_id, parse_text, placeholders, time, Tx};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ChannelId, ContactId, ConversationId, ConversationStatus, WorkspaceId};

/// A customer as the business knows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContactProfile {
    /// Its id.
    pub id: ContactId,
    /// The workspace (its channel's).
    pub workspace_id: WorkspaceId,
    /// The channel the customer writes to.
    pub channel_id: ChannelId,
    /// WhatsApp id (the number, digits; or the business-scoped user id of a customer known
    /// by no number).
    pub wa_id: String,
    /// Meta's business-scoped user id (`US.13491208655302741918`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Name (the WhatsApp profile's, unless someone changed it).
    pub name: Option<String>,
    /// Language (ISO 639-1), when known.
    pub language: Option<String>,
    /// Free notes.
    pub notes: Option<String>,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// The business's own fields.
    pub attributes: BTreeMap<String, String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Changes to a contact: fields left `None` stay; `Some(None)` clears.
#[derive(Debug, Clone, Default, utoipa::ToSchema)]
pub struct ContactPatch {
    /// Name.
    pub name: Option<Option<String>>,
    /// Language.
    pub language: Option<Option<String>>,
    /// Notes.
    pub notes: Option<Option<String>>,
    /// The labels, replacing the old ones.
    pub labels: Option<Vec<String>>,
    /// Attributes to set (`Some`) or remove (`None`); the others stay.
    pub attributes: BTreeMap<String, Option<String>>,
}

/// Which contacts to list.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only those with this label.
    pub label: Option<String>,
    /// Only those with this attribute value.
    pub attribute: Option<(String, String)>,
    /// Name or number containing this.
    pub search: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Page offset.
    pub offset: u32,
}

/// One of a customer's conversations, as a contact's page lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerConversation {
    /// The conversation.
    pub id: ConversationId,
    /// The number it is with.
    pub channel_id: ChannelId,
    /// That number's name.
    pub channel_name: String,
    /// Its status.
    pub status: ConversationStatus,
    /// Its last message or change.
    pub last_activity_at: DateTime<Utc>,
}

/// One contact as an import writes it, checked: it is made when the channel has no contact of
/// this number (or user id) yet, and otherwise takes these values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactImport {
    /// The channel, one of the workspace's.
    pub channel_id: ChannelId,
    /// The phone number (digits), or the business-scoped user id of a customer known by none.
    pub wa_id: String,
    /// The business-scoped user id, when `wa_id` is one: an existing contact with this user
    /// id is this customer whatever its number.
    pub user_id: Option<String>,
    /// The name (none clears it).
    pub name: Option<String>,
    /// The language (none clears it).
    pub language: Option<String>,
    /// The notes (none clears them).
    pub notes: Option<String>,
    /// The labels, replacing the old ones.
    pub labels: Vec<String>,
    /// Attributes to set (`Some`) or remove (`None`); the others stay.
    pub attributes: BTreeMap<String, Option<String>>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportCounts {
    /// Contacts made.
    pub created: u32,
    /// Contacts that were there and took the file's values.
    pub updated: u32,
}

/// Customers' profiles.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// One contact, with its workspace.
    async fn contact(&self, id: ContactId) -> Result<Option<ContactProfile>, StoreError>;
    /// The workspace's real (not sandbox) contacts, most recently changed first.
    async fn list_contacts(
        &self,
        ws: WorkspaceId,
        filter: &ContactFilter,
    ) -> Result<Vec<ContactProfile>, StoreError>;
    /// Applies `patch` in one transaction; the contact as it is now.
    async fn update_contact(
        &self,
        id: ContactId,
        patch: &ContactPatch,
    ) -> Result<Option<ContactProfile>, StoreError>;
    /// The workspace's real conversations with the customer of `contact`: on any of its
    /// numbers, under the same number or the same user id; the most recent first.
    async fn customer_conversations(
        &self,
        ws: WorkspaceId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<CustomerConversation>, StoreError>;
    /// Writes `rows` into the workspace's contacts in one transaction: all or, on any
    /// failure, nothing. A row's channel must be one of the workspace's (else `NotFound`).
    async fn import_contacts(
        &self,
        ws: WorkspaceId,
        rows: &[ContactImport],
    ) -> Result<ImportCounts, StoreError>;
}

const SELECT: &str =
    "SELECT ct.id, ch.workspace_id, ct.channel_id, ct.wa_id, ct.user_id, ct.name, ct.language, ct.notes,
        ct.created_at, ct.updated_at
    FROM contacts ct JOIN channels ch ON ch.id = ct.channel_id";

/// The conditions that keep rows whose contact (`contact_column`) has `label` and the attribute
/// value `attribute`, their values pushed onto `args`; a condition's placeholders are numbered
/// from the argument's position plus `offset` (the arguments bound before `args`).
pub(super) fn contact_conditions(
    contact_column: &str,
    label: Option<&String>,
    attribute: Option<&(String, String)>,
    args: &mut Vec<String>,
    offset: usize,
) -> Vec<String> {
    let mut conditions = Vec::new();
    if let Some(label) = label {
        args.push(label.clone());
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = {contact_column} AND l.label = ${})",
            args.len() + offset
        ));
    }
    if let Some((key, value)) = attribute {
        args.push(key.clone());
        args.push(value.clone());
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM contact_attributes a WHERE a.contact_id = {contact_column} AND a.key = ${} AND a.value = ${})",
            args.len() - 1 + offset,
            args.len() + offset
        ));
    }
    conditions
}

impl SqlStore {
    /// The profiles of `rows`, their labels and attributes read in one query each.
    async fn profiles(
        &self,
        rows: Vec<sqlx::any::AnyRow>,
    ) -> Result<Vec<ContactProfile>, StoreError> {
        let ids: Vec<String> = rows
            .iter()
            .map(|row| get::<String>(row, "id"))
            .collect::<Result<_, _>>()?;
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        let mut attributes: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        if !ids.is_empty() {
            // `select` of the rows of these contacts, then `order`.
            let by_contact = |select: &str, order: &str| {
                let list = placeholders(1, ids.len());
                let sql = format!("{select} WHERE contact_id IN ({list}) {order}");
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for id in &ids {
                    query = query.bind(id.clone());
                }
                query.fetch_all(&self.read)
            };
            let rows = by_contact(
                "SELECT contact_id, label FROM contact_labels",
                "ORDER BY label",
            )
            .await
            .map_err(db_err)?;
            for r in rows {
                labels
                    .entry(get(&r, "contact_id")?)
                    .or_default()
                    .push(get(&r, "label")?);
            }
            let rows = by_contact("SELECT contact_id, key, value FROM contact_attributes", "")
                .await
                .map_err(db_err)?;
            for r in rows {
                attributes
                    .entry(get(&r, "contact_id")?)
                    .or_default()
                    .insert(get(&r, "key")?, get(&r, "value")?);
            }
        }
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                Ok(ContactProfile {
                    id: parse_id(row, "id")?,
                    workspace_id: parse_id(row, "workspace_id")?,
                    channel_id: parse_id(row, "channel_id")?,
                    wa_id: get(row, "wa_id")?,
                    user_id: get(row, "user_id")?,
                    name: get(row, "name")?,
                    language: get(row, "language")?,
                    notes: get(row, "notes")?,
                    labels: labels.remove(&id).unwrap_or_default(),
                    attributes: attributes.remove(&id).unwrap_or_default(),
                    created_at: time(row, "created_at")?,
                    updated_at: time(row, "updated_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ContactStore for SqlStore {
    async fn contact(&self, id: ContactId) -> Result<Option<ContactProfile>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{SELECT} WHERE ct.id = $1")))
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        Ok(self.profiles(rows).await?.into_iter().next())
    }

    async fn list_contacts(
        &self,
        ws: WorkspaceId,
        filter: &ContactFilter,
    ) -> Result<Vec<ContactProfile>, StoreError> {
        let mut args: Vec<String> = vec![ws.to_string()];
        let mut conditions = vec![
            "ch.workspace_id = $1".to_string(),
            "ch.provider <> 'sandbox'".into(),
        ];
        conditions.extend(contact_conditions(
            "ct.id",
            filter.label.as_ref(),
            filter.attribute.as_ref(),
            &mut args,
            0,
        ));
        if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
            args.push(format!("%{}%", search.trim().to_lowercase()));
            conditions.push(format!(
                "(LOWER(COALESCE(ct.name, '')) LIKE ${n} OR ct.wa_id LIKE ${n})",
                n = args.len()
            ));
        }
        let sql = format!(
            "{SELECT} WHERE {} ORDER BY ct.updated_at DESC, ct.id LIMIT {} OFFSET {}",
            conditions.join(" AND "),
            filter.limit.clamp(1, 500),
            filter.offset
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for a in &args {
            query = query.bind(a.clone());
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        self.profiles(rows).await
    }

    async fn update_contact(
        &self,
        id: ContactId,
        patch: &ContactPatch,
    ) -> Result<Option<ContactProfile>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id_text = id.to_string();
        let exists = sqlx::query("UPDATE contacts SET updated_at = $2 WHERE id = $1")
            .bind(&id_text)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0;
        if !exists {
            return Ok(None);
        }
        for (column, value) in [
            ("name", &patch.name),
            ("language", &patch.language),
            ("notes", &patch.notes),
        ] {
            if let Some(value) = value {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE contacts SET {column} = $2 WHERE id = $1"
                )))
                .bind(&id_text)
                .bind(value.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        if let Some(labels) = &patch.labels {
            set_labels_in(&mut tx, &id_text, labels).await?;
        }
        set_attributes_in(&mut tx, &id_text, &patch.attributes).await?;
        tx.commit().await.map_err(db_err)?;
        self.contact(id).await
    }

    async fn customer_conversations(
        &self,
        ws: WorkspaceId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<CustomerConversation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT cv.id, cv.channel_id, ch.name AS channel_name, cv.status, cv.last_activity_at
             FROM contacts me
             JOIN contacts ct ON ct.wa_id = me.wa_id
                OR (me.user_id IS NOT NULL AND ct.user_id = me.user_id)
             JOIN conversations cv ON cv.contact_id = ct.id
             JOIN channels ch ON ch.id = cv.channel_id
             WHERE me.id = $2 AND ch.workspace_id = $1 AND ch.provider <> 'sandbox'
             ORDER BY cv.last_activity_at DESC, cv.id LIMIT {}",
            limit.clamp(1, 100)
        )))
        .bind(ws.to_string())
        .bind(contact.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(CustomerConversation {
                    id: parse_id(row, "id")?,
                    channel_id: parse_id(row, "channel_id")?,
                    channel_name: get(row, "channel_name")?,
                    status: parse_text(row, "status")?,
                    last_activity_at: time(row, "last_activity_at")?,
                })
            })
            .collect()
    }

    async fn import_contacts(
        &self,
        ws: WorkspaceId,
        rows: &[ContactImport],
    ) -> Result<ImportCounts, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut channels: Vec<ChannelId> = rows.iter().map(|r| r.channel_id).collect();
        channels.sort_by_key(|c| c.to_string());
        channels.dedup();
        for channel in &channels {
            let found =
                sqlx::query("SELECT 1 AS one FROM channels WHERE id = $1 AND workspace_id = $2")
                    .bind(channel.to_string())
                    .bind(ws.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if found.is_none() {
                return Err(StoreError::NotFound(format!("no channel {channel}")));
            }
        }
        let mut counts = ImportCounts::default();
        for row in rows {
            let channel = row.channel_id.to_string();
            // A customer known by a user id is that contact whatever its number.
            let existing: Option<String> = match &row.user_id {
                Some(user) => sqlx::query(
                    "SELECT id FROM contacts WHERE channel_id = $1 AND (user_id = $2 OR wa_id = $2)
                     ORDER BY created_at, id LIMIT 1",
                )
                .bind(&channel)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await,
                None => {
                    sqlx::query("SELECT id FROM contacts WHERE channel_id = $1 AND wa_id = $2")
                        .bind(&channel)
                        .bind(&row.wa_id)
                        .fetch_optional(&mut *tx)
                        .await
                }
            }
            .map_err(db_err)?
            .map(|r| get(&r, "id"))
            .transpose()?;
            let id = match existing {
                Some(id) => {
                    sqlx::query(
                        "UPDATE contacts SET name = $2, language = $3, notes = $4, updated_at = $5
                         WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(row.name.clone())
                    .bind(row.language.clone())
                    .bind(row.notes.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    counts.updated += 1;
                    id
                }
                None => {
                    let id = ContactId::new().to_string();
                    sqlx::query(
                        "INSERT INTO contacts (id, channel_id, wa_id, user_id, name, language, notes,
                            created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                    )
                    .bind(&id)
                    .bind(&channel)
                    .bind(&row.wa_id)
                    .bind(row.user_id.clone())
                    .bind(row.name.clone())
                    .bind(row.language.clone())
                    .bind(row.notes.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    counts.created += 1;
                    id
                }
            };
            set_labels_in(&mut tx, &id, &row.labels).await?;
            set_attributes_in(&mut tx, &id, &row.attributes).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(counts)
    }
}

/// Replaces the labels of the contact `id` with `labels`.
async fn set_labels_in(tx: &mut Tx, id: &str, labels: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM contact_labels WHERE contact_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    for label in labels {
        sqlx::query(
            "INSERT INTO contact_labels (contact_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(label)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Sets each of `attributes` on the contact `id`; a key without a value is removed.
async fn set_attributes_in(
    tx: &mut Tx,
    id: &str,
    attributes: &BTreeMap<String, Option<String>>,
) -> Result<(), StoreError> {
    for (key, value) in attributes {
        let query = match value {
            Some(value) => sqlx::query(
                "INSERT INTO contact_attributes (contact_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(key)
            .bind(value),
            None => {
                sqlx::query("DELETE FROM contact_attributes WHERE contact_id = $1 AND key = $2")
                    .bind(id)
                    .bind(key)
            }
        };
        query.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}
