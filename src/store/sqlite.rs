//! SQLite specifics: the file and its pragmas (WAL, full sync, foreign keys), a single writer
//! connection beside the reader pool, and FTS5 keyword search with BM25 ranking.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::oneshot;

use super::rows::{db_err, get, parse_id};
use super::{KeywordHit, StoreError};
use crate::domain::ChunkId;

/// How often the write-ahead log is copied back into the database file, beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer checkpoints on its own, within a commit, only past 20,000 WAL pages: when the
/// background checkpoints fall behind (SQLite's default is 1,000 pages, about every second of
/// a busy intake, each a stall of every webhook waiting for that commit).
const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 20000;";

const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                       PRAGMA busy_timeout = 10000; PRAGMA temp_store = MEMORY;";

/// An open SQLite database: its pools and its background checkpoints.
pub(super) struct Opened {
    /// Readers.
    pub read: AnyPool,
    /// The single writer.
    pub write: AnyPool,
    /// The webhook journal's own file and writer.
    pub journal: AnyPool,
    /// Stop the WAL checkpoints of the database and of the journal when dropped.
    pub checkpoints: Vec<oneshot::Sender<()>>,
}

/// Opens (creating if needed) the SQLite file named by `url`.
pub(super) async fn open(url: &str, max_connections: u32) -> Result<Opened, StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return Err(StoreError::Unavailable(
            "SQLite needs a file (the store keeps separate reader and writer connections)".into(),
        ));
    }
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
        })?;
    }
    let url = format!("sqlite://{path}?mode=rwc");
    // Validate the URL once with the native parser for a clear error.
    sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?;
    let options = |writer: bool| {
        AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(PRAGMAS).await?;
                    if writer {
                        conn.execute(WRITER_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
    };
    let write = options(true)
        .max_connections(1)
        .connect(&url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {path}: {e}")))?;
    // Readers connect on first use, after the migrations: a connection opened earlier keeps the
    // schema it first read, and sqlx describes a `SELECT *` by that schema while SQLite runs it
    // on the new one, so rows come back with more columns than described (an upgrade adding
    // columns would make every such read fail).
    let read = options(false)
        .max_connections(max_connections.max(1))
        .connect_lazy(&url)
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {path}: {e}")))?;
    let (journal_url, journal) = open_journal(path, options).await?;
    Ok(Opened {
        read,
        write,
        journal,
        checkpoints: vec![checkpoints(url), checkpoints(journal_url)],
    })
}

/// Runs `work` on the writer `write` with its commits not waiting for the disk: SQLite's
/// `synchronous = NORMAL` for them, then `FULL` again. Such a commit is atomic and in order with
/// every other, and it is on disk once any later commit syncs the log (each `FULL` one does) or
/// a checkpoint runs, but a power cut before that takes it back, with nothing after it. Only for
/// writes whose loss the queue already survives: claiming and completing a job, where a claim
/// or a completion taken back makes the job run again, as a crash in the middle of it does (the
/// work a job commits, a reply or a delivery, is synced as before, and it is what a job run
/// again finds done).
pub(super) async fn unsynced<T>(
    write: &AnyPool,
    work: impl for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    let mut writer = Relaxed {
        conn: write.acquire().await.map_err(db_err)?,
        synced: true,
    };
    writer
        .conn
        .execute("PRAGMA synchronous = NORMAL")
        .await
        .map_err(db_err)?;
    writer.synced = false;
    let done = work(&mut writer.conn).await;
    match writer.conn.execute("PRAGMA synchronous = FULL").await {
        Ok(_) => writer.synced = true,
        Err(e) => tracing::error!(error = %e, "cannot sync the writer's commits again; closing it"),
    }
    done.map_err(db_err)
}

/// The writer's connection while its commits may not wait for the disk. Unless they were made
/// to wait again, it is closed rather than given back to the pool (which opens another with the
/// pragmas of `open`): a caller that gave up half way, a failed pragma, must not leave every
/// later commit unsynced.
struct Relaxed {
    conn: PoolConnection<Any>,
    synced: bool,
}

impl Drop for Relaxed {
    fn drop(&mut self) {
        if !self.synced {
            self.conn.close_on_drop();
        }
    }
}

/// The webhook journal's own file beside the database (`<database>.intake`), with its table,
/// and its one connection: appends never wait for the database's writer. One process owns a
/// SQLite file, so the leases of an earlier life of it are void.
async fn open_journal(
    path: &str,
    options: impl Fn(bool) -> AnyPoolOptions,
) -> Result<(String, AnyPool), StoreError> {
    let path = format!("{path}.intake");
    let url = format!("sqlite://{path}?mode=rwc");
    let unavailable = |e: sqlx::Error| {
        StoreError::Unavailable(format!("cannot open the webhook journal {path}: {e}"))
    };
    let pool = options(true)
        .max_connections(1)
        .connect(&url)
        .await
        .map_err(unavailable)?;
    sqlx::query(super::journal::SQLITE_SCHEMA)
        .execute(&pool)
        .await
        .map_err(unavailable)?;
    sqlx::query("UPDATE webhook_journal SET lease_until = 0 WHERE lease_until > 0")
        .execute(&pool)
        .await
        .map_err(unavailable)?;
    Ok((url, pool))
}

/// Copies the write-ahead log back into the database file every [`CHECKPOINT_EVERY`], on a
/// connection of its own, so the writer's commits never do it, until the sender is dropped.
/// A passive checkpoint waits for nobody: the writer goes on appending meanwhile.
fn checkpoints(url: String) -> oneshot::Sender<()> {
    let (stop, mut stopped) = oneshot::channel();
    tokio::spawn(async move {
        let mut connection: Option<AnyConnection> = None;
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A store dropped meanwhile is not checkpointed again (its file may be gone).
                biased;
                _ = &mut stopped => break,
                _ = every.tick() => {}
            }
            let conn = match connection.as_mut() {
                Some(conn) => conn,
                None => match AnyConnection::connect(&url).await {
                    Ok(conn) => connection.insert(conn),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a connection for WAL checkpoints");
                        continue;
                    }
                },
            };
            if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                connection = None;
            }
        }
    });
    stop
}

/// BM25's term-frequency saturation, as FTS5's `bm25()` sets it.
const BM25_K1: f64 = 1.2;
/// BM25's length normalisation, as FTS5's `bm25()` sets it.
const BM25_B: f64 = 0.75;

/// FTS5 `MATCH` with the terms OR-ed finds the collection's passages that hold one of them;
/// they are ranked by BM25 over the collection's own statistics (its passages, their mean
/// length, how many of them hold each term). FTS5's `bm25()` counts the whole table, every
/// business's passages together, so one business's ranking would move with what another's
/// documents say.
pub(super) async fn keyword_search(
    pool: &AnyPool,
    collection: &str,
    terms: &[String],
    limit: usize,
) -> Result<Vec<KeywordHit>, StoreError> {
    let expression = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ");
    let matched = sqlx::query(
        "SELECT c.id, c.search_text FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid
         WHERE chunks_fts MATCH $1 AND c.collection = $2",
    )
    .bind(expression)
    .bind(collection)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    // `search_text` is words joined by single spaces (see `knowledge::text::search_text`).
    let totals = sqlx::query(
        "SELECT COUNT(*) AS passages,
                TOTAL(CASE WHEN search_text = '' THEN 0
                      ELSE LENGTH(search_text) - LENGTH(REPLACE(search_text, ' ', '')) + 1 END)
                    AS words
         FROM chunks WHERE collection = $1",
    )
    .bind(collection)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let passages = get::<i64>(&totals, "passages")? as f64;
    let words = get::<f64>(&totals, "words")?;
    let texts: Vec<(ChunkId, String)> = matched
        .iter()
        .map(|row| Ok((parse_id(row, "id")?, get::<String>(row, "search_text")?)))
        .collect::<Result<_, StoreError>>()?;
    let mut hits = bm25(&texts, terms, passages, words / passages.max(1.0));
    hits.truncate(limit);
    Ok(hits)
}

/// Ranks `texts` (each a passage's words joined by spaces) for `terms` by BM25, in FTS5's
/// form: a term's weight is `ln((N - n + 0.5) / (n + 0.5))`, at least 1e-6, for `n` of the
/// `passages` holding it. A term is folded and split as the stored text was (and as FTS5's
/// `unicode61` with `remove_diacritics` reads it); one of several words is a phrase.
fn bm25(
    texts: &[(ChunkId, String)],
    terms: &[String],
    passages: f64,
    mean_words: f64,
) -> Vec<KeywordHit> {
    let phrases: Vec<Vec<String>> = terms
        .iter()
        .map(|t| {
            crate::language::normalize(t)
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    // Each passage's length and how often it holds each phrase, counted once.
    let counted: Vec<(f64, Vec<f64>)> = texts
        .iter()
        .map(|(_, text)| {
            let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
            let frequencies = phrases
                .iter()
                .map(|phrase| {
                    words
                        .windows(phrase.len())
                        .filter(|w| w.iter().zip(phrase).all(|(a, b)| *a == b))
                        .count() as f64
                })
                .collect();
            (words.len() as f64, frequencies)
        })
        .collect();
    let weights: Vec<f64> = (0..phrases.len())
        .map(|i| {
            let holding = counted.iter().filter(|(_, f)| f[i] > 0.0).count() as f64;
            ((passages - holding + 0.5) / (holding + 0.5))
                .ln()
                .max(1e-6)
        })
        .collect();
    let mut hits: Vec<KeywordHit> = texts
        .iter()
        .zip(&counted)
        .map(|((id, _), (words, frequencies))| {
            let length = words / mean_words.max(f64::MIN_POSITIVE);
            let score = frequencies
                .iter()
                .zip(&weights)
                .map(|(tf, weight)| {
                    weight * tf * (BM25_K1 + 1.0)
                        / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * length))
                })
                .sum::<f64>();
            KeywordHit {
                chunk_id: *id,
                score: score as f32,
            }
        })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous(conn: &mut AnyConnection) -> i64 {
        let row = sqlx::query("PRAGMA synchronous")
            .fetch_one(conn)
            .await
            .unwrap();
        get::<i64>(&row, "synchronous").unwrap()
    }

    /// The work runs with commits that do not wait for the disk (NORMAL, 1); the writer's
    /// commits wait again afterwards (FULL, 2), after work that failed too.
    #[tokio::test]
    async fn unsynced_work_leaves_the_writer_synced() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let opened = open(&url, 2).await.unwrap();
        let mut writer = opened.write.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2);
        drop(writer);
        let during = unsynced(&opened.write, |conn| {
            Box::pin(async move { Ok(synchronous(conn).await) })
        })
        .await
        .unwrap();
        assert_eq!(during, 1);
        let mut writer = opened.write.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2);
        drop(writer);
        let failed = unsynced(&opened.write, |conn| {
            Box::pin(async move { sqlx::query("SELECT * FROM nowhere").execute(conn).await })
        })
        .await;
        assert!(failed.is_err());
        let mut writer = opened.write.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2);
        drop(writer);
        // A caller that gives up half way (a timeout, a task aborted) leaves no unsynced writer
        // in the pool.
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let abandoned = tokio::spawn({
            let write = opened.write.clone();
            async move {
                unsynced(&write, move |_conn| {
                    Box::pin(async move {
                        let _ = started.send(());
                        std::future::pending::<Result<(), sqlx::Error>>().await
                    })
                })
                .await
            }
        });
        running.await.unwrap();
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());
        let mut writer = opened.write.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2);
    }
}
