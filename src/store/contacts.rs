//! [`ContactStore`]: what a business keeps about its customers beyond the WhatsApp profile
//! (language, notes, labels, its own attributes such as a CRM's case id), so that a CRM can
//! find the conversation of its case and people see who they are talking to.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::rows::{db_err, get, now_ms, parse_id, placeholders, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ChannelId, ContactId, WorkspaceId};

/// A customer as the business knows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContactProfile {
    /// Its id.
    pub id: ContactId,
    /// The workspace (its channel's).
    pub workspace_id: WorkspaceId,
    /// The channel the customer writes to.
    pub channel_id: ChannelId,
    /// WhatsApp id (the number, digits).
    pub wa_id: String,
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
}

const SELECT: &str =
    "SELECT ct.id, ch.workspace_id, ct.channel_id, ct.wa_id, ct.name, ct.language, ct.notes,
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
            sqlx::query("DELETE FROM contact_labels WHERE contact_id = $1")
                .bind(&id_text)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for label in labels {
                sqlx::query(
                    "INSERT INTO contact_labels (contact_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&id_text)
                .bind(label)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        for (key, value) in &patch.attributes {
            match value {
                Some(value) => sqlx::query(
                    "INSERT INTO contact_attributes (contact_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(&id_text)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?,
                None => {
                    sqlx::query("DELETE FROM contact_attributes WHERE contact_id = $1 AND key = $2")
                        .bind(&id_text)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?
                }
            };
        }
        tx.commit().await.map_err(db_err)?;
        self.contact(id).await
    }
}
