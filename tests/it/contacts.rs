//! Contacts: what a business keeps about a customer (language, notes, labels, attributes such as
//! a CRM's case id) and finding conversations by it, on SQLite and on Postgres.

use serde_json::{json, Value};

use crate::webhooks::{meta_app_with, meta_text, post_meta, CUSTOMER};
use wiremock::MockServer;

async fn contacts_are_kept_and_find_their_conversations(postgres: bool) {
    let graph = MockServer::start().await;
    let Some(t) = meta_app_with(&graph, json!({}), postgres, |_| {}).await else {
        return;
    };
    post_meta(&t, &meta_text("wamid.CONTACT.1", "Hello")).await;
    let contacts = t.get("/api/v1/contacts").await;
    assert_eq!(contacts.as_array().unwrap().len(), 1, "{contacts}");
    let contact = &contacts[0];
    assert_eq!(contact["wa_id"], CUSTOMER);
    assert_eq!(contact["name"], "Test Customer");
    let id = contact["id"].as_str().unwrap().to_string();
    let conversation = &t.get("/api/v1/conversations").await[0];
    assert_eq!(conversation["contact"]["id"], id.as_str());

    let patch = |body: Value| {
        t.request(reqwest::Method::PATCH, &format!("/api/v1/contacts/{id}"))
            .json(&body)
            .send()
    };
    let response = patch(json!({
        "language": "pt", "notes": "Prefers deliveries after 18:00",
        "labels": ["vip", "catering"], "attributes": {"crm_case": "4711", "orders": 12}
    }))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["labels"], json!(["catering", "vip"]));
    assert_eq!(
        updated["attributes"],
        json!({"crm_case": "4711", "orders": "12"})
    );
    assert_eq!(updated["language"], "pt");

    // A CRM finds the conversation of its case; labels filter too.
    let found = t.get("/api/v1/conversations?attribute=crm_case:4711").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert!(t
        .get("/api/v1/conversations?attribute=crm_case:9999")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        t.get("/api/v1/conversations?label=vip")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(t
        .get("/api/v1/conversations?label=wholesale&attribute=crm_case:4711")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        t.get("/api/v1/contacts?label=catering&q=test")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Attributes merge; null removes one; labels are replaced as a whole.
    let response = patch(json!({"attributes": {"orders": null, "tier": "gold"}, "labels": []}))
        .await
        .unwrap();
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        updated["attributes"],
        json!({"crm_case": "4711", "tier": "gold"})
    );
    assert_eq!(updated["labels"], json!([]));
    assert_eq!(updated["notes"], "Prefers deliveries after 18:00", "kept");

    // Bad input is named field by field; nothing changes.
    let response = patch(json!({"language": "Portuguese", "attributes": {"Case Id": "1"}}))
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["language", "attributes.Case Id"]);
    assert_eq!(
        t.get(&format!("/api/v1/contacts/{id}")).await["language"],
        "pt"
    );
    let bad = t
        .request(
            reqwest::Method::GET,
            "/api/v1/conversations?attribute=nocolon",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    t.stop().await;
}

#[tokio::test]
async fn contacts_are_kept_and_find_their_conversations_sqlite() {
    contacts_are_kept_and_find_their_conversations(false).await;
}

#[tokio::test]
async fn contacts_are_kept_and_find_their_conversations_postgres() {
    contacts_are_kept_and_find_their_conversations(true).await;
}
