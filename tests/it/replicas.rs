//! Three real `palaver serve` processes on one Postgres database, as behind a load balancer:
//! started together they migrate once; webhooks spread across them (and retried to another
//! replica) are each answered exactly once; every replica's event stream carries every
//! replica's events; the channel's send rate holds across them; and a replica killed with
//! SIGKILL in the middle of a turn loses nothing: its lease expires and another replica finishes
//! the turn, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::app::{eventually, ADMIN_KEY};
use crate::support::process::{free_port, Embeddings, Process};
use crate::support::sse::Stream;
use crate::webhooks::{sign, APP_SECRET, GRAPH_VERSION, PHONE_ID};

const REPLICAS: usize = 3;
const CUSTOMERS: usize = 24;
/// The channel's send rate (per minute) and the burst allowed above it.
const RATE_PER_MINUTE: u64 = 240;
const BURST: u64 = 2;

/// Graph's send endpoint: accepts every request and records each message (not read receipts)
/// with who it went to, and when.
#[derive(Clone, Default)]
struct Sends(Arc<Mutex<Vec<(String, Instant)>>>);

impl Sends {
    fn to(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (to, _) in self.0.lock().unwrap().iter() {
            *counts.entry(to.clone()).or_default() += 1;
        }
        counts
    }

    fn times(&self) -> Vec<Instant> {
        let mut times: Vec<Instant> = self.0.lock().unwrap().iter().map(|(_, t)| *t).collect();
        times.sort();
        times
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Respond for Sends {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let to = body["to"].as_str().unwrap_or_default().to_string();
        let mut sends = self.0.lock().unwrap();
        if !to.is_empty() {
            sends.push((to.clone(), Instant::now()));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.OUT.{}", sends.len())}]
        }))
    }
}

/// A Meta webhook with one text message from `customer`.
fn webhook(customer: &str, id: &str, text: &str) -> Vec<u8> {
    crate::webhooks::meta_text_to(PHONE_ID, customer, id, text)
}

async fn deliver(client: &reqwest::Client, replica: &Process, body: &[u8]) {
    let ack = client
        .post(format!("{}/webhooks/meta", replica.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body, APP_SECRET))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200, "{}", ack.text().await.unwrap());
}

fn customer(n: usize) -> String {
    format!("3519100{n:05}")
}

#[tokio::test]
async fn replicas_on_one_database_answer_each_message_once_and_survive_a_kill_mid_turn() {
    let Some(database) = crate::support::pg::fresh_database().await else {
        return;
    };
    let mocks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(Embeddings::stalling_once("STALL", Duration::from_secs(60)))
        .mount(&mocks)
        .await;
    let sends = Sends::default();
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(sends.clone())
        .mount(&mocks)
        .await;
    let env = [
        ("PALAVER__DATABASE__URL", database.clone()),
        ("PALAVER__PIPELINE__DEBOUNCE_MS", "0".to_string()),
        ("PALAVER__WORKERS__LEASE_SECS", "2".to_string()),
        ("PALAVER__CHANNELS__BURST", BURST.to_string()),
        (
            "PALAVER__CHANNELS__ENCRYPTION_KEY",
            palaver::crypto::generate_key(),
        ),
    ];

    // Started together on an empty database: each comes up, and the migrations ran once.
    let dirs: Vec<tempfile::TempDir> = (0..REPLICAS)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut replicas: Vec<Process> = dirs
        .iter()
        .map(|dir| Process::spawn(dir.path(), free_port(), &mocks.uri(), &env))
        .collect();
    for (n, replica) in replicas.iter().enumerate() {
        assert!(replica.ready().await, "replica {n} did not come up");
    }
    let db = sqlx::PgPool::connect(&database).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("version"), r.get("success")))
            .collect();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert_eq!(
        applied.len(),
        files,
        "every migration recorded once: {applied:?}"
    );
    assert!(applied.iter().all(|(_, ok)| *ok), "{applied:?}");

    // Set up through one replica: the others answer from the same knowledge.
    let client = reqwest::Client::new();
    let api = |r: &Process, p: &str| format!("{}/api/v1{p}", r.url);
    replicas[0]
        .set_up_demo(&client, json!({"rate_per_minute": RATE_PER_MINUTE}))
        .await;
    // A replica with another credentials key would fail every send: it refuses to start.
    let stray = tempfile::tempdir().unwrap();
    let mut other_key = env.to_vec();
    other_key.retain(|(k, _)| *k != "PALAVER__CHANNELS__ENCRYPTION_KEY");
    let mut child = Process::command(stray.path(), free_port(), &mocks.uri(), &other_key)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = eventually(Duration::from_secs(30), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("a replica with another key started");
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("needs the same channels.encryption_key"),
        "{stderr}"
    );

    // Every replica finds the passage the first one indexed.
    for replica in &replicas {
        let found: Value = client
            .get(api(replica, "/agents/demo/search"))
            .bearer_auth(ADMIN_KEY)
            .query(&[
                ("q", "Which payment methods do you accept?"),
                ("top_k", "3"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            found.to_string().contains("MB WAY"),
            "{} answers from the shared knowledge: {found}",
            replica.url
        );
    }

    // A stream on every replica, then webhooks spread across them, each retried to the next.
    let mut streams = Vec::new();
    for replica in &replicas {
        streams.push(
            Stream::open(
                &client,
                &replica.url,
                ADMIN_KEY,
                "?type=message.received",
                None,
            )
            .await,
        );
    }
    let started = Instant::now();
    for n in 0..CUSTOMERS {
        let body = webhook(
            &customer(n),
            &format!("wamid.IN.{n}"),
            &format!("Which payment methods do you accept? (customer {n})"),
        );
        deliver(&client, &replicas[n % REPLICAS], &body).await;
        deliver(&client, &replicas[(n + 1) % REPLICAS], &body).await;
    }
    for (r, stream) in streams.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < CUSTOMERS {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = stream.next(left).await.unwrap_or_else(|| {
                panic!(
                    "replica {r}'s stream saw {} of {CUSTOMERS} messages",
                    seen.len()
                )
            });
            let text = event.data["data"]["message"]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(seen.insert(text.to_string()), "{text} twice on replica {r}");
        }
    }
    let all = eventually(Duration::from_secs(60), || async {
        (sends.total() >= CUSTOMERS).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "{} of {CUSTOMERS} replies sent",
        sends.total()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = sends.to();
    for n in 0..CUSTOMERS {
        assert_eq!(to.get(&customer(n)), Some(&1), "customer {n}: {to:?}");
    }
    assert_eq!(sends.total(), CUSTOMERS, "{to:?}");

    // The send rate is the channel's, not each replica's: in any stretch of sends, no more than
    // the burst plus the rate (a little slack for the network between slot and send).
    let times = sends.times();
    let interval = Duration::from_millis(60_000 / RATE_PER_MINUTE);
    for (i, first) in times.iter().enumerate() {
        for (j, later) in times.iter().enumerate().skip(i + 1) {
            let allowed = BURST as u128
                + (later.duration_since(*first) + interval / 2).as_millis() / interval.as_millis();
            assert!(
                (j - i + 1) as u128 <= allowed,
                "{} sends within {:?}: the rate allows {allowed}",
                j - i + 1,
                later.duration_since(*first)
            );
        }
    }
    let spread = times.last().unwrap().duration_since(times[0]);
    assert!(
        spread >= interval * (CUSTOMERS as u32 - BURST as u32 - 1),
        "{CUSTOMERS} sends took {spread:?} (started {:?} ago)",
        started.elapsed()
    );

    // A turn in flight on one replica when it is killed: another finishes it, once.
    let stalled = customer(CUSTOMERS);
    deliver(
        &client,
        &replicas[1],
        &webhook(
            &stalled,
            "wamid.IN.STALL",
            "STALL: do you deliver to Braga?",
        ),
    )
    .await;
    let holder = eventually(Duration::from_secs(10), || async {
        let stalling = mocks.received_requests().await.unwrap().iter().any(|r| {
            r.url.path() == "/v1/embeddings" && String::from_utf8_lossy(&r.body).contains("STALL")
        });
        if !stalling {
            return None;
        }
        sqlx::query("SELECT locked_by FROM jobs WHERE kind = 'handle' AND status = 'running'")
            .fetch_optional(&db)
            .await
            .unwrap()
            .map(|r| r.get::<String, _>("locked_by"))
    })
    .await
    .expect("the turn runs on some replica");
    // Workers are named host-pid-process-worker.
    let pid: u32 = holder.rsplit('-').nth(2).unwrap().parse().unwrap();
    let victim = replicas
        .iter()
        .position(|r| r.child.id() == pid)
        .unwrap_or_else(|| panic!("{holder} is none of the replicas"));
    replicas[victim].kill();
    assert_eq!(
        to_count(&sends, &stalled),
        0,
        "nothing sent before the kill"
    );
    let finished = eventually(Duration::from_secs(30), || async {
        (to_count(&sends, &stalled) >= 1).then_some(())
    })
    .await;
    assert!(finished.is_some(), "another replica finished the turn");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(to_count(&sends, &stalled), 1, "exactly once");
    // The send's job is completed just after the provider answers it: give that a moment on a
    // loaded machine, and say what is left if anything is.
    let emptied = eventually(Duration::from_secs(30), || async {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
            .fetch_one(&db)
            .await
            .unwrap()
            .get("n");
        (n == 0).then_some(())
    })
    .await;
    if emptied.is_none() {
        let left: Vec<String> = sqlx::query(
            "SELECT kind, status, locked_by, attempts, abandoned, last_error FROM jobs",
        )
        .fetch_all(&db)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} by {:?}, {} attempts, {} abandoned: {:?}",
                r.get::<String, _>("kind"),
                r.get::<String, _>("status"),
                r.get::<Option<String>, _>("locked_by"),
                r.get::<i64, _>("attempts"),
                r.get::<i64, _>("abandoned"),
                r.get::<Option<String>, _>("last_error"),
            )
        })
        .collect();
        panic!("jobs left behind: {left:?}");
    }
    db.close().await;
}

fn to_count(sends: &Sends, customer: &str) -> usize {
    sends.to().get(customer).copied().unwrap_or(0)
}
