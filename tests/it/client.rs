//! A client generated from the served OpenAPI document works against the server: in
//! `tests/client`, `openapi-typescript` (npm) writes the types of this server's
//! `/api/v1/openapi.json`, `tsc` type-checks `client.ts` against them, and the compiled client
//! creates an agent, uploads a document, asks the sandbox and reads the inbox through
//! `openapi-fetch`. Skipped when Node.js or the npm packages are missing, unless
//! `PALAVER_REQUIRE_CLIENT=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::app::{Options, TestApp};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client")
}

/// Whether the client test can run; panics when it must and cannot.
fn client_ready() -> bool {
    let required = std::env::var("PALAVER_REQUIRE_CLIENT").is_ok_and(|v| v == "1");
    let packages = ["openapi-typescript", "openapi-fetch", "typescript"]
        .iter()
        .all(|p| {
            client_dir()
                .join(format!("node_modules/{p}/package.json"))
                .exists()
        });
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if packages && node {
        return true;
    }
    let missing = format!("node: {node}, npm packages in tests/client/node_modules: {packages}");
    assert!(
        !required,
        "PALAVER_REQUIRE_CLIENT=1 but the generated client cannot run ({missing})"
    );
    eprintln!("skipping the generated client's test ({missing})");
    false
}

/// Runs `node args...` in the client's directory; its standard output, or a panic with both
/// outputs. (Awaited, not blocking: the server it calls runs on this test's runtime.)
async fn node(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = tokio::process::Command::new("node")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(client_dir())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "node {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_generated_client_creates_an_agent_uploads_asks_and_reads_the_inbox() {
    if !client_ready() {
        return;
    }
    let t = TestApp::start(Options::default()).await.unwrap();
    let (status, key) = t
        .post(
            "/api/v1/api-keys",
            &json!({"name": "client", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();

    // Generated from what this server serves, then type-checked and compiled.
    let contract = format!("{}/api/v1/openapi.json", t.url);
    node(
        &[
            "node_modules/openapi-typescript/bin/cli.js",
            &contract,
            "--output",
            "generated/api.d.ts",
            // A field with a default may be left out of a request.
            "--default-non-nullable",
            "false",
        ],
        &[],
    )
    .await;
    node(&["node_modules/typescript/bin/tsc", "-p", "."], &[]).await;
    let said = node(
        &["out/client.js"],
        &[("PALAVER_URL", &t.url), ("PALAVER_KEY", &key)],
    )
    .await;
    let seen: Value = serde_json::from_str(said.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {said}"));

    assert_eq!(seen["upload"]["outcome"], "added", "{seen}");
    let document = seen["upload"]["document_id"].clone();
    assert_eq!(seen["documents"], json!([document]), "{seen}");
    // The sandbox took the question and answered it from the document, or handed it on (the
    // test embedder is no judge of relevance); either way with a message and its sources.
    assert_eq!(seen["question"], "Are you open on Saturday?", "{seen}");
    assert!(
        ["replied", "escalated"].contains(&seen["action"].as_str().unwrap()),
        "{seen}"
    );
    assert!(!seen["reply"].as_str().unwrap().is_empty(), "{seen}");
    assert!(seen["sources"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["inbox"].is_u64(), "{seen}");
    assert_eq!(seen["missing"], json!({"status": 404, "code": "not_found"}));

    // What the client did is in the server.
    let agent = t
        .get(&format!(
            "/api/v1/agents/{}",
            seen["agent"].as_str().unwrap()
        ))
        .await;
    assert_eq!(agent["name"], "client-demo");
    t.stop().await;
}
