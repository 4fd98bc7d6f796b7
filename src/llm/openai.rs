//! The `openai` answerer: any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM,
//! llama.cpp's server, LM Studio) through `async-openai`. It owns the request we send, the
//! timeout of every attempt, our own retries of transient failures (exponential backoff with
//! jitter, honouring `Retry-After`), and the sorting of every `async-openai` failure into
//! [`LlmError`], so nothing vendor-specific leaves this file.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason as OpenAiFinishReason,
};
use async_openai::Client;
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;

use super::{ChatMessage, ChatModel, ChatRequest, ChatRole, Completion, FinishReason, LlmError};
use crate::config::OpenAiSettings;

/// Longest wait we accept from a server's `Retry-After` inside one call; a server asking for
/// more is better left to the job runner, which reschedules without holding a worker.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// First backoff delay; doubled per retry, with jitter, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest backoff delay between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest server message kept in an error (they end up in logs and the job table).
const MAX_DETAIL_CHARS: usize = 300;

/// A chat model behind an OpenAI-compatible `/chat/completions` endpoint.
pub struct OpenAiChat {
    client: Client<OpenAIConfig>,
    name: String,
    model: String,
    timeout: Duration,
    max_retries: u32,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl OpenAiChat {
    /// A client for the configured server, key, default model, timeout and retries.
    pub fn new(s: &OpenAiSettings) -> Result<Self, LlmError> {
        let base_url = s.base_url.trim().trim_end_matches('/');
        if reqwest::Url::parse(base_url).is_err() {
            return Err(LlmError::Permanent(format!(
                "llm.openai.base_url is not a URL: `{base_url}`"
            )));
        }
        if s.model.trim().is_empty() {
            return Err(LlmError::Permanent("llm.openai.model is empty".into()));
        }
        if s.timeout_secs == 0 {
            return Err(LlmError::Permanent(
                "llm.openai.timeout_secs must be at least 1".into(),
            ));
        }
        let key = s
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .unwrap_or_default();
        // async-openai builds the header with `parse().unwrap()`: a key with a newline or other
        // control character would panic on the first request instead of failing here.
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return Err(LlmError::Permanent(
                "llm.openai.api_key contains characters not allowed in an HTTP header".into(),
            ));
        }
        // Everything explicit: OpenAIConfig would otherwise fill the key, organisation and
        // project from OPENAI_* environment variables and send them to whatever server is set.
        let config = OpenAIConfig::new()
            .with_api_base(base_url)
            .with_api_key(key)
            .with_org_id("")
            .with_project_id("");
        let timeout = Duration::from_secs(s.timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Permanent(format!("cannot build HTTP client: {e}")))?;
        // The default executor wraps the transport in async-openai's own retry layer (3 retries
        // of 429/5xx/connect errors). Replacing it with a bare transport keeps every retry here,
        // counted against `max_retries`; `Screen` keeps the status and `Retry-After` of refusals.
        let client = Client::with_config(config).with_http_service(Screen {
            inner: ReqwestService::new(http),
        });
        Ok(Self {
            client,
            name: format!("openai:{}", s.model),
            model: s.model.clone(),
            timeout,
            max_retries: s.max_retries,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        })
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.backoff_max)
            .with_max_times(self.max_retries as usize)
            .with_jitter()
    }

    /// One attempt, bounded by the timeout.
    async fn attempt(
        &self,
        request: &CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, Failure> {
        match tokio::time::timeout(self.timeout, self.client.chat().create(request.clone())).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(Failure::from(LlmError::Transient(format!(
                "no answer within {} s",
                self.timeout.as_secs()
            )))),
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip_all, fields(model = request.model.unwrap_or(&self.model)))]
    async fn complete(&self, request: &ChatRequest<'_>) -> Result<Completion, LlmError> {
        let model = request.model.unwrap_or(&self.model);
        let body = build_request(model, request)?;
        let send = || self.attempt(&body);
        let response = send
            .retry(self.backoff())
            .when(|f: &Failure| matches!(f.error, LlmError::Transient(_)))
            .adjust(|f: &Failure, planned| {
                // `planned` is None once the retry budget is spent; the server's hint never
                // extends the budget, only the wait.
                let planned = planned?;
                match f.retry_after {
                    Some(wait) if wait > MAX_RETRY_AFTER => None,
                    Some(wait) => Some(wait),
                    None => Some(planned),
                }
            })
            .notify(|f: &Failure, wait| {
                tracing::warn!(error = %f.error, retry_in = ?wait, "chat request failed; retrying");
            })
            .await
            .map_err(|f| f.error)?;
        read_response(model, request.messages, response)
    }
}

/// The body we send. `max_tokens` rather than `max_completion_tokens`: OpenAI still accepts it
/// for every non-reasoning chat model, and it is the only one llama-cpp-python's server and older
/// Ollama and llama.cpp servers read (they ignore the newer name and generate without a limit).
fn build_request(
    model: &str,
    request: &ChatRequest<'_>,
) -> Result<CreateChatCompletionRequest, LlmError> {
    if request.messages.is_empty() {
        return Err(LlmError::Permanent("prompt has no messages".into()));
    }
    if !(0.0..=2.0).contains(&request.temperature) {
        return Err(LlmError::Permanent(format!(
            "temperature {} is outside 0-2",
            request.temperature
        )));
    }
    if request.max_tokens == 0 {
        return Err(LlmError::Permanent("max_tokens is 0".into()));
    }
    #[allow(deprecated)]
    let body = CreateChatCompletionRequest {
        model: model.to_string(),
        messages: request.messages.iter().map(to_openai_message).collect(),
        temperature: Some(request.temperature),
        max_tokens: Some(request.max_tokens),
        ..Default::default()
    };
    Ok(body)
}

fn to_openai_message(m: &ChatMessage) -> ChatCompletionRequestMessage {
    let content = m.content.clone();
    match m.role {
        ChatRole::System => ChatCompletionRequestSystemMessage {
            content: content.into(),
            name: None,
        }
        .into(),
        ChatRole::User => ChatCompletionRequestUserMessage {
            content: content.into(),
            name: None,
        }
        .into(),
        ChatRole::Assistant => ChatCompletionRequestAssistantMessage {
            content: Some(content.into()),
            ..Default::default()
        }
        .into(),
    }
}

fn read_response(
    model: &str,
    sent: &[ChatMessage],
    response: CreateChatCompletionResponse,
) -> Result<Completion, LlmError> {
    let served_by = if response.model.is_empty() {
        model.to_string()
    } else {
        response.model.clone()
    };
    let Some(choice) = response.choices.into_iter().next() else {
        return Err(LlmError::Permanent(
            "server answered with no choices".into(),
        ));
    };
    let finish = match choice.finish_reason {
        Some(OpenAiFinishReason::Stop) => FinishReason::Stop,
        Some(OpenAiFinishReason::Length) => FinishReason::Length,
        Some(_) | None => FinishReason::Other,
    };
    let text = choice.message.content.unwrap_or_default();
    if text.trim().is_empty() {
        let why = match (choice.message.refusal, finish) {
            (Some(_), _) => "the model refused",
            (None, FinishReason::Length) => "max_tokens reached before any text",
            _ => "no text",
        };
        return Err(LlmError::Permanent(format!("empty answer: {why}")));
    }
    let (tokens_in, tokens_out) = match response.usage {
        Some(u) => (u.prompt_tokens, u.completion_tokens),
        None => (estimate_prompt_tokens(sent), count_tokens(&text)),
    };
    Ok(Completion {
        text,
        model: served_by,
        tokens_in,
        tokens_out,
        finish,
        confidence: None,
        cited: Vec::new(),
        options: Vec::new(),
    })
}

/// cl100k token count, for servers that report no usage.
fn count_tokens(text: &str) -> u32 {
    let n = tiktoken_rs::cl100k_base_singleton()
        .encode_ordinary(text)
        .len();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// cl100k estimate of a prompt: each message's text plus the few tokens of framing chat formats
/// add per message (role and separators), plus the primed assistant turn.
fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u32 {
    const PER_MESSAGE: u32 = 4;
    const REPLY_PRIMER: u32 = 3;
    messages
        .iter()
        .map(|m| count_tokens(&m.content).saturating_add(PER_MESSAGE))
        .fold(REPLY_PRIMER, u32::saturating_add)
}

/// A failed attempt: what the caller is told, and how long the server asked us to wait.
#[derive(Debug)]
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
}

impl From<LlmError> for Failure {
    fn from(error: LlmError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Sorts every `async-openai` failure into what the caller acts on.
fn classify(e: OpenAIError) -> Failure {
    match e {
        OpenAIError::Reqwest(e) => classify_transport(&e).into(),
        OpenAIError::ApiError(r) => {
            let refusal = Refusal {
                status: r.status_code.as_u16(),
                retry_after: None,
                message: r.api_error.message,
                kind: r.api_error.r#type,
                code: r.api_error.code,
            };
            refusal.classify()
        }
        // A body that stops mid-value was cut off on the way (a dropped connection, a proxy
        // closing early): the next attempt usually arrives whole. A complete body of the wrong
        // shape is what this server always sends; asking again gives the same.
        OpenAIError::JSONDeserialize(e, _) if e.is_eof() => {
            LlmError::Transient(format!("truncated response: {e}")).into()
        }
        OpenAIError::JSONDeserialize(e, _) => {
            LlmError::Permanent(format!("unreadable response: {e}")).into()
        }
        // Only streamed calls produce these, and a stream that breaks is a broken connection.
        OpenAIError::StreamError(e) => LlmError::Transient(format!("stream failed: {e}")).into(),
        OpenAIError::InvalidArgument(m) => {
            LlmError::Permanent(format!("invalid request: {m}")).into()
        }
        OpenAIError::FileSaveError(m) | OpenAIError::FileReadError(m) => {
            LlmError::Permanent(format!("file error: {m}")).into()
        }
        OpenAIError::Boxed(e) => match e.downcast::<Refusal>() {
            Ok(refusal) => refusal.classify(),
            // Nothing else in our transport stack boxes errors; an unknown one is a client bug
            // that retrying would only repeat.
            Err(e) => LlmError::Permanent(format!("client error: {e}")).into(),
        },
    }
}

fn classify_transport(e: &reqwest::Error) -> LlmError {
    if e.is_builder() {
        LlmError::Permanent(format!("cannot build request: {e}"))
    } else if e.is_redirect() {
        LlmError::Permanent(format!("redirect loop: {e}"))
    } else if e.is_timeout() {
        LlmError::Transient(format!("timed out: {e}"))
    } else if e.is_connect() {
        LlmError::Transient(format!("cannot connect: {e}"))
    } else {
        // Connection reset, body cut off, TLS hiccup: the server may well answer next time.
        LlmError::Transient(format!("connection failed: {e}"))
    }
}

/// A non-2xx answer, read by [`Screen`] before async-openai sees it: async-openai keeps neither
/// `Retry-After` nor the status of a body that is not OpenAI's error JSON (llama.cpp's server
/// sends a numeric `code`, proxies send HTML).
#[derive(Debug)]
struct Refusal {
    status: u16,
    retry_after: Option<Duration>,
    message: String,
    kind: Option<String>,
    code: Option<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(kind) = &self.kind {
            write!(f, " {kind}")?;
        }
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl StdError for Refusal {}

impl Refusal {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        // An unreadable body still leaves the status to decide by.
        let body = response.bytes().await.unwrap_or_default();
        let (message, kind, code) = error_fields(&body);
        Self {
            status,
            retry_after,
            message,
            kind,
            code,
        }
    }

    fn mentions(&self, needle: &str) -> bool {
        let hit = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains(needle));
        hit(&self.code) || hit(&self.kind) || self.message.contains(needle)
    }

    fn context_exceeded(&self) -> bool {
        // OpenAI and llama-cpp-python: code `context_length_exceeded`; llama.cpp's server: type
        // `exceed_context_size_error`; vLLM and older OpenAI: only the message says so.
        self.mentions("context_length_exceeded")
            || self.mentions("exceed_context_size")
            || self
                .message
                .to_ascii_lowercase()
                .contains("maximum context length")
    }

    fn classify(&self) -> Failure {
        let detail = self.to_string();
        let error = match self.status {
            400..=499 if self.context_exceeded() => LlmError::ContextLengthExceeded(detail),
            // A 429 for an exhausted quota or billing stays until someone pays.
            429 if self.mentions("insufficient_quota") => LlmError::Permanent(detail),
            408 | 425 | 429 => LlmError::Transient(detail),
            500..=599 => LlmError::Transient(detail),
            _ => LlmError::Permanent(detail),
        };
        Failure {
            error,
            retry_after: self.retry_after,
        }
    }
}

/// `message`, `type` and `code` of an error body, leniently: `{"error": {...}}`, `{"error":
/// "text"}`, a bare object, or plain text; `code` may be a string or a number.
fn error_fields(body: &[u8]) -> (String, Option<String>, Option<String>) {
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let inner = match v.get("error") {
                Some(e @ serde_json::Value::Object(_)) => e,
                Some(serde_json::Value::String(s)) => return (clip(s), None, None),
                _ => &v,
            };
            let message = inner.get("message").and_then(text_of).unwrap_or_default();
            (
                clip(&message),
                inner.get("type").and_then(text_of),
                inner.get("code").and_then(text_of),
            )
        }
        Err(_) => (clip(String::from_utf8_lossy(body).trim()), None, None),
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The transport: async-openai's plain reqwest service, with non-2xx answers turned into a
/// [`Refusal`] that keeps what async-openai would drop.
#[derive(Clone, Debug)]
struct Screen {
    inner: ReqwestService,
}

type ScreenFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for Screen {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ScreenFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let sent = self.inner.call(request);
        Box::pin(async move {
            let response = sent.await?;
            if response.status().is_success() {
                Ok(response)
            } else {
                Err(OpenAIError::Boxed(Box::new(Refusal::read(response).await)))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatRole;
    use serde_json::{json, Value};
    use std::time::Instant;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn settings(server: &MockServer, max_retries: u32) -> OpenAiSettings {
        OpenAiSettings {
            base_url: format!("{}/v1", server.uri()),
            api_key: Some("sk-test-123".to_string().into()),
            model: "gpt-test".into(),
            timeout_secs: 5,
            max_retries,
        }
    }

    fn chat(server: &MockServer, max_retries: u32) -> OpenAiChat {
        let mut chat = OpenAiChat::new(&settings(server, max_retries)).unwrap();
        chat.backoff_min = Duration::from_millis(1);
        chat.backoff_max = Duration::from_millis(5);
        chat
    }

    fn prompt() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(ChatRole::System, "You answer for Casa Nube Bakery."),
            ChatMessage::new(ChatRole::User, "Are you open on Sunday?"),
            ChatMessage::new(ChatRole::Assistant, "Yes, from 9 to 13."),
            ChatMessage::new(ChatRole::User, "And Saturday?"),
        ]
    }

    fn request(messages: &[ChatMessage]) -> ChatRequest<'_> {
        ChatRequest {
            messages,
            question: "And Saturday?",
            previous: None,
            sources: &[],
            lexicon: None,
            centre: None,
            embedded: None,
            model: None,
            temperature: 0.25,
            max_tokens: 128,
        }
    }

    fn answer(content: Value, finish: &str, usage: Option<Value>) -> Value {
        let mut body = json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-test-2025",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish
            }]
        });
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        body
    }

    fn ok_answer() -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(answer(
            json!("Saturday 8 to 14."),
            "stop",
            Some(json!({"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49})),
        ))
    }

    async fn requests_seen(server: &MockServer) -> usize {
        server.received_requests().await.map_or(0, |r| r.len())
    }

    #[tokio::test]
    async fn sends_the_exact_body_and_key_and_reads_the_answer() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer sk-test-123"))
            .and(body_json(json!({
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "You answer for Casa Nube Bakery."},
                    {"role": "user", "content": "Are you open on Sunday?"},
                    {"role": "assistant", "content": "Yes, from 9 to 13."},
                    {"role": "user", "content": "And Saturday?"}
                ],
                "temperature": 0.25,
                "max_tokens": 128
            })))
            .respond_with(ok_answer())
            .expect(1)
            .mount(&server)
            .await;
        let chat = chat(&server, 3);
        assert_eq!(chat.name(), "openai:gpt-test");
        let messages = prompt();
        let done = chat.complete(&request(&messages)).await.unwrap();
        assert_eq!(
            done,
            Completion {
                text: "Saturday 8 to 14.".into(),
                model: "gpt-test-2025".into(),
                tokens_in: 42,
                tokens_out: 7,
                finish: FinishReason::Stop,
                confidence: None,
                cited: vec![],
                options: Vec::new(),
            }
        );
    }

    #[tokio::test]
    async fn the_request_model_overrides_the_default() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(wiremock::matchers::body_partial_json(
                json!({"model": "llama3.2"}),
            ))
            .respond_with(ok_answer())
            .expect(1)
            .mount(&server)
            .await;
        let messages = prompt();
        let mut req = request(&messages);
        req.model = Some("llama3.2");
        chat(&server, 0).complete(&req).await.unwrap();
    }

    #[tokio::test]
    async fn counts_tokens_itself_when_the_server_reports_no_usage() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer(
                json!("Hello there!"),
                "length",
                None,
            )))
            .mount(&server)
            .await;
        let messages = vec![
            ChatMessage::new(ChatRole::System, "You help."),
            ChatMessage::new(ChatRole::User, "Hi"),
        ];
        let done = chat(&server, 0)
            .complete(&request(&messages))
            .await
            .unwrap();
        // cl100k: "Hello there!" is 3 tokens; "You help." 3 and "Hi" 1, plus 4 framing tokens
        // per message and 3 for the reply primer.
        assert_eq!(done.tokens_out, 3);
        assert_eq!(done.tokens_in, 3 + 4 + 1 + 4 + 3);
        assert_eq!(done.finish, FinishReason::Length);
    }

    #[tokio::test]
    async fn a_rate_limit_is_retried_after_the_time_the_server_asks_for() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ok_answer())
            .mount(&server)
            .await;
        let messages = prompt();
        let started = Instant::now();
        let done = chat(&server, 3)
            .complete(&request(&messages))
            .await
            .unwrap();
        assert_eq!(done.text, "Saturday 8 to 14.");
        assert_eq!(requests_seen(&server).await, 2);
        // The backoff alone would wait 1-5 ms.
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_long_retry_after_is_left_to_the_caller() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "600"))
            .expect(1)
            .mount(&server)
            .await;
        let messages = prompt();
        let started = Instant::now();
        let err = chat(&server, 3)
            .complete(&request(&messages))
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::Transient(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn server_errors_are_retried_max_retries_times_then_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
            .expect(3)
            .mount(&server)
            .await;
        let messages = prompt();
        let err = chat(&server, 2)
            .complete(&request(&messages))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LlmError::Transient(ref m) if m.contains("500")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_prompt_over_the_context_is_reported_as_such_without_retry() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded"
            }})))
            .expect(1)
            .mount(&server)
            .await;
        let messages = prompt();
        let err = chat(&server, 3)
            .complete(&request(&messages))
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::ContextLengthExceeded(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_refused_key_is_permanent_and_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
                "message": "Incorrect API key provided: sk-test-123.",
                "type": "invalid_request_error",
                "code": "invalid_api_key"
            }})))
            .expect(1)
            .mount(&server)
            .await;
        let messages = prompt();
        let err = chat(&server, 3)
            .complete(&request(&messages))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LlmError::Permanent(ref m) if m.contains("401")),
            "{err:?}"
        );
        assert_eq!(requests_seen(&server).await, 1);
    }

    #[tokio::test]
    async fn an_answer_slower_than_the_timeout_is_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ok_answer().set_delay(Duration::from_secs(3)))
            .expect(2)
            .mount(&server)
            .await;
        let mut chat = chat(&server, 1);
        chat.timeout = Duration::from_millis(200);
        let messages = prompt();
        let started = Instant::now();
        let err = chat.complete(&request(&messages)).await.unwrap_err();
        assert!(matches!(err, LlmError::Transient(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn malformed_answers() {
        type Expected = fn(&LlmError) -> bool;
        // (body, retried?, expected kind)
        let cases: &[(&str, bool, Expected)] = &[
            // Cut off mid-object: a transfer problem, worth another attempt.
            (
                r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"mess"#,
                true,
                |e| matches!(e, LlmError::Transient(_)),
            ),
            // Whole, but not a chat completion: this server always says this.
            (r#"{"status":"ok"}"#, false, |e| {
                matches!(e, LlmError::Permanent(_))
            }),
            ("<html><body>Welcome to nginx!</body></html>", false, |e| {
                matches!(e, LlmError::Permanent(_))
            }),
        ];
        for (body, retried, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_raw(body.as_bytes(), "application/json"),
                )
                .mount(&server)
                .await;
            let messages = prompt();
            let err = chat(&server, 1)
                .complete(&request(&messages))
                .await
                .unwrap_err();
            assert!(expected(&err), "{body}: {err:?}");
            let attempts = if *retried { 2 } else { 1 };
            assert_eq!(requests_seen(&server).await, attempts, "{body}");
        }
    }

    #[tokio::test]
    async fn empty_content_is_permanent() {
        for content in [json!(""), json!(null), json!("  \n")] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_json(answer(
                    content.clone(),
                    "stop",
                    None,
                )))
                .expect(1)
                .mount(&server)
                .await;
            let messages = prompt();
            let err = chat(&server, 2)
                .complete(&request(&messages))
                .await
                .unwrap_err();
            assert!(matches!(err, LlmError::Permanent(_)), "{content}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_transient() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let s = OpenAiSettings {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            max_retries: 1,
            ..OpenAiSettings::default()
        };
        let mut chat = OpenAiChat::new(&s).unwrap();
        chat.backoff_min = Duration::from_millis(1);
        let messages = prompt();
        let err = chat.complete(&request(&messages)).await.unwrap_err();
        assert!(
            matches!(err, LlmError::Transient(ref m) if m.contains("connect")),
            "{err:?}"
        );
    }

    /// A real OpenAI-compatible server (e.g. llama-cpp-python's, serving SmolLM2 with a
    /// 2048-token context) at `PALAVER_TEST_OPENAI_URL`; skipped with a note when unset.
    fn real_server() -> Option<OpenAiChat> {
        let Ok(base_url) = std::env::var("PALAVER_TEST_OPENAI_URL") else {
            eprintln!("skipped: set PALAVER_TEST_OPENAI_URL to an OpenAI-compatible server");
            return None;
        };
        let model = std::env::var("PALAVER_TEST_OPENAI_MODEL").unwrap_or_else(|_| "smollm2".into());
        let s = OpenAiSettings {
            base_url,
            api_key: None,
            model,
            timeout_secs: 120,
            max_retries: 1,
        };
        Some(OpenAiChat::new(&s).unwrap())
    }

    #[tokio::test]
    async fn a_real_server_answers_and_reports_usage() {
        let Some(chat) = real_server() else { return };
        let messages = [
            ChatMessage::new(ChatRole::System, "You are a helpful assistant."),
            ChatMessage::new(ChatRole::User, "What is the capital of France?"),
        ];
        let mut req = request(&messages);
        req.temperature = 0.0;
        req.max_tokens = 32;
        let done = chat.complete(&req).await.unwrap();
        assert!(!done.text.is_empty());
        assert!(done.tokens_in > 10 && done.tokens_out > 0, "{done:?}");
        assert!(done.tokens_out <= 32, "{done:?}");
    }

    #[tokio::test]
    async fn a_real_server_refuses_a_prompt_over_its_context() {
        let Some(chat) = real_server() else { return };
        let long = "bread ".repeat(5000);
        let messages = [ChatMessage::new(ChatRole::User, long)];
        let err = chat.complete(&request(&messages)).await.unwrap_err();
        assert!(matches!(err, LlmError::ContextLengthExceeded(_)), "{err:?}");
    }

    #[test]
    fn refusals_are_sorted_by_what_the_caller_does() {
        enum Kind {
            Transient,
            Permanent,
            Context,
        }
        let cases: &[(u16, &str, Kind)] = &[
            (
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                Kind::Transient,
            ),
            (
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                Kind::Permanent,
            ),
            (500, "Internal Server Error", Kind::Transient),
            (502, "<html>Bad Gateway</html>", Kind::Transient),
            (503, r#"{"error":"model is loading"}"#, Kind::Transient),
            (408, "", Kind::Transient),
            (
                400,
                r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","code":null}}"#,
                Kind::Permanent,
            ),
            (
                401,
                r#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                Kind::Permanent,
            ),
            (403, "Forbidden", Kind::Permanent),
            (
                404,
                r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
                Kind::Permanent,
            ),
            (404, "<html>Not Found</html>", Kind::Permanent),
            (
                422,
                r#"{"detail":[{"msg":"field required"}]}"#,
                Kind::Permanent,
            ),
            // OpenAI and llama-cpp-python.
            (
                400,
                r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
                Kind::Context,
            ),
            // llama.cpp's server: numeric code, the type says it.
            (
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#,
                Kind::Context,
            ),
            // vLLM: only the message says it.
            (
                400,
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","code":400}"#,
                Kind::Context,
            ),
        ];
        for (status, body, kind) in cases {
            let (message, kind_field, code) = error_fields(body.as_bytes());
            let refusal = Refusal {
                status: *status,
                retry_after: None,
                message,
                kind: kind_field,
                code,
            };
            let got = refusal.classify().error;
            let ok = match kind {
                Kind::Transient => matches!(got, LlmError::Transient(_)),
                Kind::Permanent => matches!(got, LlmError::Permanent(_)),
                Kind::Context => matches!(got, LlmError::ContextLengthExceeded(_)),
            };
            assert!(ok, "{status} {body}: {got:?}");
        }
    }

    #[test]
    fn error_details_are_clipped() {
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(1000));
        let (message, _, _) = error_fields(long.as_bytes());
        assert_eq!(message.chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn retry_after_headers() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let in_the_past = "Wed, 21 Oct 2015 07:28:00 GMT";
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc2822();
        // Headers, and the accepted range of the wait in milliseconds.
        type Case<'a> = (Vec<(&'static str, &'a str)>, Option<(u64, u64)>);
        let cases: Vec<Case<'_>> = vec![
            (vec![("retry-after", "3")], Some((3000, 3000))),
            (vec![("retry-after", "0.5")], Some((500, 500))),
            (
                vec![("retry-after-ms", "250"), ("retry-after", "3")],
                Some((250, 250)),
            ),
            (vec![("retry-after", in_the_past)], Some((0, 0))),
            (vec![("retry-after", soon.as_str())], Some((18_000, 20_000))),
            (vec![("retry-after", "soon")], None),
            (vec![("retry-after", "-1")], None),
            (vec![], None),
        ];
        for (headers, expected) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in &headers {
                map.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            let got = retry_after(&map).map(|d| d.as_millis() as u64);
            match expected {
                None => assert_eq!(got, None, "{headers:?}"),
                Some((lo, hi)) => {
                    let got = got.unwrap_or_else(|| panic!("{headers:?}: none"));
                    assert!((lo..=hi).contains(&got), "{headers:?}: {got}");
                }
            }
        }
    }

    #[test]
    fn settings_are_checked() {
        let good = OpenAiSettings::default();
        assert!(OpenAiChat::new(&good).is_ok());
        let cases = [
            OpenAiSettings {
                base_url: "not a url".into(),
                ..good.clone()
            },
            OpenAiSettings {
                api_key: Some("sk-abc\ndef".to_string().into()),
                ..good.clone()
            },
            OpenAiSettings {
                model: " ".into(),
                ..good.clone()
            },
            OpenAiSettings {
                timeout_secs: 0,
                ..good.clone()
            },
        ];
        for s in cases {
            assert!(
                matches!(OpenAiChat::new(&s), Err(LlmError::Permanent(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn requests_that_cannot_be_sent_are_refused_before_sending() {
        let messages = prompt();
        let mut req = request(&messages);
        req.max_tokens = 0;
        assert!(build_request("m", &req).is_err());
        let mut req = request(&messages);
        req.temperature = 2.5;
        assert!(build_request("m", &req).is_err());
        let req = request(&[]);
        assert!(build_request("m", &req).is_err());
    }
}
