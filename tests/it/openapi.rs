//! The OpenAPI document at `/api/v1/openapi.json`: it covers every route the server serves and
//! no other, with the roles the router enforces; the README's examples, the document's own and
//! what the server really answers fit its schemas; and it is valid OpenAPI 3.1 (checked by
//! `openapi-spec-validator` from PyPI, run by `PALAVER_OPENAPI_PYTHON` or `python3`; skipped
//! without it unless `PALAVER_REQUIRE_OPENAPI_VALIDATOR=1`).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::app::{Options, TestApp};

pub(crate) async fn served_document(t: &TestApp) -> Value {
    // No credentials: the contract is public.
    let response = t
        .client
        .get(format!("{}/api/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A validator of `schema`, whose `$ref`s resolve against the document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

pub(crate) fn check(
    doc: &Value,
    schema: &Value,
    instance: &Value,
    what: &str,
) -> Result<(), String> {
    let errors: Vec<String> = validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {instance}\n  {}", errors.join("\n  ")))
    }
}

/// The operation serving `method` on a concrete `path` (`/api/v1/agents/demo`).
pub(crate) fn operation<'a>(
    doc: &'a Value,
    method: &str,
    path: &str,
) -> Option<(&'a str, &'a Value)> {
    let path = path.split('?').next().unwrap();
    let parts: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let pattern: Vec<&str> = template.split('/').collect();
            let fits = pattern.len() == parts.len()
                && pattern
                    .iter()
                    .zip(&parts)
                    .all(|(p, s)| p.starts_with('{') || p == s);
            let op = &item[method.to_ascii_lowercase()];
            (fits && !op.is_null()).then_some((template.as_str(), op))
        })
}

/// Every route the router is made of is in the document with the roles the router enforces,
/// and the document has no operation the router does not serve.
#[tokio::test]
async fn the_document_covers_every_route_and_no_other() {
    let t = TestApp::start(Options::default()).await.unwrap();
    let routes = palaver::http::route_table(&t.app);
    assert!(
        routes.len() > 60,
        "the route table has {} routes",
        routes.len()
    );
    let differences = palaver::http::openapi::differences(&routes);
    assert!(
        differences.is_empty(),
        "the document and the routes differ:\n{}",
        differences.join("\n")
    );

    let doc = served_document(&t).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.insert((method.clone(), path.clone()));
            assert!(
                op["operationId"].is_string() && op["tags"].is_array(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(operations.len(), routes.len());
    for route in &routes {
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&route.path][&method];
        assert_eq!(
            op["x-roles"],
            json!(route.access.names()),
            "{method} {}",
            route.path
        );
        if op["x-roles"] == json!(["public"]) {
            assert!(op["security"].is_array(), "{method} {}", route.path);
        } else {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {}",
                route.path
            );
            assert!(
                op["responses"]["403"].is_object(),
                "{method} {}",
                route.path
            );
        }
    }
    // What `x-roles` says is what the router does: an author is refused an owner's route and
    // allowed an author's.
    let (_, author) = t
        .post(
            "/api/v1/api-keys",
            &json!({"name": "writer", "role": "author"}),
        )
        .await;
    let author = author["key"].as_str().unwrap();
    for (method, path, allowed) in [
        (Method::GET, "/api/v1/jobs", false),
        (Method::GET, "/api/v1/agents", true),
        (Method::GET, "/api/v1/workspaces", false),
    ] {
        let (_, op) = operation(&doc, method.as_str(), path).unwrap();
        assert_eq!(
            op["x-roles"].as_array().unwrap().contains(&json!("author")),
            allowed
        );
        let status = t
            .client
            .request(method.clone(), format!("{}{path}", t.url))
            .bearer_auth(author)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status == 403, !allowed, "{method} {path}: {status}");
    }

    // The incoming and outgoing webhook signatures are described.
    let schemes = &doc["components"]["securitySchemes"];
    for (scheme, header) in [
        ("meta_signature", "X-Hub-Signature-256"),
        ("kapso_signature", "X-Webhook-Signature"),
        ("evolution_token", "X-Palaver-Webhook-Token"),
        ("palaver_signature", "X-Palaver-Signature"),
        ("api_key", "X-API-Key"),
        ("csrf", "X-CSRF-Token"),
    ] {
        assert_eq!(schemes[scheme]["name"], header, "{scheme}");
    }
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let event = &doc["webhooks"]["event"]["post"];
    assert_eq!(event["security"], json!([{"palaver_signature": []}]));
    t.stop().await;
}

/// The README's API examples: `(method, path, body)` of each `curl -d` and of each code span
/// such as `PATCH /webhooks/{id} {"active": true}` whose body is JSON.
fn readme_examples() -> Vec<(String, String, Value)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let mut last: Option<(String, String)> = None;
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("-d '") {
        let command_start = rest[..at].rfind("curl ").unwrap_or(0);
        let body_start = at + "-d '".len();
        let body_end = body_start + rest[body_start..].find('\'').unwrap();
        let body: Value = serde_json::from_str(&rest[body_start..body_end])
            .unwrap_or_else(|e| panic!("README example is not JSON: {e}"));
        let line_end = body_end + rest[body_end..].find('\n').unwrap_or(0);
        let command = format!("{}{}", &rest[command_start..at], &rest[body_end..line_end]);
        let path = command.find("/api/v1/").map(|p| {
            let tail = &command[p + "/api/v1".len()..];
            tail.split(|c: char| c.is_whitespace() || c == '\'' || c == '`')
                .next()
                .unwrap()
                .to_string()
        });
        let method = command
            .split_whitespace()
            .skip_while(|w| *w != "-X")
            .nth(1)
            .unwrap_or("POST")
            .to_string();
        let target = match path {
            Some(path) => (method, path),
            // `curl ... -d`: the same call as the example before it.
            None => last
                .clone()
                .expect("an example without a URL follows one with it"),
        };
        out.push((target.0.clone(), target.1.clone(), body));
        last = Some(target);
        rest = &rest[body_end..];
    }
    for span in readme.split('`').skip(1).step_by(2) {
        let mut words = span.splitn(3, ' ');
        let (Some(method), Some(path), Some(body)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) || !path.starts_with('/') {
            continue;
        }
        if let Ok(body @ Value::Object(_)) = serde_json::from_str::<Value>(body) {
            out.push((method.into(), path.into(), body));
        }
    }
    out
}

/// Every `example` in the document, with the schema it illustrates.
fn document_examples(value: &Value, at: &str, out: &mut Vec<(String, Value, Value)>) {
    match value {
        Value::Object(map) => {
            if let Some(example) = map.get("example") {
                let schema = map.get("schema").cloned().unwrap_or_else(|| {
                    let mut schema = map.clone();
                    schema.remove("example");
                    Value::Object(schema)
                });
                out.push((at.to_string(), schema, example.clone()));
            }
            for (key, inner) in map {
                document_examples(inner, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                document_examples(inner, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The README's examples and the document's own fit the schemas, and so do the server's real
/// answers to a tour of the API.
#[tokio::test]
async fn examples_and_answers_fit_the_schemas() {
    let t = TestApp::start(Options::default()).await.unwrap();
    let doc = served_document(&t).await;
    let mut failures = Vec::new();

    let examples = readme_examples();
    assert!(
        examples.len() >= 6,
        "the README's examples were not found: {examples:?}"
    );
    for (method, path, body) in &examples {
        let Some((template, op)) = operation(&doc, method, &format!("/api/v1{path}")) else {
            failures.push(format!("README: {method} {path} is not in the document"));
            continue;
        };
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {template} takes no JSON body");
        if let Err(e) = check(&doc, schema, body, &format!("README {method} {template}")) {
            failures.push(e);
        }
    }

    let mut own = Vec::new();
    document_examples(&doc, "#", &mut own);
    assert!(own.len() >= 5, "the document has {} examples", own.len());
    for (at, schema, example) in &own {
        if let Err(e) = check(&doc, schema, example, at) {
            failures.push(e);
        }
    }

    // Real answers: a tour of the API as the operator.
    let (status, created) = t
        .post(
            "/api/v1/agents",
            &json!({"name": "demo", "system_prompt": "Be brief."}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = t
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://crm.example.com/palaver"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = t
        .post(
            "/api/v1/api-keys",
            &json!({"name": "reader", "role": "agent"}),
        )
        .await;
    assert_eq!(status, 201);
    for path in [
        "/api/v1/agents",
        "/api/v1/agents/demo",
        "/api/v1/agents/demo/documents",
        "/api/v1/channels",
        "/api/v1/conversations",
        "/api/v1/contacts",
        "/api/v1/workspace",
        "/api/v1/workspaces",
        "/api/v1/members",
        "/api/v1/audit",
        "/api/v1/api-keys",
        "/api/v1/webhooks",
        "/api/v1/jobs",
        "/api/v1/jobs/counts",
        "/api/v1/eval/runs",
        "/api/v1/events?after=0",
    ] {
        let answer = t.get(path).await;
        let (template, op) = operation(&doc, "GET", path).unwrap();
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        if let Err(e) = check(&doc, schema, &answer, &format!("GET {template}")) {
            failures.push(e);
        }
    }
    // An error answer fits the error body.
    let (status, error) = t
        .send(t.request(Method::GET, "/api/v1/agents/nobody"))
        .await;
    assert_eq!(status, 404);
    let (_, op) = operation(&doc, "GET", "/api/v1/agents/nobody").unwrap();
    assert_eq!(
        op["responses"]["404"]["$ref"],
        "#/components/responses/NotFound"
    );
    if let Err(e) = check(
        &doc,
        &json!({"$ref": "#/components/schemas/ErrorResponse"}),
        &error,
        "404",
    ) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    t.stop().await;
}

/// The document is valid OpenAPI 3.1 by the official schema, as `openapi-spec-validator`
/// (PyPI) checks it.
#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let required = std::env::var("PALAVER_REQUIRE_OPENAPI_VALIDATOR").is_ok_and(|v| v == "1");
    // The Python that has it (`.ci/run` makes a virtual environment), or the one on the path.
    let python = std::env::var("PALAVER_OPENAPI_PYTHON").unwrap_or_else(|_| "python3".into());
    let available = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "PALAVER_REQUIRE_OPENAPI_VALIDATOR=1 but {python} cannot import openapi_spec_validator"
        );
        eprintln!(
            "skipping: openapi-spec-validator is not installed (set PALAVER_REQUIRE_OPENAPI_VALIDATOR=1 to make this an error)"
        );
        return;
    }
    let t = TestApp::start(Options::default()).await.unwrap();
    let doc = served_document(&t).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    // The version is detected from the document's `openapi` field: 3.1.
    let checked = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("OK"), "{said}");
    t.stop().await;
}
