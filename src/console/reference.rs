//! The API reference page: the OpenAPI document the server serves at `/api/v1/openapi.json`,
//! rendered on the server as one readable page (operations by tag with who may call them,
//! their parameters, bodies and answers; then the schemas and the signature schemes). No
//! script: it is a page of text.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::{context, Value as Page};
use serde_json::{json, Value};

use super::pages::page;
use crate::accounts::Roles;
use crate::http::AppState;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

pub(super) async fn reference(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        state,
        headers,
        Roles::ANY,
        "/reference",
        "reference.html",
        async |state, _viewer| {
            let doc = crate::http::openapi::document(&crate::http::route_table(state));
            let view = view(&doc);
            Ok(context! { page => "reference", ..Page::from_serialize(&view) })
        },
    )
    .await
}

/// A schema in a few words: a component's name (linked on the page), `X[]` for a list of X,
/// or its JSON type.
fn summary(schema: &Value) -> Value {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap_or(target);
        return json!({"text": name, "link": name});
    }
    if schema["type"] == "array" || schema["type"] == json!(["array", "null"]) {
        let inner = summary(&schema["items"]);
        return json!({"text": format!("{}[]", inner["text"].as_str().unwrap_or("any")), "link": inner["link"]});
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(items) = schema[key].as_array() {
            let parts: Vec<Value> = items.iter().map(summary).collect();
            let link = parts
                .iter()
                .find_map(|p| p["link"].as_str().map(str::to_string));
            let words: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            let joiner = if key == "allOf" { " & " } else { " | " };
            return json!({"text": words.join(joiner), "link": link});
        }
    }
    let text = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if schema.as_object().is_some_and(|o| o.is_empty()) => "any".into(),
        _ => "object".into(),
    };
    let text = match (&schema["format"], &schema["enum"]) {
        (_, Value::Array(values)) if !values.is_empty() => values
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), |s| format!("\"{s}\"")))
            .collect::<Vec<_>>()
            .join(" | "),
        (Value::String(format), _) => format!("{text} ({format})"),
        _ => text,
    };
    json!({"text": text, "link": null})
}

fn bodies(content: &Value) -> Vec<Value> {
    content
        .as_object()
        .map(|types| {
            types
                .iter()
                .map(|(kind, media)| json!({"content_type": kind, "schema": summary(&media["schema"])}))
                .collect()
        })
        .unwrap_or_default()
}

/// What the page shows, read from the document.
fn view(doc: &Value) -> Value {
    let components = &doc["components"];
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(target) => {
                let mut at = doc;
                for part in target.trim_start_matches("#/").split('/') {
                    at = &at[part];
                }
                at.clone()
            }
            None => v.clone(),
        }
    };
    let operation = |method: &str, path: &str, op: &Value| -> Value {
        let params: Vec<Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let p = resolve(p);
                json!({
                    "name": p["name"], "in": p["in"], "required": p["required"] == true,
                    "schema": summary(&p["schema"]), "description": p["description"],
                })
            })
            .collect();
        let responses: Vec<Value> = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(status, r)| {
                let r = resolve(r);
                json!({"status": status, "description": r["description"], "bodies": bodies(&r["content"])})
            })
            .collect();
        json!({
            "id": op["operationId"], "method": method.to_uppercase(), "path": path,
            "summary": op["summary"], "description": op["description"], "roles": op["x-roles"],
            "params": params, "request": bodies(&op["requestBody"]["content"]),
            "responses": responses,
        })
    };
    let mut tags: Vec<Value> = doc["tags"].as_array().cloned().unwrap_or_default();
    for tag in &mut tags {
        let name = tag["name"].clone();
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in METHODS {
                let op = &item[method];
                if !op.is_null() && op["tags"][0] == name {
                    ops.push(operation(method, path, op));
                }
            }
        }
        tag["operations"] = Value::Array(ops);
    }
    let webhooks: Vec<Value> = doc["webhooks"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, item)| Some(operation("post", name, item.get("post")?)))
        .collect();
    let schemas: Vec<Value> = components["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let properties: Vec<Value> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(field, s)| {
                    json!({
                        "name": field, "required": required.contains(&field.as_str()),
                        "schema": summary(s), "description": s["description"],
                    })
                })
                .collect();
            json!({
                "name": name, "description": schema["description"],
                "shape": if properties.is_empty() { summary(schema) } else { json!(null) },
                "properties": properties,
            })
        })
        .collect();
    let security: Vec<Value> = components["securitySchemes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            json!({"name": name, "where": s["in"].as_str().map_or_else(
                || format!("Authorization: {}", s["scheme"].as_str().unwrap_or("")),
                |place| format!("{place} {}", s["name"].as_str().unwrap_or(""))),
                "description": s["description"]})
        })
        .collect();
    json!({
        "title": doc["info"]["title"], "version": doc["info"]["version"],
        "openapi": doc["openapi"], "description": doc["info"]["description"],
        "tags": tags, "webhooks": webhooks, "schemas": schemas, "security": security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_said_in_a_few_words() {
        for (schema, text, link) in [
            (
                json!({"$ref": "#/components/schemas/AgentView"}),
                "AgentView",
                json!("AgentView"),
            ),
            (
                json!({"type": "array", "items": {"$ref": "#/components/schemas/Hook"}}),
                "Hook[]",
                json!("Hook"),
            ),
            (
                json!({"type": ["string", "null"]}),
                "string | null",
                json!(null),
            ),
            (
                json!({"type": "string", "format": "uuid"}),
                "string (uuid)",
                json!(null),
            ),
            (
                json!({"type": "string", "enum": ["a", "b"]}),
                "\"a\" | \"b\"",
                json!(null),
            ),
            (json!({}), "any", json!(null)),
        ] {
            let said = summary(&schema);
            assert_eq!(said["text"], text, "{schema}");
            assert_eq!(said["link"], link, "{schema}");
        }
    }
}
