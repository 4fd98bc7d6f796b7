//! Embeddings from any OpenAI-compatible `/v1/embeddings` server (OpenAI, Ollama, vLLM,
//! llama.cpp's server) through `async-openai`: batching, our own retries of transient failures,
//! a check of the vector size, and L2 normalisation.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::embeddings::{
    CreateEmbeddingRequest, CreateEmbeddingResponse, EmbeddingInput,
};
use async_openai::Client;
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;

use super::{EmbedError, Embedder};
use crate::config::EmbeddingSettings;

/// Most texts sent in one request (OpenAI accepts 2048; smaller requests fail and retry cheaper).
const MAX_BATCH: usize = 256;
/// Retries of a transient failure, after the first attempt.
const MAX_RETRIES: usize = 3;

/// An OpenAI-compatible embeddings endpoint.
pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    model: String,
    model_id: String,
    dimensions: usize,
    retry: ExponentialBuilder,
}

impl OpenAiEmbedder {
    /// A client for the configured server, model and timeout.
    pub fn new(s: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let key = s
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .unwrap_or_default();
        // Explicit organisation and project, so OPENAI_* variables in the environment do not
        // silently add headers to requests sent to another server.
        let config = OpenAIConfig::new()
            .with_api_base(s.base_url.trim_end_matches('/'))
            .with_api_key(key)
            .with_org_id("")
            .with_project_id("");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .connect_timeout(Duration::from_secs(s.timeout_secs.min(10)))
            .build()
            .map_err(|e| EmbedError::Permanent(format!("cannot build HTTP client: {e}")))?;
        // A bare transport: async-openai's default executor retries on its own, and retries here
        // must be counted and backed off in one place.
        let client = Client::with_config(config).with_http_service(ReqwestService::new(http));
        Ok(Self {
            client,
            model: s.model.clone(),
            model_id: format!("openai:{}", s.model),
            dimensions: s.dimensions,
            retry: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(MAX_RETRIES)
                .with_jitter(),
        })
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // The API refuses empty strings; a single space embeds as "no content".
        let input = texts
            .iter()
            .map(|t| {
                if t.trim().is_empty() {
                    " ".to_string()
                } else {
                    t.clone()
                }
            })
            .collect();
        let request = CreateEmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::StringArray(input),
            ..Default::default()
        };
        let send = || async {
            self.client
                .embeddings()
                .create(request.clone())
                .await
                .map_err(classify)
        };
        let response = send
            .retry(self.retry)
            .when(|e| matches!(e, EmbedError::Transient(_)))
            .notify(|e, after| tracing::warn!(error = %e, retry_in = ?after, "embedding request failed; retrying"))
            .await?;
        self.vectors(response, texts.len())
    }

    fn vectors(
        &self,
        response: CreateEmbeddingResponse,
        expected: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if response.data.len() != expected {
            return Err(EmbedError::Permanent(format!(
                "server returned {} embeddings for {expected} inputs",
                response.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in response.data {
            let slot = out.get_mut(item.index as usize).ok_or_else(|| {
                EmbedError::Permanent(format!(
                    "server returned embedding index {} out of range",
                    item.index
                ))
            })?;
            if item.embedding.len() != self.dimensions {
                return Err(EmbedError::Permanent(format!(
                    "model `{}` returned {}-dimensional vectors but embedding.dimensions is {}",
                    self.model,
                    item.embedding.len(),
                    self.dimensions
                )));
            }
            *slot = Some(normalised(item.embedding)?);
        }
        out.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            EmbedError::Permanent("server returned duplicate embedding indices".into())
        })
    }
}

fn normalised(mut v: Vec<f32>) -> Result<Vec<f32>, EmbedError> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EmbedError::Permanent(
            "server returned a zero or non-finite vector".into(),
        ));
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Ok(v)
}

/// Sorts failures into those worth retrying (rate limits, server errors, network trouble) and
/// the rest.
fn classify(e: OpenAIError) -> EmbedError {
    match e {
        OpenAIError::Reqwest(e) if e.is_builder() => {
            EmbedError::Permanent(format!("invalid request: {e}"))
        }
        OpenAIError::Reqwest(e) if e.is_timeout() => {
            EmbedError::Transient(format!("request timed out: {e}"))
        }
        OpenAIError::Reqwest(e) => EmbedError::Transient(format!("connection failed: {e}")),
        OpenAIError::ApiError(r) => {
            let status = r.status_code.as_u16();
            let message = format!("{status}: {}", r.api_error.message);
            let out_of_quota = r.api_error.code.as_deref() == Some("insufficient_quota");
            if (status == 429 && !out_of_quota) || status == 408 || r.status_code.is_server_error()
            {
                EmbedError::Transient(message)
            } else {
                EmbedError::Permanent(message)
            }
        }
        OpenAIError::JSONDeserialize(e, _) => {
            EmbedError::Permanent(format!("unreadable response: {e}"))
        }
        OpenAIError::InvalidArgument(m) => EmbedError::Permanent(format!("invalid request: {m}")),
        OpenAIError::StreamError(e) => EmbedError::Permanent(format!("unexpected stream: {e}")),
        OpenAIError::FileSaveError(m) | OpenAIError::FileReadError(m) => EmbedError::Permanent(m),
        OpenAIError::Boxed(e) => EmbedError::Transient(e.to_string()),
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH) {
            out.extend(self.embed_batch(chunk).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    fn settings(server: &MockServer, dimensions: usize) -> EmbeddingSettings {
        EmbeddingSettings {
            backend: crate::config::EmbeddingBackend::Openai,
            base_url: format!("{}/v1", server.uri()),
            api_key: Some("sk-test-123".to_string().into()),
            model: "text-embedding-3-small".into(),
            dimensions,
            timeout_secs: 5,
            ..Default::default()
        }
    }

    fn embedder(server: &MockServer, dimensions: usize) -> OpenAiEmbedder {
        let mut e = OpenAiEmbedder::new(&settings(server, dimensions)).unwrap();
        e.retry = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_millis(5))
            .with_max_times(MAX_RETRIES);
        e
    }

    fn response(vectors: &[(u32, Vec<f32>)]) -> Value {
        json!({
            "object": "list",
            "model": "text-embedding-3-small",
            "data": vectors.iter().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect::<Vec<_>>(),
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })
    }

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn sends_model_and_inputs_and_reads_vectors_in_index_order() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .and(header("authorization", "Bearer sk-test-123"))
            .and(body_json(
                json!({"model": "text-embedding-3-small", "input": ["hello", "world", " "]}),
            ))
            // Out of order on purpose: the index decides.
            .respond_with(ResponseTemplate::new(200).set_body_json(response(&[
                (1, vec![0.0, 2.0, 0.0]),
                (0, vec![3.0, 0.0, 4.0]),
                (2, vec![0.0, 0.0, -1.0]),
            ])))
            .expect(1)
            .mount(&server)
            .await;
        let e = embedder(&server, 3);
        assert_eq!(e.model_id(), "openai:text-embedding-3-small");
        assert_eq!(e.dimensions(), 3);
        let v = e.embed(&texts(&["hello", "world", ""])).await.unwrap();
        assert_eq!(
            v,
            vec![
                vec![0.6, 0.0, 0.8],
                vec![0.0, 1.0, 0.0],
                vec![0.0, 0.0, -1.0]
            ]
        );
    }

    #[tokio::test]
    async fn splits_large_inputs_into_batches() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(|req: &Request| {
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let n = body["input"].as_array().unwrap().len() as u32;
                ResponseTemplate::new(200).set_body_json(response(
                    &(0..n).map(|i| (i, vec![1.0, 0.0])).collect::<Vec<_>>(),
                ))
            })
            .expect(2)
            .mount(&server)
            .await;
        let inputs: Vec<String> = (0..300).map(|i| format!("text {i}")).collect();
        let v = embedder(&server, 2).embed(&inputs).await.unwrap();
        assert_eq!(v.len(), 300);
        let sizes: Vec<usize> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["input"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![256, 44]);
    }

    #[tokio::test]
    async fn wrong_dimension_is_permanent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(response(&[(0, vec![1.0, 0.0, 0.0])])),
            )
            .expect(1)
            .mount(&server)
            .await;
        match embedder(&server, 1536).embed(&texts(&["hi"])).await {
            Err(EmbedError::Permanent(m)) => {
                assert!(m.contains("3-dimensional") && m.contains("1536"), "{m}")
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_request_is_permanent_and_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": {"message": "model not found", "type": "invalid_request_error", "param": null, "code": null}
            })))
            .expect(1)
            .mount(&server)
            .await;
        match embedder(&server, 3).embed(&texts(&["hi"])).await {
            Err(EmbedError::Permanent(m)) => {
                assert!(m.contains("400") && m.contains("model not found"), "{m}")
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn server_error_is_retried_once_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("upstream crashed"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(response(&[(0, vec![0.0, 5.0])])),
            )
            .expect(1)
            .mount(&server)
            .await;
        let v = embedder(&server, 2).embed(&texts(&["hi"])).await.unwrap();
        assert_eq!(v, vec![vec![0.0, 1.0]]);
    }

    #[tokio::test]
    async fn rate_limit_gives_up_after_retries_as_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).set_body_json(json!({
                "error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}
            })))
            .expect(1 + MAX_RETRIES as u64)
            .mount(&server)
            .await;
        assert!(matches!(
            embedder(&server, 2).embed(&texts(&["hi"])).await,
            Err(EmbedError::Transient(_))
        ));
    }

    #[tokio::test]
    async fn malformed_json_is_permanent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw("{\"data\": [", "application/json"),
            )
            .expect(1)
            .mount(&server)
            .await;
        match embedder(&server, 2).embed(&texts(&["hi"])).await {
            Err(EmbedError::Permanent(m)) => assert!(m.contains("unreadable"), "{m}"),
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_server_is_transient() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = EmbeddingSettings {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            dimensions: 2,
            ..Default::default()
        };
        let mut e = OpenAiEmbedder::new(&s).unwrap();
        e.retry = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(1))
            .with_max_times(1);
        match e.embed(&texts(&["hi"])).await {
            Err(EmbedError::Transient(m)) => assert!(m.contains("connection"), "{m}"),
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
}
