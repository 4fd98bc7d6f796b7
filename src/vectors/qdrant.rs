//! [`QdrantStore`]: the vector index on a Qdrant server (or cluster) over gRPC with
//! qdrant-client, for deployments that run several Palaver replicas. Collections are named
//! `<collection_prefix><collection>`, use cosine distance, and hold points whose ids are the
//! chunk UUIDs. The server indexes in the background; `optimize` waits until it is done.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CollectionStatus, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance,
    PointId, PointStruct, PointsIdsList, Query, QueryPointsBuilder, SearchParamsBuilder,
    UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{check_vector, validate_collection, VectorError, VectorHit, VectorPoint, VectorStore};
use crate::config::VectorSettings;

/// Deadline of one request; bulk upserts are sent in batches well below it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Points per upsert request, far below gRPC message limits even for large embeddings.
const UPSERT_CHUNK: usize = 256;
/// How long `optimize` waits for the server to finish indexing.
const OPTIMIZE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const OPTIMIZE_POLL: Duration = Duration::from_millis(250);

/// gRPC status codes the store acts on (see `google.rpc.Code`).
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const UNAVAILABLE: i32 = 14;
}

/// The vector index on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    prefix: String,
    hnsw_ef: u64,
    /// Dimensions of collections seen so far, to refuse bad vectors before sending them.
    dimensions: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Maps a client error; `collection` names the collection a NOT_FOUND refers to.
fn map_error(collection: &str, e: QdrantError) -> VectorError {
    match e {
        QdrantError::ResponseError { status } => {
            from_status(collection, i32::from(status.code()), status.message())
        }
        QdrantError::ResourceExhaustedError { status, .. } => {
            VectorError::Unavailable(format!("qdrant is overloaded: {}", status.message()))
        }
        other => VectorError::Backend(other.to_string()),
    }
}

fn from_status(collection: &str, code: i32, message: &str) -> VectorError {
    match code {
        code::NOT_FOUND => VectorError::MissingCollection(collection.to_owned()),
        code::INVALID_ARGUMENT => VectorError::Invalid(message.to_owned()),
        code::UNAVAILABLE | code::DEADLINE_EXCEEDED => VectorError::Unavailable(message.to_owned()),
        // The client reports a server it cannot reach (stopped, restarting) as an internal or
        // unknown status: that is an outage to wait out, not a fault of the request.
        _ if unreachable(message) => VectorError::Unavailable(message.to_owned()),
        other => VectorError::Backend(format!("qdrant status {other}: {message}")),
    }
}

fn unreachable(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "failed to connect",
        "tcp connect error",
        "connection refused",
        "connection reset",
        "broken pipe",
        "transport error",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn is_status(e: &QdrantError, wanted: i32) -> bool {
    matches!(e, QdrantError::ResponseError { status } if i32::from(status.code()) == wanted)
}

impl QdrantStore {
    /// Connects to the server in the settings and checks that it answers.
    pub async fn connect(s: &VectorSettings) -> Result<QdrantStore, VectorError> {
        if s.hnsw_ef == 0 {
            return Err(VectorError::Invalid(
                "vectors.hnsw_ef must be at least 1".into(),
            ));
        }
        let client = Qdrant::from_url(&s.url)
            .api_key(s.api_key.as_ref().map(|k| k.expose_secret().to_owned()))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // The built-in check prints to stdout; the health check below logs instead.
            .skip_compatibility_check()
            .build()
            .map_err(|e| VectorError::Unavailable(format!("qdrant at {}: {e}", s.url)))?;
        let health = client
            .health_check()
            .await
            .map_err(|e| VectorError::Unavailable(format!("qdrant at {}: {e}", s.url)))?;
        tracing::info!(url = %s.url, version = %health.version, "connected to qdrant");
        Ok(QdrantStore {
            client,
            prefix: s.collection_prefix.clone(),
            hnsw_ef: s.hnsw_ef as u64,
            dimensions: Mutex::new(HashMap::new()),
        })
    }

    fn full_name(&self, collection: &str) -> String {
        format!("{}{collection}", self.prefix)
    }

    fn cached_dimensions(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.dimensions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Maps an error, forgetting the cached dimensions of a collection the server no longer
    /// has (another replica may have dropped it).
    fn forget_if_missing(&self, collection: &str, e: QdrantError) -> VectorError {
        let e = map_error(collection, e);
        if matches!(e, VectorError::MissingCollection(_)) {
            self.cached_dimensions().remove(collection);
        }
        e
    }

    /// Dimensions of an existing collection, from the cache or the server.
    async fn collection_dimensions(&self, collection: &str) -> Result<usize, VectorError> {
        if let Some(d) = self.cached_dimensions().get(collection) {
            return Ok(*d);
        }
        self.fetch_dimensions(collection).await
    }

    /// Dimensions of an existing collection, asked of the server.
    async fn fetch_dimensions(&self, collection: &str) -> Result<usize, VectorError> {
        let info = self
            .client
            .collection_info(self.full_name(collection))
            .await
            .map_err(|e| self.forget_if_missing(collection, e))?;
        let params = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        let dimensions = match params {
            Some(VectorsConfigKind::Params(p)) => p.size as usize,
            _ => {
                return Err(VectorError::Invalid(format!(
                    "qdrant collection `{}` does not have a single unnamed dense vector",
                    self.full_name(collection)
                )))
            }
        };
        self.cached_dimensions()
            .insert(collection.to_owned(), dimensions);
        Ok(dimensions)
    }

    fn check_dimensions(
        collection: &str,
        existing: usize,
        wanted: usize,
    ) -> Result<(), VectorError> {
        if existing == wanted {
            Ok(())
        } else {
            Err(VectorError::Invalid(format!(
                "collection `{collection}` has {existing} dimensions, not {wanted}"
            )))
        }
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn shared(&self) -> bool {
        true
    }

    async fn ensure_collection(
        &self,
        collection: &str,
        dimensions: usize,
    ) -> Result<(), VectorError> {
        validate_collection(collection)?;
        if dimensions == 0 {
            return Err(VectorError::Invalid(
                "a collection needs at least one dimension".into(),
            ));
        }
        // Asked of the server, not the cache: the collection may have been dropped elsewhere.
        match self.fetch_dimensions(collection).await {
            Ok(existing) => return Self::check_dimensions(collection, existing, dimensions),
            Err(VectorError::MissingCollection(_)) => {}
            Err(e) => return Err(e),
        }
        let created = self
            .client
            .create_collection(
                CreateCollectionBuilder::new(self.full_name(collection)).vectors_config(
                    VectorParamsBuilder::new(dimensions as u64, Distance::Cosine),
                ),
            )
            .await;
        match created {
            Ok(_) => {
                tracing::info!(collection, dimensions, "qdrant collection created");
                self.cached_dimensions()
                    .insert(collection.to_owned(), dimensions);
                Ok(())
            }
            // Another replica created it first.
            Err(e)
                if is_status(&e, code::ALREADY_EXISTS) || is_status(&e, code::INVALID_ARGUMENT) =>
            {
                match self.fetch_dimensions(collection).await {
                    Ok(existing) => Self::check_dimensions(collection, existing, dimensions),
                    Err(_) => Err(map_error(collection, e)),
                }
            }
            Err(e) => Err(map_error(collection, e)),
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        validate_collection(collection)?;
        let dimensions = self.collection_dimensions(collection).await?;
        for point in &points {
            check_vector(&point.vector, dimensions)?;
        }
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| PointStruct::new(p.id.to_string(), p.vector, Payload::new()))
            .collect();
        self.client
            .upsert_points_chunked(
                UpsertPointsBuilder::new(self.full_name(collection), points).wait(true),
                UPSERT_CHUNK,
            )
            .await
            .map_err(|e| self.forget_if_missing(collection, e))?;
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        validate_collection(collection)?;
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::from(id.to_string())).collect();
        let deleted = self
            .client
            .delete_points(
                DeletePointsBuilder::new(self.full_name(collection))
                    .points(PointsIdsList { ids })
                    .wait(true),
            )
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, code::NOT_FOUND) => Ok(()),
            Err(e) => Err(map_error(collection, e)),
        }
    }

    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        validate_collection(collection)?;
        let dimensions = self.collection_dimensions(collection).await?;
        check_vector(vector, dimensions)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let response = self
            .client
            .query(
                QueryPointsBuilder::new(self.full_name(collection))
                    .query(Query::new_nearest(vector.to_vec()))
                    .limit(limit as u64)
                    .params(SearchParamsBuilder::default().hnsw_ef(self.hnsw_ef))
                    .with_payload(false),
            )
            .await
            .map_err(|e| self.forget_if_missing(collection, e))?;
        response
            .result
            .into_iter()
            .map(|p| {
                let id = match p.id.and_then(|id| id.point_id_options) {
                    Some(PointIdOptions::Uuid(s)) => Uuid::parse_str(&s).ok(),
                    Some(PointIdOptions::Num(_)) | None => None,
                };
                id.map(|id| VectorHit { id, score: p.score })
                    .ok_or_else(|| {
                        VectorError::Backend(format!(
                            "collection `{collection}` holds a non-UUID point id"
                        ))
                    })
            })
            .collect()
    }

    async fn count(&self, collection: &str) -> Result<u64, VectorError> {
        validate_collection(collection)?;
        let counted = self
            .client
            .count(CountPointsBuilder::new(self.full_name(collection)).exact(true))
            .await;
        match counted {
            Ok(response) => Ok(response.result.map_or(0, |r| r.count)),
            Err(e) if is_status(&e, code::NOT_FOUND) => Ok(0),
            Err(e) => Err(map_error(collection, e)),
        }
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), VectorError> {
        validate_collection(collection)?;
        self.cached_dimensions().remove(collection);
        match self
            .client
            .delete_collection(self.full_name(collection))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, code::NOT_FOUND) => Ok(()),
            Err(e) => Err(map_error(collection, e)),
        }
    }

    /// Waits until the server reports the collection indexed (green).
    async fn optimize(&self, collection: &str) -> Result<(), VectorError> {
        validate_collection(collection)?;
        let started = Instant::now();
        loop {
            let info = self
                .client
                .collection_info(self.full_name(collection))
                .await
                .map_err(|e| self.forget_if_missing(collection, e))?;
            let status = info.result.map(|r| r.status).unwrap_or_default();
            match CollectionStatus::try_from(status) {
                // Grey: optimisations are pending until the next write; nothing to wait for.
                Ok(CollectionStatus::Green | CollectionStatus::Grey) => return Ok(()),
                Ok(CollectionStatus::Red) => {
                    return Err(VectorError::Backend(format!(
                        "qdrant reports collection `{collection}` as failed (red)"
                    )))
                }
                Ok(CollectionStatus::Yellow | CollectionStatus::UnknownCollectionStatus)
                | Err(_) => {}
            }
            if started.elapsed() > OPTIMIZE_TIMEOUT {
                return Err(VectorError::Unavailable(format!(
                    "qdrant still indexing `{collection}` after {} s",
                    OPTIMIZE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(OPTIMIZE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vectors::testing::conformance;

    /// A Qdrant server cannot be installed here; these tests run when one is given by URL.
    fn server_url() -> Option<String> {
        let url = std::env::var("PALAVER_TEST_QDRANT_URL")
            .ok()
            .filter(|u| !u.is_empty());
        if url.is_none() {
            eprintln!("skipping: set PALAVER_TEST_QDRANT_URL (e.g. http://127.0.0.1:6334) to test against a Qdrant server");
        }
        url
    }

    fn settings(url: String) -> VectorSettings {
        VectorSettings {
            url,
            collection_prefix: "palaver_test_".into(),
            ..VectorSettings::default()
        }
    }

    #[tokio::test]
    async fn passes_conformance() {
        let Some(url) = server_url() else { return };
        let store = QdrantStore::connect(&settings(url)).await.expect("connect");
        conformance(Arc::new(store)).await;
    }

    /// A Qdrant server of the test's own (binary at `PALAVER_TEST_QDRANT_BIN`), on free
    /// loopback ports with its storage in `dir`; killed when dropped.
    struct OwnServer {
        child: std::process::Child,
        grpc: u16,
        http: u16,
    }

    impl OwnServer {
        fn start(bin: &str, dir: &std::path::Path, ports: Option<(u16, u16)>) -> OwnServer {
            let free = || {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            };
            let (grpc, http) = ports.unwrap_or_else(|| (free(), free()));
            let child = std::process::Command::new(bin)
                .arg("--disable-telemetry")
                .current_dir(dir)
                .env("QDRANT__SERVICE__HOST", "127.0.0.1")
                .env("QDRANT__SERVICE__GRPC_PORT", grpc.to_string())
                .env("QDRANT__SERVICE__HTTP_PORT", http.to_string())
                .env("QDRANT__STORAGE__STORAGE_PATH", dir.join("storage"))
                .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.join("snapshots"))
                .env("QDRANT__CLUSTER__ENABLED", "false")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start qdrant");
            OwnServer { child, grpc, http }
        }

        async fn ready(&self) {
            for _ in 0..300 {
                let up = tokio::net::TcpStream::connect(("127.0.0.1", self.grpc))
                    .await
                    .is_ok();
                if up {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("qdrant did not start");
        }
    }

    impl Drop for OwnServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The server goes away and comes back on the same storage: while it is down every call is
    /// `Unavailable` within the request timeout, and afterwards the same store (no reconnect by
    /// the caller) finds the points it had written.
    #[tokio::test]
    async fn a_restarted_server_is_unavailable_then_serves_the_same_store_again() {
        let Some(bin) = std::env::var("PALAVER_TEST_QDRANT_BIN")
            .ok()
            .filter(|b| !b.is_empty())
        else {
            eprintln!("skipping: set PALAVER_TEST_QDRANT_BIN to a qdrant binary to test restarts");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let server = OwnServer::start(&bin, dir.path(), None);
        server.ready().await;
        let store = QdrantStore::connect(&settings(format!("http://127.0.0.1:{}", server.grpc)))
            .await
            .expect("connect");
        // Each point at its own angle in one plane: the nearest to point i's vector is i.
        let vector = |i: usize| {
            let angle = i as f32 * 0.03;
            let mut v = vec![0.0f32; 8];
            v[0] = angle.cos();
            v[1] = angle.sin();
            v
        };
        store.ensure_collection("restart", 8).await.unwrap();
        let points: Vec<VectorPoint> = (0..40)
            .map(|i| VectorPoint {
                id: uuid::Uuid::from_u128(i as u128 + 1),
                vector: vector(i),
            })
            .collect();
        store.upsert("restart", points).await.unwrap();
        let before = store.search("restart", &vector(3), 5).await.unwrap();
        assert_eq!(before[0].id, uuid::Uuid::from_u128(4));

        let ports = (server.grpc, server.http);
        drop(server);
        let started = std::time::Instant::now();
        let down = store.search("restart", &vector(3), 5).await;
        assert!(matches!(down, Err(VectorError::Unavailable(_))), "{down:?}");
        assert!(started.elapsed() < REQUEST_TIMEOUT + CONNECT_TIMEOUT + Duration::from_secs(2));
        assert!(matches!(
            store.count("restart").await,
            Err(VectorError::Unavailable(_))
        ));

        let again = OwnServer::start(&bin, dir.path(), Some(ports));
        again.ready().await;
        let mut after = None;
        for _ in 0..100 {
            match store.search("restart", &vector(3), 5).await {
                Ok(hits) => {
                    after = Some(hits);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let after = after.expect("the store serves again after the restart");
        // The same hits (points at equal distance on either side may swap places).
        let ids = |hits: &[VectorHit]| {
            let mut ids: Vec<uuid::Uuid> = hits.iter().map(|h| h.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(after[0].id, before[0].id);
        assert_eq!(ids(&after), ids(&before));
        assert_eq!(store.count("restart").await.unwrap(), 40);
        store.drop_collection("restart").await.unwrap();
        drop(again);
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // Port 9 (discard) on localhost is closed here.
        let s = VectorSettings {
            url: "http://127.0.0.1:9".into(),
            ..VectorSettings::default()
        };
        assert!(matches!(
            QdrantStore::connect(&s).await,
            Err(VectorError::Unavailable(_))
        ));
    }

    #[test]
    fn maps_grpc_status() {
        let kind = |e: &VectorError| match e {
            VectorError::MissingCollection(c) if c == "kb" => "missing",
            VectorError::MissingCollection(_) => "missing, wrong name",
            VectorError::Invalid(_) => "invalid",
            VectorError::Unavailable(_) => "unavailable",
            VectorError::Backend(_) => "backend",
        };
        let cases = [
            (code::NOT_FOUND, "missing"),
            (code::INVALID_ARGUMENT, "invalid"),
            (code::UNAVAILABLE, "unavailable"),
            (code::DEADLINE_EXCEEDED, "unavailable"),
            (code::ALREADY_EXISTS, "backend"),
            (13, "backend"),
        ];
        for (code, expected) in cases {
            assert_eq!(
                kind(&from_status("kb", code, "message")),
                expected,
                "code {code}"
            );
        }
        // What the client says of a server that is down.
        let refused = "Failed to connect to http://127.0.0.1:6334/: tonic::transport::Error(Transport, \
                       ConnectError(\"tcp connect error\", Os { code: 111, kind: ConnectionRefused }))";
        assert_eq!(kind(&from_status("kb", 13, refused)), "unavailable");
        assert_eq!(
            kind(&from_status("kb", 2, "transport error")),
            "unavailable"
        );
    }
}
