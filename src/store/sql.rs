//! The [`Store`] implementation shared by SQLite and Postgres, through sqlx's `Any` driver.
//!
//! Both schemas use the same column types as seen through `Any` (TEXT ids and JSON, 64-bit
//! integer times and flags, BLOB/BYTEA vectors) and `$N` placeholders, which both engines bind
//! by number, so one set of statements serves both. Writes on SQLite go through a single
//! connection (`BEGIN IMMEDIATE`), which removes lock-upgrade deadlocks.

use std::borrow::Cow;
use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::{AssertSqlSafe, SqlSafeStr};

use super::event_log::{emit, EventSignal, NewEvent};
use super::intake::Intake;
use super::journal::Journal;
use super::rows::{
    begin_write_on, db_err, get, now_ms, opt_time, parse_id, parse_text, placeholders, time,
    vector_from_bytes, vector_to_bytes,
};
use super::{postgres, sqlite};
use super::{
    ApiKey, Backend, CollectionState, DeletedDocument, KeywordHit, NewChunk, NewDocument, Passage,
    ReplacedDocument, Store, StoreError,
};
use crate::domain::{
    to_millis, Agent, AgentConfig, AgentId, ApiKeyId, Chunk, ChunkId, Document, DocumentId,
    MemberRole, WorkspaceId,
};
use chrono::{DateTime, Utc};

/// The SQL store over SQLite or Postgres.
pub struct SqlStore {
    pub(super) backend: Backend,
    /// Pool for reads (and, on Postgres, writes).
    pub(super) read: AnyPool,
    /// Pool for writes: one connection on SQLite, the read pool on Postgres.
    pub(super) write: AnyPool,
    /// Wakes this process's event hub after commits that wrote events.
    pub(super) signal: std::sync::Arc<EventSignal>,
    /// Customer messages are recorded through here, many to a commit.
    pub(super) intake: Intake,
    /// Verified webhook deliveries, kept until what they carry is recorded.
    pub(super) journal: Journal,
    /// On SQLite, stop the background WAL checkpoints (of the database and of the journal's
    /// file) when dropped with the store.
    pub(super) checkpoints: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl SqlStore {
    /// A store over `read` and `write`, with the webhook journal on `journal`, and its message
    /// committers and journal appenders started (`committers` of each: one on SQLite's single
    /// writers, more on Postgres).
    fn new(
        backend: Backend,
        read: AnyPool,
        write: AnyPool,
        journal: AnyPool,
        committers: usize,
    ) -> Self {
        let signal = std::sync::Arc::new(EventSignal::default());
        let intake = Intake::start(backend, write.clone(), signal.clone(), committers);
        let journal = Journal::start(backend, journal, committers);
        SqlStore {
            backend,
            read,
            write,
            signal,
            intake,
            journal,
            checkpoints: Vec::new(),
        }
    }
}

fn migrator(backend: Backend) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "delivery",
                include_str!("../../migrations/sqlite/0002_delivery.sql"),
            ),
            (
                3,
                "contact_user_id",
                include_str!("../../migrations/sqlite/0003_contact_user_id.sql"),
            ),
            (
                4,
                "workspaces",
                include_str!("../../migrations/sqlite/0004_workspaces.sql"),
            ),
            (
                5,
                "people",
                include_str!("../../migrations/sqlite/0005_people.sql"),
            ),
            (
                6,
                "assignment",
                include_str!("../../migrations/sqlite/0006_assignment.sql"),
            ),
            (
                7,
                "events",
                include_str!("../../migrations/sqlite/0007_events.sql"),
            ),
            (
                8,
                "hooks",
                include_str!("../../migrations/sqlite/0008_hooks.sql"),
            ),
            (
                9,
                "event_seq_trigger",
                include_str!("../../migrations/sqlite/0009_event_seq_trigger.sql"),
            ),
            (
                10,
                "inbox_search",
                include_str!("../../migrations/sqlite/0010_inbox_search.sql"),
            ),
            (
                11,
                "media_files",
                include_str!("../../migrations/sqlite/0011_media_files.sql"),
            ),
            (
                12,
                "last_message_seq_never_back",
                include_str!("../../migrations/sqlite/0012_last_message_seq_never_back.sql"),
            ),
            (
                13,
                "open_escalations",
                include_str!("../../migrations/sqlite/0013_open_escalations.sql"),
            ),
            (
                14,
                "contact_profiles",
                include_str!("../../migrations/sqlite/0014_contact_profiles.sql"),
            ),
            (
                15,
                "relevance_threshold",
                include_str!("../../migrations/sqlite/0015_relevance_threshold.sql"),
            ),
            (
                16,
                "jobs_due_in_claim_order",
                include_str!("../../migrations/sqlite/0016_jobs_due_in_claim_order.sql"),
            ),
            (
                17,
                "channel_graph_version",
                include_str!("../../migrations/sqlite/0017_channel_graph_version.sql"),
            ),
            (
                18,
                "cite_sources",
                include_str!("../../migrations/sqlite/0018_cite_sources.sql"),
            ),
            (
                19,
                "model_calls",
                include_str!("../../migrations/sqlite/0019_model_calls.sql"),
            ),
            (
                20,
                "team_work",
                include_str!("../../migrations/sqlite/0020_team_work.sql"),
            ),
            (
                21,
                "reports",
                include_str!("../../migrations/sqlite/0021_reports.sql"),
            ),
            (
                22,
                "notes",
                include_str!("../../migrations/sqlite/0022_notes.sql"),
            ),
            (
                23,
                "teams",
                include_str!("../../migrations/sqlite/0023_teams.sql"),
            ),
            (
                24,
                "faq_proposals",
                include_str!("../../migrations/sqlite/0024_faq_proposals.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "delivery",
                include_str!("../../migrations/postgres/0002_delivery.sql"),
            ),
            (
                3,
                "contact_user_id",
                include_str!("../../migrations/postgres/0003_contact_user_id.sql"),
            ),
            (
                4,
                "workspaces",
                include_str!("../../migrations/postgres/0004_workspaces.sql"),
            ),
            (
                5,
                "people",
                include_str!("../../migrations/postgres/0005_people.sql"),
            ),
            (
                6,
                "assignment",
                include_str!("../../migrations/postgres/0006_assignment.sql"),
            ),
            (
                7,
                "events",
                include_str!("../../migrations/postgres/0007_events.sql"),
            ),
            (
                8,
                "hooks",
                include_str!("../../migrations/postgres/0008_hooks.sql"),
            ),
            (
                9,
                "event_seq_trigger",
                include_str!("../../migrations/postgres/0009_event_seq_trigger.sql"),
            ),
            (
                10,
                "inbox_search",
                include_str!("../../migrations/postgres/0010_inbox_search.sql"),
            ),
            (
                11,
                "media_files",
                include_str!("../../migrations/postgres/0011_media_files.sql"),
            ),
            (
                12,
                "last_message_seq_never_back",
                include_str!("../../migrations/postgres/0012_last_message_seq_never_back.sql"),
            ),
            (
                13,
                "open_escalations",
                include_str!("../../migrations/postgres/0013_open_escalations.sql"),
            ),
            (
                14,
                "contact_profiles",
                include_str!("../../migrations/postgres/0014_contact_profiles.sql"),
            ),
            (
                15,
                "relevance_threshold",
                include_str!("../../migrations/postgres/0015_relevance_threshold.sql"),
            ),
            (
                16,
                "jobs_due_in_claim_order",
                include_str!("../../migrations/postgres/0016_jobs_due_in_claim_order.sql"),
            ),
            (
                17,
                "webhook_journal",
                include_str!("../../migrations/postgres/0017_webhook_journal.sql"),
            ),
            (
                18,
                "channel_graph_version",
                include_str!("../../migrations/postgres/0018_channel_graph_version.sql"),
            ),
            (
                19,
                "cite_sources",
                include_str!("../../migrations/postgres/0019_cite_sources.sql"),
            ),
            (
                20,
                "model_calls",
                include_str!("../../migrations/postgres/0020_model_calls.sql"),
            ),
            (
                21,
                "team_work",
                include_str!("../../migrations/postgres/0021_team_work.sql"),
            ),
            (
                22,
                "reports",
                include_str!("../../migrations/postgres/0022_reports.sql"),
            ),
            (
                23,
                "notes",
                include_str!("../../migrations/postgres/0023_notes.sql"),
            ),
            (
                24,
                "teams",
                include_str!("../../migrations/postgres/0024_teams.sql"),
            ),
            (
                25,
                "faq_proposals",
                include_str!("../../migrations/postgres/0025_faq_proposals.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    // A migration that opens its own transaction (to change pragmas first).
                    sql.contains("\nBEGIN;"),
                )
            })
            .collect(),
    )
}

fn agent_from_row(row: &AnyRow) -> Result<Agent, StoreError> {
    let config: String = get(row, "config")?;
    let config: AgentConfig = serde_json::from_str(&config)
        .map_err(|e| StoreError::Corrupt(format!("agent config: {e}")))?;
    Ok(Agent {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        name: get(row, "name")?,
        active: get::<i64>(row, "active")? != 0,
        config,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn api_key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        role: parse_text(row, "role")?,
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

const DOCUMENT_COLUMNS: &str =
    "id, collection, source, title, format, content_hash, bytes, chunk_count, embedding_model, created_at, updated_at";

fn document_from_row(row: &AnyRow) -> Result<Document, StoreError> {
    Ok(Document {
        id: parse_id(row, "id")?,
        collection: get(row, "collection")?,
        source: get(row, "source")?,
        title: get(row, "title")?,
        format: get(row, "format")?,
        content_hash: get(row, "content_hash")?,
        bytes: get(row, "bytes")?,
        chunk_count: get(row, "chunk_count")?,
        embedding_model: get(row, "embedding_model")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

const PASSAGE_COLUMNS: &str =
    "c.id AS chunk_id, c.document_id, d.source, d.title, c.position, c.heading, c.body";

fn passage_from_row(row: &AnyRow) -> Result<Passage, StoreError> {
    Ok(Passage {
        chunk_id: parse_id(row, "chunk_id")?,
        document_id: parse_id(row, "document_id")?,
        source: get(row, "source")?,
        title: get(row, "title")?,
        position: get(row, "position")?,
        heading: get(row, "heading")?,
        text: get(row, "body")?,
    })
}

impl SqlStore {
    /// Connects to `sqlite:...` or `postgres://...`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let db = sqlite::open(url, max_connections).await?;
            let mut store = SqlStore::new(Backend::Sqlite, db.read, db.write, db.journal, 1);
            store.checkpoints = db.checkpoints;
            Ok(store)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = postgres::open(url, max_connections).await?;
            // Several batches commit at once, leaving most connections to everything else.
            let committers = (max_connections as usize / 4).clamp(1, 4);
            Ok(SqlStore::new(
                Backend::Postgres,
                pool.clone(),
                pool.clone(),
                pool,
                committers,
            ))
        } else {
            Err(StoreError::Unavailable(
                "database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        begin_write_on(self.backend, &self.write).await
    }

    /// Applies the migrations up to `version` only, leaving the database as the release that
    /// ended there made it (upgrade tests start from such a database).
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let mut migrator = migrator(self.backend);
        migrator.migrations = Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        );
        migrator
            .run(&self.write)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
    }

    /// Bumps a collection's version (creating it) inside a write transaction.
    async fn bump_collection(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        collection: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO collections (name, version, indexed_version, updated_at) VALUES ($1, 1, -1, $2)
             ON CONFLICT (name) DO UPDATE SET version = collections.version + 1, updated_at = $2
             RETURNING version",
        )
        .bind(collection)
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        get(&row, "version")
    }

    async fn chunk_ids_of(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        document: &str,
    ) -> Result<Vec<ChunkId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM chunks WHERE document_id = $1 ORDER BY position")
            .bind(document)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?;
        rows.iter().map(|r| parse_id(r, "id")).collect()
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend)
            .run(&self.write)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE")
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn create_agent(
        &self,
        ws: WorkspaceId,
        name: &str,
        active: bool,
        config: &AgentConfig,
    ) -> Result<Agent, StoreError> {
        let id = AgentId::new();
        let now = now_ms();
        let json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("INSERT INTO agents (id, workspace_id, name, active, config, created_at, updated_at) VALUES ($1, $6, $2, $3, $4, $5, $5)")
            .bind(id.to_string())
            .bind(name)
            .bind(active as i64)
            .bind(json)
            .bind(now)
            .bind(ws.to_string())
            .execute(&self.write)
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("an agent named `{name}` already exists")),
                other => other,
            })?;
        self.agent(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))
    }

    async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn agent_by_name(
        &self,
        ws: WorkspaceId,
        name: &str,
    ) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE workspace_id = $1 AND name = $2")
            .bind(ws.to_string())
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn list_agents(&self, ws: WorkspaceId) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query("SELECT * FROM agents WHERE workspace_id = $1 ORDER BY name")
            .bind(ws.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn update_agent(&self, agent: &Agent) -> Result<Agent, StoreError> {
        let json =
            serde_json::to_string(&agent.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = sqlx::query(
            "UPDATE agents SET name = $2, active = $3, config = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(agent.id.to_string())
        .bind(&agent.name)
        .bind(agent.active as i64)
        .bind(json)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an agent named `{}` already exists", agent.name))
            }
            other => other,
        })?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent {}", agent.id)));
        }
        self.agent(agent.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("agent {}", agent.id)))
    }

    async fn delete_agent(&self, id: AgentId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn create_api_key(
        &self,
        ws: WorkspaceId,
        role: MemberRole,
        name: &str,
        key_hash: &str,
        prefix: &str,
    ) -> Result<ApiKey, StoreError> {
        let id = ApiKeyId::new();
        let row = sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, role, name, key_hash, prefix, created_at)
             VALUES ($1, $6, $7, $2, $3, $4, $5) RETURNING *",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(key_hash)
        .bind(prefix)
        .bind(now_ms())
        .bind(ws.to_string())
        .bind(role.as_str())
        .fetch_one(&self.write)
        .await
        .map_err(db_err)?;
        api_key_from_row(&row)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn list_api_keys(&self, ws: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(ws.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn touch_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        // At most one write a minute per key: a busy key must not turn every read into a write.
        let now = to_millis(now);
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id.to_string())
        .bind(now)
        .bind(now - 60_000)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_api_key(&self, ws: WorkspaceId, id: ApiKeyId) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND workspace_id = $3 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(now_ms())
                .bind(ws.to_string())
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn document_by_source(
        &self,
        collection: &str,
        source: &str,
    ) -> Result<Option<Document>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 AND source = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(collection)
            .bind(source)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn document(&self, id: DocumentId) -> Result<Option<Document>, StoreError> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn list_documents(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 ORDER BY source"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(collection)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(document_from_row).collect()
    }

    async fn replace_document(
        &self,
        doc: NewDocument,
        chunks: Vec<NewChunk>,
    ) -> Result<ReplacedDocument, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let version = Self::bump_collection(&mut tx, &doc.collection, now).await?;
        let existing = sqlx::query(
            "SELECT id, created_at FROM documents WHERE collection = $1 AND source = $2",
        )
        .bind(&doc.collection)
        .bind(&doc.source)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let (id, removed_chunks) = match existing {
            Some(row) => {
                let id: String = get(&row, "id")?;
                let removed = Self::chunk_ids_of(&mut tx, &id).await?;
                sqlx::query("DELETE FROM chunks WHERE document_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query(
                    "UPDATE documents SET title = $2, format = $3, content_hash = $4, bytes = $5, chunk_count = $6,
                     embedding_model = $7, updated_at = $8 WHERE id = $1",
                )
                .bind(&id)
                .bind(&doc.title)
                .bind(&doc.format)
                .bind(&doc.content_hash)
                .bind(doc.bytes)
                .bind(chunks.len() as i64)
                .bind(&doc.embedding_model)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                (id, removed)
            }
            None => {
                let id = DocumentId::new().to_string();
                sqlx::query(
                    "INSERT INTO documents (id, collection, source, title, format, content_hash, bytes, chunk_count,
                     embedding_model, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                )
                .bind(&id)
                .bind(&doc.collection)
                .bind(&doc.source)
                .bind(&doc.title)
                .bind(&doc.format)
                .bind(&doc.content_hash)
                .bind(doc.bytes)
                .bind(chunks.len() as i64)
                .bind(&doc.embedding_model)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                (id, Vec::new())
            }
        };
        for chunk in &chunks {
            sqlx::query(
                "INSERT INTO chunks (id, document_id, collection, position, heading, body, search_text, token_count, embedding)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(chunk.id.to_string())
            .bind(&id)
            .bind(&doc.collection)
            .bind(chunk.position)
            .bind(chunk.heading.as_deref())
            .bind(&chunk.text)
            .bind(&chunk.search_text)
            .bind(chunk.token_count)
            .bind(vector_to_bytes(&chunk.embedding))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let document = document_from_row(&row)?;
        let ws = crate::domain::collection_workspace(&doc.collection);
        let ws = emit(
            &mut tx,
            &ws.to_string(),
            NewEvent {
                kind: crate::domain::EventKind::DocumentIngested,
                conversation: None,
                channel: None,
                data: serde_json::json!({
                    "document": document,
                    "collection": crate::domain::collection_name(&doc.collection),
                }),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(ReplacedDocument {
            document,
            removed_chunks,
            version,
        })
    }

    async fn delete_document(&self, id: DocumentId) -> Result<Option<DeletedDocument>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT collection FROM documents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let collection: String = get(&row, "collection")?;
        let removed_chunks = Self::chunk_ids_of(&mut tx, &id.to_string()).await?;
        sqlx::query("DELETE FROM chunks WHERE document_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM documents WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let version = Self::bump_collection(&mut tx, &collection, now_ms()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(DeletedDocument {
            removed_chunks,
            version,
        }))
    }

    async fn passages(&self, ids: &[ChunkId]) -> Result<Vec<Passage>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<ChunkId, Passage> = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(500) {
            let sql = format!(
                "SELECT {PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({})",
                placeholders(1, batch.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in batch {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.read).await.map_err(db_err)? {
                let p = passage_from_row(&row)?;
                found.insert(p.chunk_id, p);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn embeddings(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<f32>>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(500) {
            let sql = format!(
                "SELECT id, embedding FROM chunks WHERE id IN ({})",
                placeholders(1, batch.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in batch {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.read).await.map_err(db_err)? {
                let bytes: Vec<u8> = get(&row, "embedding")?;
                found.insert(parse_id(&row, "id")?, vector_from_bytes(&bytes)?);
            }
        }
        Ok(found)
    }

    async fn passages_in_range(
        &self,
        document: DocumentId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Passage>, StoreError> {
        let sql = format!(
            "SELECT {PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE c.document_id = $1 AND c.position >= $2 AND c.position <= $3 ORDER BY c.position"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(document.to_string())
            .bind(from)
            .bind(to)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(passage_from_row).collect()
    }

    async fn passages_near(
        &self,
        around: &[(DocumentId, i64)],
        radius: i64,
    ) -> Result<Vec<Passage>, StoreError> {
        if around.is_empty() {
            return Ok(Vec::new());
        }
        let conditions: Vec<String> = (0..around.len())
            .map(|i| {
                let n = i * 3 + 1;
                format!(
                    "(c.document_id = ${n} AND c.position >= ${} AND c.position <= ${})",
                    n + 1,
                    n + 2
                )
            })
            .collect();
        let sql = format!(
            "SELECT {PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE {} ORDER BY c.document_id, c.position",
            conditions.join(" OR ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (document, position) in around {
            query = query
                .bind(document.to_string())
                .bind(position - radius)
                .bind(position + radius);
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(passage_from_row).collect()
    }

    async fn chunk_page(
        &self,
        collection: &str,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, document_id, position, heading, body, token_count, embedding FROM chunks
             WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(collection)
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let embedding: Vec<u8> = get(row, "embedding")?;
                Ok(Chunk {
                    id: parse_id(row, "id")?,
                    document_id: parse_id(row, "document_id")?,
                    position: get(row, "position")?,
                    heading: get(row, "heading")?,
                    text: get(row, "body")?,
                    token_count: get(row, "token_count")?,
                    embedding: vector_from_bytes(&embedding)?,
                })
            })
            .collect()
    }

    async fn update_embeddings(
        &self,
        document: DocumentId,
        model: &str,
        vectors: &[(ChunkId, Vec<f32>)],
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT collection FROM documents WHERE id = $1")
            .bind(document.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("document {document}")))?;
        let collection: String = get(&row, "collection")?;
        for (id, vector) in vectors {
            sqlx::query("UPDATE chunks SET embedding = $2 WHERE id = $1 AND document_id = $3")
                .bind(id.to_string())
                .bind(vector_to_bytes(vector))
                .bind(document.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        sqlx::query("UPDATE documents SET embedding_model = $2 WHERE id = $1")
            .bind(document.to_string())
            .bind(model)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let version = Self::bump_collection(&mut tx, &collection, now_ms()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(version)
    }

    async fn keyword_search(
        &self,
        collection: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<KeywordHit>, StoreError> {
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        match self.backend {
            Backend::Sqlite => sqlite::keyword_search(&self.read, collection, terms, limit).await,
            Backend::Postgres => {
                postgres::keyword_search(&self.read, collection, terms, limit).await
            }
        }
    }

    async fn collections(&self) -> Result<Vec<CollectionState>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.name, c.version, c.indexed_version,
                    (SELECT COUNT(*) FROM documents d WHERE d.collection = c.name) AS documents,
                    (SELECT COUNT(*) FROM chunks k WHERE k.collection = c.name) AS chunks
             FROM collections c ORDER BY c.name",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(CollectionState {
                    name: get(row, "name")?,
                    version: get(row, "version")?,
                    indexed_version: get(row, "indexed_version")?,
                    documents: get(row, "documents")?,
                    chunks: get(row, "chunks")?,
                })
            })
            .collect()
    }

    async fn collection_version(&self, collection: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT version FROM collections WHERE name = $1")
            .bind(collection)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| get(&r, "version")).transpose()
    }

    async fn mark_collection_indexed(
        &self,
        collection: &str,
        version: i64,
    ) -> Result<(), StoreError> {
        // Never move the marker backwards: a slower writer finishing late must not hide a newer version.
        sqlx::query(
            "UPDATE collections SET indexed_version = $2 WHERE name = $1 AND indexed_version < $2",
        )
        .bind(collection)
        .bind(version)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
