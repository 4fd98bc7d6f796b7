//! The real `palaver serve` binary as a child process, with an OpenAI-compatible embeddings mock
//! (the test embedder's bag-of-words vectors) so it needs no model.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

use super::app::{eventually, ADMIN_KEY};
use crate::webhooks::{APP_SECRET, PHONE_ID};

/// An OpenAI-compatible `/v1/embeddings` answering with the test embedder's vectors. With
/// [`Embeddings::stalling_once`], the first request whose input contains a marker is answered
/// only after a long delay (a turn held in flight).
#[derive(Default)]
pub struct Embeddings {
    stall: Option<(String, Duration, Arc<AtomicBool>)>,
}

impl Embeddings {
    /// Holds the first request containing `marker` for `delay`; later ones answer at once.
    pub fn stalling_once(marker: &str, delay: Duration) -> Self {
        Self {
            stall: Some((marker.to_string(), delay, Arc::new(AtomicBool::new(false)))),
        }
    }
}

impl Respond for Embeddings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let (inputs, answer) = palaver::bench::soak::mock_embeddings(&body);
        let response = ResponseTemplate::new(200).set_body_json(answer);
        match &self.stall {
            Some((marker, delay, done))
                if inputs.iter().any(|i| i.contains(marker.as_str()))
                    && !done.swap(true, Ordering::SeqCst) =>
            {
                response.set_delay(*delay)
            }
            _ => response,
        }
    }
}

/// A running `palaver serve`, killed when dropped.
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    /// Starts `palaver serve` on `port` with its data in `data`, Graph and embeddings at
    /// `mocks`, and `env` on top (a database URL, settings).
    pub fn spawn(data: &Path, port: u16, mocks: &str, env: &[(&str, String)]) -> Process {
        let child = Self::command(data, port, mocks, env)
            .spawn()
            .expect("start palaver serve");
        Process {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The command [`Process::spawn`] runs.
    pub fn command(data: &Path, port: u16, mocks: &str, env: &[(&str, String)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palaver"));
        command
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PALAVER__DATA__DIR", data)
            .env("PALAVER__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PALAVER__SERVER__ADMIN_API_KEY", ADMIN_KEY)
            .env("PALAVER__SERVER__DRAIN_SECS", "0")
            .env("PALAVER__CHANNELS__META_GRAPH_URL", mocks)
            .env("PALAVER__EMBEDDING__BACKEND", "openai")
            .env("PALAVER__EMBEDDING__BASE_URL", format!("{mocks}/v1"))
            .env("PALAVER__EMBEDDING__API_KEY", "sk-test")
            .env("PALAVER__EMBEDDING__MODEL", "hash-64")
            .env("PALAVER__EMBEDDING__DIMENSIONS", "64")
            .env("PALAVER__WORKERS__POLL_MS", "20")
            .env("PALAVER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Waits until `/readyz` answers 200; false if the process does not get there in a minute.
    pub async fn ready(&self) -> bool {
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(60), || async {
            client
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await
        .is_some()
    }

    /// [`Process::spawn`], then [`Process::ready`].
    pub async fn serve(data: &Path, port: u16, mocks: &str, env: &[(&str, String)]) -> Process {
        let process = Process::spawn(data, port, mocks, env);
        assert!(process.ready().await, "palaver serve did not come up");
        process
    }

    /// Through this process's API: the `demo` agent answering from `knowledge/faq.md`, and a
    /// Meta channel for [`PHONE_ID`] with `settings`.
    pub async fn set_up_demo(&self, client: &reqwest::Client, settings: Value) {
        let api = |p: &str| format!("{}/api/v1{p}", self.url);
        let agent = client
            .post(api("/agents"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "demo", "confidence_threshold": 0.2}))
            .send()
            .await
            .unwrap();
        assert_eq!(agent.status(), 201);
        let faq = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/knowledge/faq.md")).unwrap();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(faq)
                .file_name("faq.md")
                .mime_str("text/markdown")
                .unwrap(),
        );
        let upload = client
            .post(api("/agents/demo/documents"))
            .bearer_auth(ADMIN_KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 201, "{}", upload.text().await.unwrap());
        let channel = client
            .post(api("/channels"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "n", "provider": "meta", "phone_number_id": PHONE_ID, "agent": "demo",
                          "settings": settings,
                          "credentials": {"access_token": "t", "app_secret": APP_SECRET, "verify_token": "v"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(channel.status(), 201, "{}", channel.text().await.unwrap());
    }

    /// Kills the process with SIGKILL: nothing is flushed or released.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
