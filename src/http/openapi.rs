//! The API's contract as OpenAPI 3.1, made from the code: utoipa reads each handler's
//! `#[utoipa::path]` and the types it exchanges, and [`document`] adds what the route table
//! knows (who may call each operation, which credentials it takes, the errors every route can
//! answer) and the webhooks: the providers' (signed by them, checked by us) and ours (the
//! events Palaver POSTs, signed with the subscription's secret). [`differences`] says where the
//! route table and the annotations disagree; a test keeps it empty.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::route::{Access, Route};
use crate::domain::Event;

/// The `/api/v1` operations (paths relative to it).
#[derive(OpenApi)]
#[openapi(
    paths(
        super::api::people::sign_in,
        super::api::people::accept,
        super::api::people::setup,
        super::api::people::sign_out,
        super::api::people::me,
        super::api::people::change_password,
        super::api::people::members,
        super::api::people::set_member,
        super::api::people::remove_member,
        super::api::people::invite,
        super::api::people::audit_log,
        super::api::workspaces::current,
        super::api::workspaces::set_assignment,
        super::api::workspaces::set_model_calls_limit,
        super::api::workspaces::list,
        super::api::workspaces::create,
        super::api::workspaces::update,
        super::api::agents::list,
        super::api::agents::create,
        super::api::agents::read,
        super::api::agents::update,
        super::api::agents::remove,
        super::api::instructions::draft,
        super::api::instructions::compare,
        super::api::knowledge::list,
        super::api::knowledge::upload,
        super::api::knowledge::read,
        super::api::knowledge::remove,
        super::api::knowledge::search,
        super::api::keys::list,
        super::api::keys::create,
        super::api::keys::revoke,
        super::api::channels::list,
        super::api::channels::create,
        super::api::channels::read,
        super::api::channels::update,
        super::api::channels::remove,
        super::api::channels::connect,
        super::api::channels::state,
        super::api::channels::templates,
        super::api::channels::logout,
        super::api::conversations::list,
        super::api::conversations::read,
        super::api::conversations::messages,
        super::api::conversations::reply,
        super::api::conversations::react,
        super::api::conversations::send_template,
        super::api::conversations::start,
        super::api::conversations::mark_read,
        super::api::conversations::assign,
        super::api::conversations::resolve,
        super::api::conversations::hand_back,
        super::api::conversations::media,
        super::api::conversations::eval_case,
        super::api::conversations::labels,
        super::api::conversations::add_label,
        super::api::conversations::remove_label,
        super::api::conversations::snooze,
        super::api::conversations::wake,
        super::api::notes::list,
        super::api::notes::create,
        super::api::notes::presence,
        super::api::labels::list,
        super::api::labels::create,
        super::api::labels::update,
        super::api::labels::remove,
        super::api::canned::list,
        super::api::canned::create,
        super::api::canned::update,
        super::api::canned::remove,
        super::api::teams::list,
        super::api::teams::create,
        super::api::teams::read,
        super::api::teams::update,
        super::api::teams::remove,
        super::api::teams::add_member,
        super::api::teams::remove_member,
        super::api::teams::channel_assignment,
        super::api::teams::set_channel_assignment,
        super::api::contacts::list,
        super::api::contacts::read,
        super::api::contacts::update,
        super::api::contacts::export,
        super::api::contacts::import,
        super::api::reports::read,
        super::api::faq::gaps,
        super::api::faq::list,
        super::api::faq::propose,
        super::api::faq::read,
        super::api::faq::edit,
        super::api::faq::remove,
        super::api::faq::approve,
        super::api::faq::reject,
        super::api::faq::suite,
        super::api::sandbox::message,
        super::api::sandbox::reset,
        super::api::jobs::list,
        super::api::jobs::counts,
        super::api::jobs::requeue,
        super::api::eval::start,
        super::api::eval::list,
        super::api::eval::show,
        super::api::events::events,
        super::api::hooks::list,
        super::api::hooks::create,
        super::api::hooks::show,
        super::api::hooks::update,
        super::api::hooks::remove,
        super::api::hooks::deliveries,
        super::api::hooks::redeliver,
    ),
    components(schemas(Event, super::error::ErrorResponse))
)]
struct ApiDoc;

/// Health, metrics and the providers' webhooks (outside `/api/v1`).
#[derive(OpenApi)]
#[openapi(paths(
    openapi_json,
    super::health::healthz,
    super::health::readyz,
    super::health::metrics_text,
    super::webhooks::handshake,
    super::webhooks::per_provider,
    super::webhooks::per_channel,
))]
struct EdgeDoc;

/// The document the router was made with, for [`openapi_json`].
#[derive(Clone)]
pub struct Contract(pub std::sync::Arc<Value>);

/// The contract: anyone may read it, as anyone may read the README.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of everything served", content_type = "application/json"))
)]
pub(super) async fn openapi_json(
    axum::Extension(Contract(doc)): axum::Extension<Contract>,
) -> axum::Json<Value> {
    axum::Json(doc.as_ref().clone())
}

/// What utoipa makes of the annotations alone, before [`document`] adds the route table's
/// knowledge.
fn annotated() -> Value {
    let doc = EdgeDoc::openapi().nest(super::api::PREFIX, ApiDoc::openapi());
    serde_json::to_value(doc).expect("the document serializes")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Where `routes` and the annotated operations disagree: a route with no operation, or an
/// operation no route serves. Empty when the document covers exactly what is served.
pub fn differences(routes: &[Route]) -> Vec<String> {
    let doc = annotated();
    let mut out = Vec::new();
    let served: std::collections::BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.as_str().to_ascii_lowercase(), r.path.clone()))
        .collect();
    for (method, path) in &served {
        if doc["paths"][path][method].is_null() {
            out.push(format!(
                "{} {path} is served but not documented",
                method.to_uppercase()
            ));
        }
    }
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if !item[method].is_null() && !served.contains(&(method.to_string(), path.clone()))
                {
                    out.push(format!(
                        "{} {path} is documented but not served",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    out
}

/// The OpenAPI 3.1 document of everything `routes` serve.
pub fn document(routes: &[Route]) -> Value {
    let mut doc = annotated();
    doc["info"] = json!({
        "title": "Palaver API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": DESCRIPTION,
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    doc["servers"] = json!([{"url": "/", "description": "This server"}]);
    doc["security"] = json!([{"bearer": []}, {"api_key": []}, {"session": [], "csrf": []}]);
    let components = doc["components"]
        .as_object_mut()
        .expect("utoipa writes components");
    components.insert("securitySchemes".into(), security_schemes());
    components.insert("responses".into(), error_responses());
    components.insert(
        "parameters".into(),
        json!({"Workspace": {
            "name": "X-Palaver-Workspace",
            "in": "header",
            "required": false,
            "description": "The workspace to act in, by slug or id: the operator key acts as the owner of any workspace (the default one without it); a signed-in person acts with their role there (their first workspace without it). A workspace key may only name its own.",
            "schema": {"type": "string"},
        }}),
    );
    doc["tags"] = tags();
    flatten_compositions(&mut doc);
    for route in routes {
        let method = route.method.as_str().to_ascii_lowercase();
        let Some(op) = doc["paths"][&route.path][&method].as_object_mut() else {
            continue;
        };
        describe(op, &method, &route.path, route.access);
    }
    doc["webhooks"] = json!({"event": outgoing_event()});
    doc
}

/// Writes each `allOf` of object schemas (what utoipa makes of `#[serde(flatten)]`) as the one
/// object it is on the wire. Left as `allOf`, a part that refuses unknown fields (an agent's
/// configuration) would refuse the fields of the other parts (the agent's id and name).
fn flatten_compositions(doc: &mut Value) {
    let components = doc["components"]["schemas"].clone();
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(target) => components[target.trim_start_matches("#/components/schemas/")].clone(),
            None => schema.clone(),
        }
    };
    fn walk(value: &mut Value, resolve: &dyn Fn(&Value) -> Value) {
        match value {
            Value::Object(map) => {
                for inner in map.values_mut() {
                    walk(inner, resolve);
                }
                let Some(Value::Array(parts)) = map.get("allOf") else {
                    return;
                };
                let parts: Vec<Value> = parts.iter().map(resolve).collect();
                if parts.len() < 2 || parts.iter().any(|p| p["properties"].as_object().is_none()) {
                    return;
                }
                let mut properties = Map::new();
                let mut required = Vec::new();
                for part in &parts {
                    properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
                    required.extend(part["required"].as_array().cloned().unwrap_or_default());
                }
                map.remove("allOf");
                map.insert("type".into(), json!("object"));
                map.insert("properties".into(), Value::Object(properties));
                if !required.is_empty() {
                    map.insert("required".into(), Value::Array(required));
                }
                if parts
                    .iter()
                    .all(|p| p["additionalProperties"] == json!(false))
                {
                    map.insert("additionalProperties".into(), json!(false));
                }
            }
            Value::Array(items) => {
                for inner in items {
                    walk(inner, resolve);
                }
            }
            _ => {}
        }
    }
    walk(&mut doc["components"], &resolve);
    walk(&mut doc["paths"], &resolve);
}

const DESCRIPTION: &str = "Palaver answers a business's WhatsApp messages. Every operation under \
`/api/v1` runs in one workspace with one role: an API key carries both (`Authorization: Bearer \
<key>` or `X-API-Key`), a signed-in person has a role per workspace (the session cookie, with \
`X-CSRF-Token` on requests that change something). `x-roles` on each operation says who may call \
it (`public`: no credentials; `operator`: the instance's operator key or owner); any other role \
gets 403. Ids of another workspace answer 404, exactly as ids that do not exist. Errors are \
`{\"error\": {\"code\", \"message\", \"fields\"?, \"request_id\"?}}`.";

fn security_schemes() -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`palaver keys create`, or `POST /api/v1/api-keys`): its workspace and role. The operator key (`server.admin_api_key`) is the owner of any workspace, chosen with `X-Palaver-Workspace`.",
        },
        "api_key": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The same key as the bearer token, in its own header.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": super::auth::SESSION_COOKIE,
            "description": "A signed-in person's session (the console): set by `POST /api/v1/sign-in`, HttpOnly and SameSite=Lax.",
        },
        "csrf": {
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRF-Token",
            "description": "With a session cookie, every request that changes something (not GET, HEAD or OPTIONS) must echo the session's `csrf_token`, or it answers 403.",
        },
        "meta_signature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Hub-Signature-256",
            "description": "Meta (WhatsApp Cloud API): `sha256=<hex HMAC-SHA256 of the raw body keyed with the app secret>`, checked in constant time against every Meta channel's app secret before the body is parsed.",
        },
        "kapso_signature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Webhook-Signature",
            "description": "Kapso: the hex HMAC-SHA256 of the raw body keyed with the channel's webhook secret, checked in constant time before the body is parsed.",
        },
        "palaver_signature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Palaver-Signature",
            "description": "How Palaver signs the webhooks it sends: `t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" keyed with the subscription's secret>` (`whsec_...`, shown once when the subscription is made).",
        },
        "evolution_token": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Palaver-Webhook-Token",
            "description": "Evolution API: the channel's webhook secret, which Palaver registers with the instance's webhook and Evolution sends back on every call; compared in constant time.",
        },
    })
}

/// What each error status means; every one carries the error body.
const ERRORS: [(&str, &str, &str); 12] = [
    ("400", "BadRequest", "Malformed request: bad JSON, query string, path or multipart (`bad_request`)."),
    ("401", "Unauthorized", "Missing or invalid credentials (`unauthorized`), a wrong email or password (`bad_credentials`) or webhook signature (`bad_signature`)."),
    ("403", "Forbidden", "The caller's role may not do this, a session request without its CSRF token, or a key naming another workspace (`forbidden`)."),
    ("404", "NotFound", "No such resource in the caller's workspace (`not_found`)."),
    ("408", "RequestTimeout", "The body did not arrive in time (`request_timeout`)."),
    ("409", "Conflict", "Conflicts with what exists (`conflict`), or the workspace is at a limit (`limit_reached`)."),
    ("413", "TooLarge", "The body is over its limit (`too_large`)."),
    ("415", "UnsupportedMediaType", "A content type not accepted here (`unsupported_media_type`)."),
    ("422", "Invalid", "Well-formed but invalid: `fields` names each bad field (`invalid`)."),
    ("429", "Throttled", "Too many attempts (`throttled`), or a monthly quota of the workspace is used up (`quota_reached`); `Retry-After` says when to try again."),
    ("500", "Internal", "Internal error: the message says only that, with the `request_id` to find it in the log (`internal`)."),
    ("503", "Unavailable", "A dependency (database, model, index) is not available right now (`unavailable`)."),
];

fn error_responses() -> Value {
    let mut out = Map::new();
    for (_, name, description) in ERRORS {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        });
        if name == "Throttled" {
            response["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait.",
                "schema": {"type": "integer"},
            }});
        }
        out.insert(name.to_string(), response);
    }
    Value::Object(out)
}

/// The errors an operation can answer besides its own: by its access, its path and its body.
fn errors_of(method: &str, path: &str, access: Access, has_body: bool) -> Vec<&'static str> {
    let mut codes = vec!["400"];
    if !matches!(access, Access::Public) {
        codes.extend(["401", "403"]);
    }
    if path.contains('{') {
        codes.push("404");
    }
    if has_body || method != "get" {
        codes.extend(["409", "413", "415", "422"]);
    }
    codes.extend(["500", "503"]);
    codes
}

/// Adds to one operation who may call it, its credentials and its errors.
fn describe(op: &mut Map<String, Value>, method: &str, path: &str, access: Access) {
    let roles = access.names();
    op.insert("x-roles".into(), json!(roles));
    let who = match access {
        Access::Public => "No credentials needed.".to_string(),
        Access::Operator => "The instance's operator only (its key, or the instance owner).".into(),
        Access::Members(_) => format!("Roles: {}.", roles.join(", ")),
    };
    let description = match op.get("description").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => format!("{text}\n\n{who}"),
        _ => who,
    };
    op.insert("description".into(), Value::String(description));
    let has_body = op.contains_key("requestBody");
    if matches!(access, Access::Public) {
        if !op.contains_key("security") {
            op.insert("security".into(), json!([]));
        }
    } else {
        let parameters = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are a list");
        parameters.push(json!({"$ref": "#/components/parameters/Workspace"}));
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses are an object");
    for code in errors_of(method, path, access, has_body) {
        let name = ERRORS
            .iter()
            .find(|(status, _, _)| *status == code)
            .map(|(_, name, _)| *name)
            .expect("every error status is listed");
        responses
            .entry(code)
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
}

fn tags() -> Value {
    json!([
        {"name": "people", "description": "Sign-in, sessions, members, invitations, the audit log."},
        {"name": "workspaces", "description": "The caller's workspace; the operator manages them all."},
        {"name": "agents", "description": "Agents and their configuration."},
        {"name": "knowledge", "description": "An agent's documents and search."},
        {"name": "sandbox", "description": "Talking to an agent without WhatsApp."},
        {"name": "channels", "description": "WhatsApp numbers and instances."},
        {"name": "conversations", "description": "The inbox: conversations, messages, replies."},
        {"name": "labels", "description": "The workspace's conversation labels."},
        {"name": "canned", "description": "Canned responses: prepared replies inserted by short code."},
        {"name": "teams", "description": "Teams of people who answer the inbox, and who gets each channel's escalations."},
        {"name": "reports", "description": "How the inbox did: conversations, the bot's share, people's response times, escalations and satisfaction."},
        {"name": "contacts", "description": "Customers and what the business keeps about them."},
        {"name": "events", "description": "The event log, as a stream or pages."},
        {"name": "webhooks", "description": "Outgoing webhook subscriptions and their deliveries."},
        {"name": "keys", "description": "API keys."},
        {"name": "jobs", "description": "The durable job queue."},
        {"name": "eval", "description": "Eval runs."},
        {"name": "meta", "description": "The contract, health, readiness and metrics."},
        {"name": "providers", "description": "Webhooks the WhatsApp providers call, each checked by its provider's scheme."},
    ])
}

/// The event Palaver POSTs to a subscription (`POST /api/v1/webhooks`).
fn outgoing_event() -> Value {
    let header = |name: &str, description: &str, example: Value| {
        json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": {"type": "string"}, "example": example,
        })
    };
    json!({"post": {
        "summary": "An event, delivered to a subscription",
        "operationId": "deliver_event",
        "tags": ["webhooks"],
        "description": "Palaver POSTs each event a subscription asked for, as JSON (the same object as the event stream's `data:`). A receiver checks `X-Palaver-Signature` over the raw body before anything else, rejects a `t` far from its clock (5 minutes, say), and drops a repeated `X-Palaver-Delivery`. Any 2xx answer is a delivery; anything else, or no answer within `events.hook_timeout_secs`, is retried with backoff (a `Retry-After` is honoured up to 15 minutes); after `events.hook_pause_after` failures in a row the subscription is paused.",
        "security": [{"palaver_signature": []}],
        "parameters": [
            header("X-Palaver-Signature", "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" keyed with the subscription's secret>`.", json!("t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd")),
            header("X-Palaver-Event", "The event's type.", json!("message.received")),
            header("X-Palaver-Event-Id", "The event's number in the workspace's log.", json!("42")),
            header("X-Palaver-Delivery", "The delivery's id: the same on every attempt of one delivery.", json!("0193f4a2-7c1e-7b61-9d3a-5f0c8e2b4a11")),
        ],
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
        },
        "responses": {
            "2XX": {"description": "Delivered."},
            "default": {"description": "Not delivered: retried later."},
        },
    }})
}
