//! Postgres specifics: the connection pool and full-text keyword search (`simple` configuration
//! over Palaver's own normalised text, so it behaves like the SQLite index for every language).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;

use super::rows::{db_err, get, parse_id};
use super::{KeywordHit, StoreError};

/// Connects a pool to the Postgres server named by `url`: it serves reads, writes and the
/// webhook journal.
pub(super) async fn open(url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
    sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad Postgres URL: {e}")))?;
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        // Short queries only: JIT compiling one costs more (tens of ms) than it saves. Each
        // statement is planned for its own values: a plan made once for any value of a LIKE
        // pattern reads the whole table where the trigram index finds a rare word at once.
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET jit = off; SET plan_cache_mode = force_custom_plan")
                    .await
                    .map(|_| ())
            })
        })
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to Postgres: {e}")))?;
    Ok(pool)
}

/// `to_tsquery` with the terms OR-ed, ranked by `ts_rank`. Terms are alphanumeric words
/// (see `knowledge::text::terms`), quoted as lexemes so no operator can be injected.
pub(super) async fn keyword_search(
    pool: &AnyPool,
    collection: &str,
    terms: &[String],
    limit: usize,
) -> Result<Vec<KeywordHit>, StoreError> {
    let expression = terms
        .iter()
        .map(|t| format!("'{}'", t.replace('\'', "''").replace('\\', "")))
        .collect::<Vec<_>>()
        .join(" | ");
    let rows = sqlx::query(
        "SELECT id, ts_rank(to_tsvector('simple', search_text), q)::float8 AS score
         FROM chunks, to_tsquery('simple', $1) AS q
         WHERE collection = $2 AND to_tsvector('simple', search_text) @@ q
         ORDER BY score DESC, id LIMIT $3",
    )
    .bind(expression)
    .bind(collection)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            Ok(KeywordHit {
                chunk_id: parse_id(row, "id")?,
                score: get::<f64>(row, "score")? as f32,
            })
        })
        .collect()
}
