//! [`JournalStore`] on SQL: appending verified deliveries to the webhook journal, and taking
//! them (leased on Postgres), finishing and retrying them as the recorder works through it (see
//! [`super::journal`]).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::journal::{JournalBacklog, JournalEntry, JournalStore, NewJournalEntry};
use super::rows::{db_err, get, now_ms, placeholders, time};
use super::sql::SqlStore;
use super::{Backend, StoreError};
use crate::domain::to_millis;

#[async_trait]
impl JournalStore for SqlStore {
    async fn journal(&self, entry: NewJournalEntry) -> Result<(), StoreError> {
        self.journal.appenders.call(entry).await
    }

    async fn take_journal(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let now = now_ms();
        let lock = match self.journal.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_journal SET lease_until = $1
             WHERE seq IN (SELECT seq FROM webhook_journal
                           WHERE retry_at <= $2 AND lease_until <= $2
                           ORDER BY seq LIMIT $3 {lock})
             RETURNING seq, provider, channels, body, received_at, attempts"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now + lease.as_millis() as i64)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(&self.journal.pool)
            .await
            .map_err(db_err)?;
        let mut entries = rows
            .iter()
            .map(|row| {
                let provider: String = get(row, "provider")?;
                let channels: String = get(row, "channels")?;
                Ok(JournalEntry {
                    seq: get(row, "seq")?,
                    provider: provider.parse().map_err(StoreError::Corrupt)?,
                    channels: channels
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(|c| {
                            c.parse().map_err(|_| {
                                StoreError::Corrupt(format!("journal: bad channel id `{c}`"))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    body: get(row, "body")?,
                    received_at: time(row, "received_at")?,
                    attempts: get::<i64>(row, "attempts")? as u32,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING gives no order.
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn finish_journal(&self, seqs: &[i64]) -> Result<(), StoreError> {
        // Postgres takes at most 65,535 parameters a statement.
        for chunk in seqs.chunks(10_000) {
            let sql = format!(
                "DELETE FROM webhook_journal WHERE seq IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for seq in chunk {
                query = query.bind(*seq);
            }
            query.execute(&self.journal.pool).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn retry_journal(
        &self,
        seq: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_journal SET attempts = attempts + 1, retry_at = $1, lease_until = 0,
             last_error = $2 WHERE seq = $3",
        )
        .bind(to_millis(retry_at))
        .bind(error)
        .bind(seq)
        .execute(&self.journal.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn journal_backlog(&self) -> Result<JournalBacklog, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS entries,
             COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) AS failing
             FROM webhook_journal",
        )
        .fetch_one(&self.journal.pool)
        .await
        .map_err(db_err)?;
        Ok(JournalBacklog {
            entries: get::<i64>(&row, "entries")? as u64,
            failing: get::<i64>(&row, "failing")? as u64,
        })
    }
}
