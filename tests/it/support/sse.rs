//! A Server-Sent Events client for the event streams of a test server or a real process.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A Server-Sent Events client.
pub struct Stream {
    response: reqwest::Response,
    buffer: String,
}

/// One event from a stream: its number, type and JSON data.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: i64,
    pub kind: String,
    pub data: Value,
}

impl Stream {
    /// Opens `/api/v1/events{query}` on the server at `url`.
    pub async fn open(
        client: &reqwest::Client,
        url: &str,
        key: &str,
        query: &str,
        last_id: Option<i64>,
    ) -> Stream {
        let mut request = client
            .get(format!("{url}/api/v1/events{query}"))
            .bearer_auth(key);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// Opens the stream `request` asks for (a person's session, say).
    pub async fn open_request(request: reqwest::RequestBuilder) -> Stream {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame within `within`, whatever it is (a logged event, a `presence` one without
    /// a number, a `closed` one): its number, type and JSON data; heartbeats skipped.
    pub async fn frame(&mut self, within: Duration) -> Option<(Option<i64>, String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(kind) = kind {
                    return Some((id, kind, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event within `within`, heartbeats skipped.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        match self.frame(within).await? {
            (Some(id), kind, data) => Some(Received { id, kind, data }),
            (None, kind, data) => panic!("the stream closed: {kind} {data}"),
        }
    }

    /// The reason the server gives for closing the stream (its last, `closed` event), read
    /// within `within`, with the types of the events delivered before it. `None` when it stays
    /// open.
    pub async fn closed_within(&mut self, within: Duration) -> Option<(Value, Vec<String>)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut before = Vec::new();
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let kind = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("event:"))
                    .map(|k| k.trim().to_string());
                match kind.as_deref() {
                    Some("closed") => {
                        let data: String = frame
                            .lines()
                            .filter_map(|l| l.strip_prefix("data:"))
                            .map(str::trim_start)
                            .collect();
                        return Some((serde_json::from_str(&data).unwrap(), before));
                    }
                    Some(kind) => before.push(kind.to_string()),
                    None => {}
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events until one of `kind` satisfying `done`, within `within` in all.
    pub async fn until(
        &mut self,
        within: Duration,
        done: impl Fn(&Received) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.next(left).await else {
                panic!("no matching event within {within:?}; saw {seen:#?}");
            };
            let stop = done(&event);
            seen.push(event);
            if stop {
                return seen;
            }
        }
    }
}
