//! Shared test setup: stores on both backends, sample data.

pub mod app;
pub mod pg;
pub mod process;
pub mod sse;

use std::sync::Arc;

use palaver::store::Store;

/// A store and whatever keeps it alive (its temporary directory).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// Where it is, to open another handle (another replica) on the same database.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A migrated SQLite store in a temporary directory.
pub async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("palaver.db").display());
    let store = palaver::store::open(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    TestStore {
        store,
        url,
        _dir: Some(dir),
    }
}

/// A migrated store on a fresh Postgres database, or `None` when Postgres is unavailable.
pub async fn postgres_store() -> Option<TestStore> {
    let url = pg::fresh_database().await?;
    let store = palaver::store::open(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    Some(TestStore {
        store,
        url,
        _dir: None,
    })
}

/// Runs the same async test body against SQLite and Postgres.
/// Runs the same async test body against SQLite and Postgres, given the whole [`TestStore`].
#[macro_export]
macro_rules! both_backends_with_url {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::sqlite_store().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::support::postgres_store().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// Runs the same async test body with `postgres` false and true (app-level tests that build
/// their own app on either backend).
#[macro_export]
macro_rules! both_backends_flag {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(false).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(true).await;
                }
            )*
        }
    };
}

#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::sqlite_store().await;
                    super::$name(db.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::support::postgres_store().await else { return };
                    super::$name(db.store.clone()).await;
                }
            )*
        }
    };
}
