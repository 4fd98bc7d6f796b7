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

/// A CSV file posted to the import with `key`; the status and the JSON answer.
async fn import_with(t: &crate::support::app::TestApp, key: &str, csv: &[u8]) -> (u16, Value) {
    t.send(
        t.client
            .post(format!("{}/api/v1/contacts/import", t.url))
            .bearer_auth(key)
            .header("content-type", "text/csv")
            .body(csv.to_vec()),
    )
    .await
}

/// The export's text, with `key`.
async fn export_with(t: &crate::support::app::TestApp, key: &str) -> String {
    let response = t
        .client
        .get(format!("{}/api/v1/contacts/export", t.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("palaver-contacts-"));
    response.text().await.unwrap()
}

/// The workspace's contacts as the import sees them: number, name, language, notes, labels and
/// attributes (not the times, which an import moves).
async fn contacts_now(t: &crate::support::app::TestApp) -> Vec<Value> {
    let mut all: Vec<Value> = t
        .get("/api/v1/contacts?limit=500")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!([
                c["wa_id"],
                c["name"],
                c["language"],
                c["notes"],
                c["labels"],
                c["attributes"]
            ])
        })
        .collect();
    all.sort_by_key(|c| c[0].as_str().unwrap().to_string());
    all
}

async fn a_contacts_file_is_imported_whole_or_not_at_all(postgres: bool) {
    let graph = MockServer::start().await;
    let Some(t) = meta_app_with(&graph, json!({}), postgres, |_| {}).await else {
        return;
    };
    post_meta(&t, &meta_text("wamid.CONTACT.CSV", "Hello")).await;
    let before = contacts_now(&t).await;
    assert_eq!(before.len(), 1);
    let admin = crate::support::app::ADMIN_KEY;

    // One bad row among good ones: every problem by its line, and nothing written.
    let bad = "name,number,language,labels,notes,attribute:crm_case\n\
        Maria Silva,+55 11 91234-5678,pt,vip;catering,\"Deliveries after 18:00\nRing twice\",4711\n\
        Rui Costa,12345,pt,,,\n\
        Ana,351 912 345 678,portuguese,,,\n\
        Ana again,351912345678,,,,\n\
        =HYPERLINK(\"http://evil.example\"),351911111111,,,,\n";
    let (status, body) = import_with(&t, admin, bad.as_bytes()).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["line 4: number", "line 5: language", "line 6: number"],
        "{body}"
    );
    assert!(body["error"]["fields"][2]["message"]
        .as_str()
        .unwrap()
        .contains("line 5"));
    assert_eq!(contacts_now(&t).await, before, "nothing was imported");

    // Mended, it goes in: two made, the customer who wrote updated by their number.
    let good = format!(
        "name,number,language,labels,notes,attribute:crm_case\n\
        Maria Silva,+55 11 91234-5678,pt,vip;catering,\"Deliveries after 18:00\nRing twice\",4711\n\
        Rui Costa,351912345678,pt,,,\n\
        \"=HYPERLINK(\"\"http://evil.example\"\")\",351911111111,,,,\n\
        Test Customer,{CUSTOMER},en,,,\n"
    );
    let (status, body) = import_with(&t, admin, good.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"created": 3, "updated": 1}));
    let after = contacts_now(&t).await;
    assert_eq!(after.len(), 4);
    let maria = after.iter().find(|c| c[0] == "5511912345678").unwrap();
    assert_eq!(
        maria,
        &json!(["5511912345678", "Maria Silva", "pt", "Deliveries after 18:00\nRing twice",
                ["catering", "vip"], {"crm_case": "4711"}])
    );
    let customer = after.iter().find(|c| c[0] == CUSTOMER).unwrap();
    assert_eq!(customer[2], "en");

    // The export escapes what a spreadsheet would run, and reads back to the same contacts.
    let csv = export_with(&t, admin).await;
    assert!(csv.starts_with("name,number,channel,language,labels,notes,attribute:crm_case\n"));
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{csv}"
    );
    assert!(!csv.contains("\n=") && !csv.contains(",="), "{csv}");
    assert!(
        csv.contains(",Casa Nube,"),
        "the channel by its name: {csv}"
    );
    let (status, body) = import_with(&t, admin, csv.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"created": 0, "updated": 4}));
    assert_eq!(
        contacts_now(&t).await,
        after,
        "export and import round-trip"
    );

    // An author reads and exports but does not import.
    let (_, author) = t
        .post("/api/v1/api-keys", &json!({"name": "ci", "role": "author"}))
        .await;
    let author = author["key"].as_str().unwrap();
    export_with(&t, author).await;
    let (status, _) = import_with(&t, author, good.as_bytes()).await;
    assert_eq!(status, 403);

    // Another workspace sees none of these and cannot write to this one's number.
    let (status, _) = t
        .post("/api/v1/workspaces", &json!({"slug": "elsewhere"}))
        .await;
    assert_eq!(status, 201);
    let other: Value = t
        .client
        .post(format!("{}/api/v1/api-keys", t.url))
        .bearer_auth(admin)
        .header("x-palaver-workspace", "elsewhere")
        .json(&json!({"name": "owner", "role": "owner"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = other["key"].as_str().unwrap();
    assert_eq!(
        export_with(&t, other).await,
        "name,number,channel,language,labels,notes\n"
    );
    let channel = t.get("/api/v1/channels").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = import_with(
        &t,
        other,
        format!("number,channel,name\n351933333333,{channel},Intruder\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "line 2: channel");
    assert_eq!(contacts_now(&t).await, after);

    // Hostile files: not UTF-8, not CSV, too large; each refused with nothing written.
    let mut latin1 = b"number,name\n351944444444,Jos".to_vec();
    latin1.extend([0xe9, b'\n']);
    let (status, body) = import_with(&t, admin, &latin1).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "line 2");
    assert!(body["error"]["fields"][0]["message"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));
    let (status, body) = import_with(&t, admin, b"number\n351955555555\0\n").await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "line 2");
    let mut huge = b"number,notes\n".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    let (status, _) = import_with(&t, admin, &huge).await;
    assert_eq!(status, 413);
    let many: String = std::iter::once("number\n".to_string())
        .chain((0..5001).map(|i| format!("3519{i:08}\n")))
        .collect();
    let (status, body) = import_with(&t, admin, many.as_bytes()).await;
    assert_eq!(status, 422);
    assert!(body["error"]["fields"][0]["message"]
        .as_str()
        .unwrap()
        .contains("more than 5000"));
    let (status, _) = t
        .send(
            t.request(reqwest::Method::POST, "/api/v1/contacts/import")
                .json(&json!({"number": "351912345678"})),
        )
        .await;
    assert_eq!(status, 415, "JSON is not a contacts file");
    assert_eq!(contacts_now(&t).await, after);
    t.stop().await;
}

#[tokio::test]
async fn a_contacts_file_is_imported_whole_or_not_at_all_sqlite() {
    a_contacts_file_is_imported_whole_or_not_at_all(false).await;
}

#[tokio::test]
async fn a_contacts_file_is_imported_whole_or_not_at_all_postgres() {
    a_contacts_file_is_imported_whole_or_not_at_all(true).await;
}
