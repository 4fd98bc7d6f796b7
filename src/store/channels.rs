//! [`ChannelStore`] on SQL: the WhatsApp numbers and instances, their sealed credentials and
//! connection state, and the send rate each shares across replicas.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::event_log::{emit, NewEvent};
use super::rows::{channel_from_row, db_err, get, now_ms, to_json, CHANNEL_COLUMNS};
use super::sql::SqlStore;
use super::{NewChannel, StoreError};
use crate::domain::{Channel, ChannelId, ChannelState, EventKind, ProviderKind, WorkspaceId};

/// Channels: the numbers Palaver answers on.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Creates a channel; [`StoreError::Conflict`] if the provider's routing key is taken.
    async fn create_channel(&self, channel: NewChannel) -> Result<Channel, StoreError>;
    /// A channel by id.
    async fn channel(&self, id: ChannelId) -> Result<Option<Channel>, StoreError>;
    /// A channel by provider and routing key.
    async fn channel_by_route(
        &self,
        provider: ProviderKind,
        route_key: &str,
    ) -> Result<Option<Channel>, StoreError>;
    /// All channels of one provider, or all (sandbox channels excluded).
    async fn list_channels(
        &self,
        ws: Option<WorkspaceId>,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Channel>, StoreError>;
    /// A channel's sealed credentials.
    async fn channel_credentials(&self, id: ChannelId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves name, agent, settings, Graph API version (and credentials when given).
    async fn update_channel(
        &self,
        channel: &Channel,
        sealed_credentials: Option<Vec<u8>>,
    ) -> Result<Channel, StoreError>;
    /// Records a connection state change, and a new QR code to link the number when there is
    /// one (shown live through the event log, never stored on the channel).
    async fn set_channel_state(
        &self,
        id: ChannelId,
        state: ChannelState,
        detail: Option<&str>,
        qr: Option<serde_json::Value>,
    ) -> Result<(), StoreError>;
    /// Deletes a channel and its conversations; false if it did not exist.
    async fn delete_channel(&self, id: ChannelId) -> Result<bool, StoreError>;
    /// Takes a slot of the channel's send rate (`per_minute`, bursts of `burst`), shared by
    /// every process on this database: `None` when a message may go now, else how long to
    /// wait for the next slot.
    async fn take_send_slot(
        &self,
        channel: ChannelId,
        per_minute: u32,
        burst: u32,
    ) -> Result<Option<Duration>, StoreError>;
}

#[async_trait]
impl ChannelStore for SqlStore {
    async fn create_channel(&self, c: NewChannel) -> Result<Channel, StoreError> {
        let id = ChannelId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO channels (id, workspace_id, name, provider, route_key, agent_id, credentials, settings, state, created_at, updated_at, graph_version)
             VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, $9, $9, $11)",
        )
        .bind(id.to_string())
        .bind(&c.name)
        .bind(c.provider.as_str())
        .bind(&c.route_key)
        .bind(c.agent_id.map(|a| a.to_string()))
        .bind(c.sealed_credentials)
        .bind(to_json(&c.settings)?)
        .bind(c.state.as_str())
        .bind(now)
        .bind(c.workspace_id.to_string())
        .bind(c.graph_version.as_deref())
        .execute(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a {} channel for `{}` already exists",
                c.provider.as_str(),
                c.route_key
            )),
            other => other,
        })?;
        self.channel(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    async fn channel(&self, id: ChannelId) -> Result<Option<Channel>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn channel_by_route(
        &self,
        provider: ProviderKind,
        route_key: &str,
    ) -> Result<Option<Channel>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE provider = $1 AND route_key = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(provider.as_str())
            .bind(route_key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn list_channels(
        &self,
        ws: Option<WorkspaceId>,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Channel>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE provider <> 'sandbox' AND ($1 = '' OR provider = $1)
               AND ($2 = '' OR workspace_id = $2) ORDER BY name, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(provider.map(|p| p.as_str()).unwrap_or(""))
            .bind(ws.map(|w| w.to_string()).unwrap_or_default())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(channel_from_row).collect()
    }

    async fn channel_credentials(&self, id: ChannelId) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT credentials FROM channels WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| get::<Vec<u8>>(&r, "credentials")).transpose()
    }

    async fn update_channel(
        &self,
        c: &Channel,
        sealed: Option<Vec<u8>>,
    ) -> Result<Channel, StoreError> {
        let result = sqlx::query(
            "UPDATE channels SET name = $2, agent_id = $3, settings = $4,
                credentials = COALESCE($5, credentials), updated_at = $6, graph_version = $7
             WHERE id = $1",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(c.agent_id.map(|a| a.to_string()))
        .bind(to_json(&c.settings)?)
        .bind(sealed)
        .bind(now_ms())
        .bind(c.graph_version.as_deref())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("channel {}", c.id)));
        }
        // Conversations follow the channel's agent.
        sqlx::query("UPDATE conversations SET agent_id = $2 WHERE channel_id = $1")
            .bind(c.id.to_string())
            .bind(c.agent_id.map(|a| a.to_string()))
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        self.channel(c.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("channel {}", c.id)))
    }

    async fn set_channel_state(
        &self,
        id: ChannelId,
        state: ChannelState,
        detail: Option<&str>,
        qr: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE channels SET state = $2, state_detail = $3, updated_at = $4 WHERE id = $1
             RETURNING workspace_id",
        )
        .bind(id.to_string())
        .bind(state.as_str())
        .bind(detail)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(());
        };
        let workspace: String = get(&row, "workspace_id")?;
        let mut data = serde_json::json!({"state": state.as_str(), "detail": detail});
        if let (Some(qr), Some(data)) = (qr, data.as_object_mut()) {
            data.insert("qr".into(), qr);
        }
        let channel = id.to_string();
        let ws = emit(
            &mut tx,
            &workspace,
            NewEvent {
                kind: EventKind::ChannelState,
                conversation: None,
                channel: Some(&channel),
                data,
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn delete_channel(&self, id: ChannelId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM channels WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn take_send_slot(
        &self,
        channel: ChannelId,
        per_minute: u32,
        burst: u32,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        // GCRA: one row per channel holds the theoretical arrival time of the next message.
        let interval = 60_000 / i64::from(per_minute.max(1));
        let tolerance = interval * i64::from(burst.max(1) - 1);
        let now = now_ms();
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO channel_send_rate (channel_id, tat) VALUES ($1, 0) ON CONFLICT (channel_id) DO NOTHING",
        )
        .bind(channel.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT tat FROM channel_send_rate WHERE channel_id = $1{lock}"
        )))
        .bind(channel.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let tat = get::<i64>(&row, "tat")?.max(now);
        if tat - now > tolerance {
            tx.rollback().await.map_err(db_err)?;
            let wait = (tat - now - tolerance).max(1) as u64;
            return Ok(Some(std::time::Duration::from_millis(wait)));
        }
        sqlx::query("UPDATE channel_send_rate SET tat = $2 WHERE channel_id = $1")
            .bind(channel.to_string())
            .bind(tat + interval)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(None)
    }
}
