use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

use crate::providers::test_support::{
    channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
};
use crate::providers::OutboundBody;

const ROUTE: &str = "109876543210987";
const API_KEY: &str = "kapso-api-key";

fn credentials(webhook_secret: &str) -> Credentials {
    Credentials::from_pairs([("api_key", API_KEY), ("webhook_secret", webhook_secret)])
}

fn kapso(base: &str) -> KapsoProvider {
    KapsoProvider::new(
        reqwest::Client::new(),
        GuardedClient::allowing_private(),
        base,
    )
}

/// A fragment's message object inside the `whatsapp.message.received` envelope; fragments
/// that leave out `id` and `timestamp` get the envelope's.
fn wrapped(fragment: &str) -> Vec<u8> {
    let mut envelope = fixture_json("kapso", "whatsapp.message.received.text.json");
    let base = envelope["message"].as_object().unwrap().clone();
    let mut message = serde_json::Map::new();
    for key in ["id", "timestamp", "kapso"] {
        message.insert(key.into(), base[key].clone());
    }
    for (key, value) in fixture_json("kapso", fragment)["message"]
        .as_object()
        .unwrap()
    {
        message.insert(key.clone(), value.clone());
    }
    envelope["message"] = Value::Object(message);
    envelope.to_string().into_bytes()
}

#[test]
fn every_webhook_fixture_matches_its_snapshot() {
    let names = fixture_names("kapso");
    let webhooks = names.iter().map(String::as_str).filter(|n| {
        ["whatsapp.", "project.", "fragment."]
            .iter()
            .any(|p| n.starts_with(p))
    });
    check_webhook_snapshots(&kapso("http://unused"), "kapso", webhooks, |name, body| {
        if name.starts_with("fragment.") {
            wrapped(name)
        } else {
            body
        }
    });
}

#[test]
fn rest_bodies_are_not_webhooks_and_every_fixture_is_covered() {
    let kapso = kapso("http://unused");
    let rest = [
        "request.create_phone_number_webhook.json",
        "request.update_conversation_status.json",
        "response.list_conversations.json",
    ];
    for file in rest {
        let parsed = kapso.parse(&fixture("kapso", file));
        assert!(
            matches!(parsed, Err(ProviderError::BadPayload(_))),
            "{file}: {parsed:?}"
        );
    }
    for name in fixture_names("kapso") {
        let snapshot = ["whatsapp.", "project.", "fragment."]
            .iter()
            .any(|p| name.starts_with(p));
        assert!(
            snapshot || rest.contains(&name.as_str()) || name == "signature_vectors.json",
            "{name} is not covered"
        );
    }
}

#[test]
fn batches_forwarded_meta_payloads_and_bad_bodies() {
    let kapso = kapso("http://unused");
    let one = fixture_json("kapso", "whatsapp.message.received.text.json");
    let mut two = one.clone();
    two["message"]["id"] = json!("wamid.KPS.IN.0002");
    two["message"]["text"]["body"] = json!("And on holidays?");
    let batch = json!({"type": "whatsapp.message.received", "batch": true, "data": [one, two]});
    let events = kapso.parse(batch.to_string().as_bytes()).unwrap();
    let ids: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Message { message, .. } => message.provider_message_id.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["wamid.KPS.IN.0001", "wamid.KPS.IN.0002"]);
    let bare = json!([
        batch["data"][0],
        fixture_json("kapso", "whatsapp.message.sent.json")
    ]);
    assert_eq!(kapso.parse(bare.to_string().as_bytes()).unwrap().len(), 2);

    // "Meta webhooks" mode forwards Meta's own payload.
    let meta_body = fixture(
        "meta",
        "webhook.inbound.batched_multi_message_and_status.json",
    );
    assert_eq!(
        kapso.parse(&meta_body).unwrap(),
        meta::parse_notification(&meta_body).unwrap()
    );

    // A received message with no sender or id cannot be answered.
    let mut anonymous = fixture_json("kapso", "whatsapp.message.received.text.json");
    anonymous["conversation"]["phone_number"] = Value::Null;
    assert_eq!(
        kapso.parse(anonymous.to_string().as_bytes()).unwrap(),
        vec![ignored(Some(ROUTE), "message without a sender id")]
    );
    anonymous["conversation"]["business_scoped_user_id"] = json!("BR.123");
    let Event::Message { message, .. } = kapso
        .parse(anonymous.to_string().as_bytes())
        .unwrap()
        .remove(0)
    else {
        panic!()
    };
    assert_eq!(message.from, "BR.123");

    for bad in [
        &b"nope"[..],
        b"42",
        b"{}",
        b"[1]",
        br#"{"object":"page","entry":[]}"#,
    ] {
        assert!(
            matches!(kapso.parse(bad), Err(ProviderError::BadPayload(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for file in fixture_names("kapso") {
        let body = fixture("kapso", &file);
        for end in (0..body.len()).step_by(5) {
            let _ = kapso.parse(&body[..end]);
        }
    }
}

#[test]
fn every_signature_vector_verifies_and_tampering_is_caught() {
    let vectors = fixture_json("kapso", "signature_vectors.json");
    let secret = vectors["webhook_secret"].as_str().unwrap();
    let kapso = kapso("http://unused");
    let entries = vectors["vectors"].as_object().unwrap();
    assert_eq!(entries.len(), 18);
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-signature", value.parse().unwrap());
        headers
    };
    for (file, signature) in entries {
        let signature = signature.as_str().unwrap();
        let body = fixture("kapso", file);
        assert!(
            kapso
                .verify(&credentials(secret), &with(signature), &body)
                .is_ok(),
            "{file}"
        );
        let mut tampered = body.clone();
        tampered[body.len() / 2] ^= 1;
        let refused = [
            (credentials(secret), with(signature), tampered),
            (credentials("another secret"), with(signature), body.clone()),
            (
                credentials(secret),
                with(&format!("sha256={signature}")),
                body.clone(),
            ),
            (credentials(secret), HeaderMap::new(), body.clone()),
        ];
        for (credentials, headers, body) in refused {
            assert!(
                matches!(
                    kapso.verify(&credentials, &headers, &body),
                    Err(ProviderError::BadSignature(_))
                ),
                "{file} {headers:?}"
            );
        }
    }
}

fn text(body: &str) -> Outbound {
    Outbound {
        idempotency_key: None,
        to: "16505551234".into(),
        reply_to_message: None,
        body: OutboundBody::text(body),
    }
}

#[tokio::test]
async fn sends_meta_bodies_through_the_proxy() {
    let server = MockServer::start().await;
    let messages = format!("/meta/whatsapp/v24.0/{ROUTE}/messages");
    Mock::given(method("POST"))
        .and(path(messages.as_str()))
        .and(header("x-api-key", API_KEY))
        .and(body_json(fixture_json("meta", "send.text.request.json")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("meta", "send.text.response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(messages.as_str()))
        .and(header("x-api-key", API_KEY))
        .and(body_json(fixture_json(
            "meta",
            "send.mark_read_typing.request.json",
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    let kapso = kapso(&format!("{}/", server.uri()));
    let channel = channel(ROUTE, credentials("s"));
    let sent = kapso
        .send(
            &channel,
            &text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
        )
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "wamid.TEST.outbound.text.0102");
    kapso
        .mark_read(&channel, "wamid.TEST.inbound.text.0001", true)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_in_flight_is_retried_shortly_and_other_errors_are_graphs() {
    let cases = [
        (
            ResponseTemplate::new(409).set_body_json(
                json!({"error": "Another message in-flight for this conversation. Retry shortly."}),
            ),
            "transient 1s",
        ),
        (
            ResponseTemplate::new(409)
                .insert_header("retry-after", "3")
                .set_body_json(json!({"error": "busy"})),
            "transient 3s",
        ),
        (
            ResponseTemplate::new(400).set_body_raw(
                fixture("meta", "send.error.response.json"),
                "application/json",
            ),
            "permanent",
        ),
        (
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"code": 131047, "message": "Re-engagement message"}}),
            ),
            "needs_template",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"error": "Invalid API key"})),
            "auth",
        ),
        (ResponseTemplate::new(502), "transient"),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        let error = kapso(&server.uri())
            .send(&channel(ROUTE, credentials("s")), &text("hi"))
            .await
            .unwrap_err();
        let got = match &error {
            ProviderError::Transient {
                retry_after: Some(d),
                ..
            } => format!("transient {}s", d.as_secs()),
            ProviderError::Transient { .. } => "transient".into(),
            ProviderError::Permanent(_) => "permanent".into(),
            ProviderError::NeedsTemplate(_) => "needs_template".into(),
            ProviderError::Auth(_) => "auth".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, expected, "{error:?}");
        assert!(!format!("{error:?}").contains(API_KEY));
    }
}

#[tokio::test]
async fn fetches_media_and_keeps_the_api_key_on_kapso_hosts() {
    let kapso_server = MockServer::start().await;
    let cdn = MockServer::start().await;
    let no_api_key = |request: &Request| !request.headers.contains_key("x-api-key");
    for (media_id, url) in [
        (
            "media_fx_0456",
            format!("{}/media/voice.ogg", kapso_server.uri()),
        ),
        (
            "media_id_123",
            format!("{}/v/photo.jpg?oh=signed", cdn.uri()),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/meta/whatsapp/v24.0/{media_id}")))
            .and(query_param("phone_number_id", ROUTE))
            .and(header("x-api-key", API_KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp", "url": url, "mime_type": "audio/ogg", "id": media_id
            })))
            .expect(1)
            .mount(&kapso_server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/media/voice.ogg"))
        .and(header("x-api-key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"OggS-kapso".to_vec(), "audio/ogg"))
        .expect(1)
        .mount(&kapso_server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v/photo.jpg"))
        .and(no_api_key)
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"jpeg-bytes".to_vec(), "image/jpeg"))
        .expect(1)
        .mount(&cdn)
        .await;
    let kapso = kapso(&kapso_server.uri());
    let channel = channel(ROUTE, credentials("s"));
    let media_ref = |id: &str| MediaRef {
        id: Some(id.into()),
        ..MediaRef::default()
    };
    let voice = kapso
        .fetch_media(&channel, &media_ref("media_fx_0456"))
        .await
        .unwrap();
    assert_eq!(
        (voice.bytes.as_slice(), voice.mime_type.as_deref()),
        (&b"OggS-kapso"[..], Some("audio/ogg"))
    );
    let photo = kapso
        .fetch_media(&channel, &media_ref("media_id_123"))
        .await
        .unwrap();
    assert_eq!(photo.bytes, b"jpeg-bytes");
}

/// Kapso deduplicates by `X-Idempotency-Key`: the outbox's key is sent with every message, and
/// a message without one is sent without the header.
#[tokio::test]
async fn sends_carry_the_outbox_idempotency_key() {
    let server = MockServer::start().await;
    let messages = format!("/meta/whatsapp/v24.0/{ROUTE}/messages");
    Mock::given(method("POST"))
        .and(path(messages.as_str()))
        .and(header(
            "x-idempotency-key",
            "0193a000-0000-7000-8000-00000000beef",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("meta", "send.text.response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let kapso = kapso(&format!("{}/", server.uri()));
    let channel = channel(ROUTE, credentials("s"));
    let mut message = text("Yes, we ship to Lisbon.");
    message.idempotency_key = Some("0193a000-0000-7000-8000-00000000beef".into());
    kapso.send(&channel, &message).await.unwrap();
    let unkeyed = text("Hello");
    // No key: the header is absent, so the keyed mock does not match and the send fails.
    assert!(kapso.send(&channel, &unkeyed).await.is_err());
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(!requests[1].headers.contains_key("x-idempotency-key"));
}
