use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::providers::test_support::{
    channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
};

const ROUTE: &str = "106540352242922";
const CUSTOMER: &str = "16505551234";
const TOKEN: &str = "test-access-token";

fn credentials(app_secret: &str) -> Credentials {
    Credentials::from_pairs([
        ("access_token", TOKEN),
        ("app_secret", app_secret),
        ("verify_token", "my-verify-token"),
    ])
}

fn provider(base: &str) -> MetaProvider {
    MetaProvider::new(
        reqwest::Client::new(),
        GuardedClient::allowing_private(),
        base,
    )
}

/// A channel on `route` that chose `version`.
fn channel_on(route: &str, version: Option<&str>) -> ChannelContext {
    ChannelContext {
        graph_version: version.map(str::to_owned),
        ..channel(route, credentials("s"))
    }
}

#[test]
fn every_webhook_fixture_matches_its_snapshot() {
    let names = fixture_names("meta");
    let webhooks = names
        .iter()
        .map(String::as_str)
        // The GET handshake is not a POST body; it has its own test.
        .filter(|n| n.starts_with("webhook.") && *n != "webhook.verify.get.json");
    check_webhook_snapshots(&provider("http://unused"), "meta", webhooks, |_, b| b);
}

#[test]
fn bodies_that_are_not_meta_webhooks_are_bad_payloads() {
    let meta = provider("http://unused");
    let mut bodies: Vec<Vec<u8>> = [
        "send.text.request.json",
        "media.get_url.response.json",
        "send.error.response.json",
    ]
    .iter()
    .map(|f| fixture("meta", f))
    .collect();
    bodies.push(b"not json".to_vec());
    bodies.push(b"[]".to_vec());
    bodies.push(br#"{"object":"page","entry":[]}"#.to_vec());
    bodies.push(fixture(
        "evolution",
        "webhook.messages.upsert.text_conversation.json",
    ));
    for body in bodies {
        assert!(
            matches!(meta.parse(&body), Err(ProviderError::BadPayload(_))),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn unknown_fields_types_and_statuses_never_lose_the_rest() {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
            {"field": "messages", "value": {
                "metadata": {"phone_number_id": ROUTE, "brand_new": true},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "351912345678",
                              "identity_key_hash": "abc", "user_id": "US.1"}],
                "messages": [
                    {"from": "351912345678", "id": "w1", "timestamp": "1749416383", "type": "order",
                     "order": {"catalog_id": "1"}},
                    {"from": "351912345678", "id": "w2", "timestamp": "1749416384", "type": "location",
                     "location": {"latitude": "north"}},
                    {"from": "351912345678", "id": "w3", "timestamp": "1749416385", "type": "button",
                     "button": {"payload": "STOP", "text": "Stop promotions"}},
                    {"from": "351912345678", "timestamp": "1749416386", "type": "text", "text": {"body": "no id"}}
                ],
                "statuses": [
                    {"id": "w9", "status": "played", "timestamp": "1749416390", "recipient_id": "351912345678",
                     "recipient_type": "group", "conversation": {"id": "c1"}},
                    {"id": "w9", "status": "deleted", "timestamp": "1749416391"}
                ]
            }}
        ]}]
    });
    let events = parse_notification(body.to_string().as_bytes()).unwrap();
    assert_eq!(events.len(), 7, "{events:#?}");
    assert_eq!(
        events[0],
        ignored(None, "meta webhook field `account_update`")
    );
    let Event::Message { message: order, .. } = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(
        (order.kind, order.details.original_type.as_deref()),
        (MessageKind::Unsupported, Some("order"))
    );
    assert_eq!(order.contact_name.as_deref(), Some("Ana"));
    assert!(
        matches!(&events[2], Event::Ignored { reason, .. } if reason.starts_with("unreadable message"))
    );
    let Event::Message {
        message: button, ..
    } = &events[3]
    else {
        panic!("{:?}", events[3])
    };
    assert_eq!(button.kind, MessageKind::Interactive);
    assert_eq!(button.text.as_deref(), Some("Stop promotions"));
    assert_eq!(
        button.details.interactive.as_ref().map(|i| i.id.as_str()),
        Some("STOP")
    );
    assert_eq!(events[4], ignored(Some(ROUTE), "message without an id"));
    assert!(
        matches!(&events[5], Event::Status { update, .. } if update.status == DeliveryStatus::Played)
    );
    assert_eq!(
        events[6],
        ignored(Some(ROUTE), "status `deleted` is not tracked")
    );
}

#[test]
fn truncated_bodies_never_panic() {
    let meta = provider("http://unused");
    for file in fixture_names("meta") {
        let body = fixture("meta", &file);
        for end in (0..body.len()).step_by(7) {
            let _ = meta.parse(&body[..end]);
        }
    }
}

#[test]
fn every_signature_vector_verifies() {
    let vectors = fixture_json("meta", "signature_vectors.json");
    let secret = vectors["app_secret"].as_str().unwrap();
    let meta = provider("http://unused");
    let entries = vectors["vectors"].as_object().unwrap();
    assert_eq!(entries.len(), 18);
    for (file, signature) in entries {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            signature.as_str().unwrap().parse().unwrap(),
        );
        let body = fixture("meta", file);
        assert!(
            meta.verify(&credentials(secret), &headers, &body).is_ok(),
            "{file}"
        );
        assert!(
            meta.verify(&credentials("another secret"), &headers, &body)
                .is_err(),
            "{file}"
        );
    }
}

#[test]
fn negative_signature_vectors_are_rejected() {
    let vectors = fixture_json("meta", "signature_vectors.json");
    let credentials = credentials(vectors["app_secret"].as_str().unwrap());
    let negative = &vectors["negative_cases"];
    let meta = provider("http://unused");
    let original = fixture("meta", negative["tampered_body"]["file"].as_str().unwrap());
    let tampered = String::from_utf8(original.clone())
        .unwrap()
        .replace("Lisbon", "Berlin")
        .into_bytes();
    assert_ne!(original, tampered);
    let good = negative["tampered_body"]["header"].as_str().unwrap();
    let sha1 = negative["wrong_prefix"]["header"].as_str().unwrap();
    let headers = |name: &str, value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    };
    let cases = [
        (
            "tampered body",
            headers("x-hub-signature-256", good),
            tampered,
        ),
        (
            "sha1 prefix",
            headers("x-hub-signature-256", sha1),
            original.clone(),
        ),
        (
            "legacy header",
            headers("x-hub-signature", sha1),
            original.clone(),
        ),
        (
            "no prefix",
            headers("x-hub-signature-256", &good["sha256=".len()..]),
            original.clone(),
        ),
        ("missing header", HeaderMap::new(), original.clone()),
    ];
    for (case, headers, body) in cases {
        assert!(
            matches!(
                meta.verify(&credentials, &headers, &body),
                Err(ProviderError::BadSignature(_))
            ),
            "{case}"
        );
    }
    assert!(meta
        .verify(
            &credentials,
            &headers("x-hub-signature-256", good),
            &original
        )
        .is_ok());
    let kapso = Credentials::from_pairs([
        ("api_key", "k"),
        ("webhook_secret", "fixture_app_secret_do_not_use"),
    ]);
    assert!(meta
        .verify(&kapso, &headers("x-hub-signature-256", good), &original)
        .is_err());
}

#[test]
fn subscription_handshake() {
    let get = fixture_json("meta", "webhook.verify.get.json");
    let query = |key: &str| get["query"][key].as_str();
    let expected = SecretString::from("my-verify-token");
    assert_eq!(
        verify_subscription(
            query("hub.mode"),
            query("hub.verify_token"),
            query("hub.challenge"),
            &expected
        )
        .unwrap(),
        get["expected_response"]["body"].as_str().unwrap()
    );
    let refused = [
        (Some("subscribe"), Some("wrong-token"), Some("1")),
        (
            Some("subscribe"),
            Some("my-verify-token-and-more"),
            Some("1"),
        ),
        (Some("unsubscribe"), Some("my-verify-token"), Some("1")),
        (None, Some("my-verify-token"), Some("1")),
        (Some("subscribe"), None, Some("1")),
        (Some("subscribe"), Some("my-verify-token"), None),
    ];
    for (mode, token, challenge) in refused {
        assert!(
            verify_subscription(mode, token, challenge, &expected).is_err(),
            "{mode:?} {token:?} {challenge:?}"
        );
    }
}

fn outbound(body: OutboundBody, reply_to: Option<&str>) -> Outbound {
    Outbound {
        idempotency_key: None,
        to: CUSTOMER.into(),
        reply_to_message: reply_to.map(Into::into),
        body,
    }
}

#[test]
fn business_scoped_user_ids_are_told_from_phone_numbers() {
    for (id, bsuid) in [
        ("US.13491208655302741918", true),
        ("US.ENT.11815799212886844830", true),
        ("BR.1502576394655843", true),
        ("PT.abc123XYZ", true),
        ("16505551234", false),
        ("+16505551234", false),
        ("us.1349", false),
        ("USA.1349", false),
        ("US.", false),
        ("US.12-34", false),
        ("", false),
    ] {
        assert_eq!(is_business_scoped_user_id(id), bsuid, "{id}");
    }
}

#[test]
fn request_bodies_match_the_cloud_api() {
    let text = outbound(
        OutboundBody::text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
        None,
    );
    assert_eq!(
        message_body(&text).unwrap(),
        fixture_json("meta", "send.text.request.json")
    );

    // A customer known only by a business-scoped user id is addressed by `recipient`.
    let mut to_user_id = outbound(OutboundBody::text("Temos sim, até às 19h."), None);
    to_user_id.to = "PT.4821937560012833".into();
    assert_eq!(
        message_body(&to_user_id).unwrap(),
        fixture_json("meta", "send.text_to_user_id.request.json")
    );

    // The fixture leaves `preview_url` out, which Meta reads as false; we always say it.
    let reply = outbound(
        OutboundBody::text("Yes, we ship to Lisbon."),
        Some("wamid.TEST.inbound.text.0001"),
    );
    let mut expected = fixture_json("meta", "send.text_reply_with_context.request.json");
    expected["text"]["preview_url"] = json!(false);
    assert_eq!(message_body(&reply).unwrap(), expected);

    let template = outbound(
        OutboundBody::Template {
            name: "support_followup".into(),
            language: "en_US".into(),
            parameters: [("body.1", "Test Customer"), ("body.2", "#4821")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        None,
    );
    assert_eq!(
        message_body(&template).unwrap(),
        fixture_json("meta", "send.template.request.json")
    );

    let base = |kind: &str, content: Value| {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": kind});
        body[kind] = content;
        body
    };
    let cases = [
        (
            outbound(OutboundBody::text("See https://example.com/help"), None),
            base(
                "text",
                json!({"preview_url": true, "body": "See https://example.com/help"}),
            ),
        ),
        (
            outbound(
                OutboundBody::Template {
                    name: "hello".into(),
                    language: "pt_BR".into(),
                    parameters: Default::default(),
                },
                None,
            ),
            base(
                "template",
                json!({"name": "hello", "language": {"code": "pt_BR"}}),
            ),
        ),
        (
            outbound(
                OutboundBody::Reaction {
                    message_id: "wamid.X".into(),
                    emoji: "👍".into(),
                },
                Some("wamid.X"),
            ),
            base("reaction", json!({"message_id": "wamid.X", "emoji": "👍"})),
        ),
        (
            outbound(
                OutboundBody::Media {
                    kind: "image".into(),
                    link: "https://example.com/a.jpg".into(),
                    caption: Some("Here".into()),
                    filename: None,
                },
                None,
            ),
            base(
                "image",
                json!({"link": "https://example.com/a.jpg", "caption": "Here"}),
            ),
        ),
        (
            outbound(
                OutboundBody::Media {
                    kind: "document".into(),
                    link: "https://example.com/a.pdf".into(),
                    caption: None,
                    filename: Some("a.pdf".into()),
                },
                None,
            ),
            base(
                "document",
                json!({"link": "https://example.com/a.pdf", "filename": "a.pdf"}),
            ),
        ),
        (
            outbound(
                OutboundBody::Media {
                    kind: "voice".into(),
                    link: "https://example.com/a.ogg".into(),
                    caption: None,
                    filename: None,
                },
                None,
            ),
            base(
                "audio",
                json!({"link": "https://example.com/a.ogg", "voice": true}),
            ),
        ),
        (
            outbound(
                OutboundBody::Buttons {
                    text: "Did that help?".into(),
                    buttons: vec![
                        ("yes".into(), "Yes".into()),
                        ("human".into(), "Talk to a human".into()),
                    ],
                },
                None,
            ),
            base(
                "interactive",
                json!({"type": "button", "body": {"text": "Did that help?"}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "human", "title": "Talk to a human"}}
                ]}}),
            ),
        ),
        (
            outbound(
                OutboundBody::List {
                    text: "Pick a topic".into(),
                    button: "Topics".into(),
                    rows: vec![
                        (
                            "topic_billing".into(),
                            "Billing".into(),
                            Some("Invoices, refunds and payments".into()),
                        ),
                        ("topic_other".into(), "Other".into(), None),
                    ],
                },
                None,
            ),
            base(
                "interactive",
                json!({"type": "list", "body": {"text": "Pick a topic"}, "action": {"button": "Topics", "sections": [
                    {"rows": [
                        {"id": "topic_billing", "title": "Billing", "description": "Invoices, refunds and payments"},
                        {"id": "topic_other", "title": "Other"}
                    ]}
                ]}}),
            ),
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(
            message_body(&message).unwrap(),
            expected,
            "{:?}",
            message.body
        );
    }
}

#[test]
fn requests_meta_would_refuse_are_refused_before_sending() {
    let button = |title: &str| (String::from("id"), title.to_owned());
    let media = |kind: &str, caption: Option<&str>, filename: Option<&str>| OutboundBody::Media {
        kind: kind.into(),
        link: "https://example.com/x".into(),
        caption: caption.map(Into::into),
        filename: filename.map(Into::into),
    };
    let bad = [
        OutboundBody::Buttons {
            text: "t".into(),
            buttons: vec![],
        },
        OutboundBody::Buttons {
            text: "t".into(),
            buttons: vec![button("a"), button("b"), button("c"), button("d")],
        },
        OutboundBody::Buttons {
            text: "t".into(),
            buttons: vec![button("This title is far too long")],
        },
        OutboundBody::List {
            text: "t".into(),
            button: "b".into(),
            rows: vec![],
        },
        OutboundBody::List {
            text: "t".into(),
            button: "b".into(),
            rows: (0..11)
                .map(|i| (format!("r{i}"), "Row".into(), None))
                .collect(),
        },
        media("gif", None, None),
        media("audio", Some("caption"), None),
        media("image", None, Some("a.jpg")),
    ];
    for body in bad {
        assert!(
            matches!(
                message_body(&outbound(body.clone(), None)),
                Err(ProviderError::Permanent(_))
            ),
            "{body:?}"
        );
    }
}

#[test]
fn graph_errors_map_to_what_the_caller_does() {
    let graph = |code: i64, kind: &str| {
        json!({"error": {"message": "m", "type": kind, "code": code, "fbtrace_id": "x"}})
            .to_string()
            .into_bytes()
    };
    let mut retry = HeaderMap::new();
    retry.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
    let none = HeaderMap::new();
    let cases: Vec<(u16, Vec<u8>, &HeaderMap, &str)> = vec![
        (
            400,
            fixture("meta", "send.error.response.json"),
            &none,
            "permanent",
        ),
        (
            400,
            graph(131047, "OAuthException"),
            &none,
            "needs_template",
        ),
        (400, graph(131056, "OAuthException"), &none, "transient"),
        (429, graph(130429, "OAuthException"), &retry, "transient 7s"),
        (400, graph(80007, "OAuthException"), &none, "transient"),
        (400, graph(4, "OAuthException"), &none, "transient"),
        (429, b"{}".to_vec(), &retry, "transient 7s"),
        (401, graph(190, "OAuthException"), &none, "auth"),
        (400, graph(190, "OAuthException"), &none, "auth"),
        (403, graph(10, "OAuthException"), &none, "auth"),
        (403, graph(200, "OAuthException"), &none, "auth"),
        (401, b"".to_vec(), &none, "auth"),
        (400, graph(100, "OAuthException"), &none, "permanent"),
        (404, b"not found".to_vec(), &none, "permanent"),
        (500, graph(131000, "OAuthException"), &none, "transient"),
        (503, b"<html>down</html>".to_vec(), &none, "transient"),
        (
            409,
            br#"{"error":"Another message in-flight"}"#.to_vec(),
            &none,
            "permanent",
        ),
    ];
    for (status, body, headers, expected) in cases {
        let error = graph_error(StatusCode::from_u16(status).unwrap(), headers, &body);
        let got = match &error {
            ProviderError::NeedsTemplate(_) => "needs_template".to_owned(),
            ProviderError::Transient {
                retry_after: Some(d),
                ..
            } => format!("transient {}s", d.as_secs()),
            ProviderError::Transient { .. } => "transient".to_owned(),
            ProviderError::Auth(_) => "auth".to_owned(),
            ProviderError::Permanent(_) => "permanent".to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(
            got,
            expected,
            "HTTP {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let error = graph_error(
        StatusCode::BAD_REQUEST,
        &none,
        &fixture("meta", "send.error.response.json"),
    );
    assert_eq!(
        error.to_string(),
        "refused: HTTP 400, code 131030: (#131030) Recipient phone number not in allowed list: Recipient phone \
         number not in allowed list: Add recipient phone number to recipient list and try again."
    );
}

#[tokio::test]
async fn sends_exactly_the_documented_requests() {
    let server = MockServer::start().await;
    let meta = provider(&server.uri());
    let channel = channel(ROUTE, credentials("s"));
    let messages_path = format!("/v23.0/{ROUTE}/messages");
    let cases = [
        (
            outbound(
                OutboundBody::text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
                None,
            ),
            "send.text.request.json",
            "send.text.response.json",
            "wamid.TEST.outbound.text.0102",
        ),
        (
            outbound(
                OutboundBody::Template {
                    name: "support_followup".into(),
                    language: "en_US".into(),
                    parameters: [("body.1", "Test Customer"), ("body.2", "#4821")]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                },
                None,
            ),
            "send.template.request.json",
            "send.template.response.json",
            "wamid.TEST.outbound.template.0104",
        ),
    ];
    for (message, request, response, id) in cases {
        let _guard = Mock::given(method("POST"))
            .and(path(messages_path.as_str()))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(fixture_json("meta", request)))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(fixture("meta", response), "application/json"),
            )
            .expect(1)
            .mount_as_scoped(&server)
            .await;
        let sent = meta
            .send(&channel, &message)
            .await
            .unwrap_or_else(|e| panic!("{request}: {e}"));
        assert_eq!(sent.provider_message_id, id);
    }
}

#[tokio::test]
async fn marks_read_with_typing_indicator() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v23.0/{ROUTE}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(fixture_json(
            "meta",
            "send.mark_read_typing.request.json",
        )))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("meta", "send.mark_read.response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    provider(&server.uri())
        .mark_read(
            &channel(ROUTE, credentials("s")),
            "wamid.TEST.inbound.text.0001",
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        read_body("wamid.X", false),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"})
    );
}

#[tokio::test]
async fn send_failures_are_mapped_and_never_show_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(
                    json!({"error": {"message": "(#130429) Rate limit hit", "code": 130429}}),
                ),
        )
        .mount(&server)
        .await;
    let error = provider(&server.uri())
        .send(
            &channel(ROUTE, credentials("s")),
            &outbound(OutboundBody::text("hi"), None),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(12)),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains(TOKEN));

    // Wrong credentials for the channel: nothing is sent.
    let evolution = Credentials::from_pairs([
        ("server_url", server.uri().as_str()),
        ("api_key", "k"),
        ("webhook_secret", "w"),
    ]);
    let error = provider(&server.uri())
        .send(
            &channel(ROUTE, evolution),
            &outbound(OutboundBody::text("hi"), None),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Auth(_)), "{error:?}");
}

#[tokio::test]
async fn timeouts_are_unconfirmed_and_refused_connections_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let slow = MetaProvider::new(client, GuardedClient::allowing_private(), server.uri());
    let message = outbound(OutboundBody::text("hi"), None);
    let error = slow
        .send(&channel(ROUTE, credentials("s")), &message)
        .await
        .unwrap_err();
    // The request was written: Meta may have sent the message.
    assert!(
        matches!(&error, ProviderError::Unconfirmed(message) if message.contains("timed out")),
        "{error:?}"
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = provider(&format!("http://{closed}"))
        .send(&channel(ROUTE, credentials("s")), &message)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Transient { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn fetches_media_in_two_steps_with_the_same_token() {
    let server = MockServer::start().await;
    let media_id = "1234567890987654321";
    let mut info = fixture_json("meta", "media.get_url.response.json");
    info["url"] = json!(format!(
        "{}/whatsapp_business/attachments/?mid={media_id}&hash=ATtest",
        server.uri()
    ));
    Mock::given(method("GET"))
        .and(path(format!("/v23.0/{media_id}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(wiremock::matchers::query_param("mid", media_id))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(b"OggS\x00\x02voice".to_vec(), "application/octet-stream"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let media = provider(&server.uri())
        .fetch_media(
            &channel(ROUTE, credentials("s")),
            &MediaRef {
                id: Some(media_id.into()),
                ..MediaRef::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(media.bytes, b"OggS\x00\x02voice");
    assert_eq!(media.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
}

#[tokio::test]
async fn expired_media_is_reported_not_retried_forever() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"message": "Unsupported get request.", "code": 100, "error_subcode": 33}}),
        ))
        .mount(&server)
        .await;
    let error = provider(&server.uri())
        .fetch_media(
            &channel(ROUTE, credentials("s")),
            &MediaRef {
                id: Some("gone".into()),
                ..MediaRef::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Permanent(_)), "{error:?}");
}

/// Answers every send with a message id naming the path it arrived on.
struct EchoPath;

impl wiremock::Respond for EchoPath {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
            "messages": [{"id": format!("wamid.{}", request.url.path())}]
        }))
    }
}

#[tokio::test]
async fn each_channel_sends_to_the_graph_version_it_chose() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EchoPath)
        .mount(&server)
        .await;
    let meta = provider(&server.uri());
    let message = outbound(OutboundBody::text("hi"), None);
    // Two numbers on different versions, and one that chose none.
    let cases = [
        ("1001", Some("v22.0"), "/v22.0/1001/messages"),
        ("1002", Some("v25.0"), "/v25.0/1002/messages"),
        ("1003", None, "/v23.0/1003/messages"),
    ];
    for (route, version, expected) in cases {
        let sent = meta
            .send(&channel_on(route, version), &message)
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, format!("wamid.{expected}"));
    }
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(
        paths,
        cases.iter().map(|c| c.2.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn media_reads_and_uploads_go_to_the_channels_version_too() {
    let server = MockServer::start().await;
    let mut info = fixture_json("meta", "media.get_url.response.json");
    info["url"] = json!(format!("{}/lookaside/m1", server.uri()));
    Mock::given(method("GET"))
        .and(path("/v24.0/m1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/lookaside/m1"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"OggS".to_vec()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v24.0/{ROUTE}/media")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "up1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v24.0/{ROUTE}/messages")))
        .respond_with(EchoPath)
        .expect(1)
        .mount(&server)
        .await;
    let meta = provider(&server.uri());
    let channel = channel_on(ROUTE, Some("v24.0"));
    let media = meta
        .fetch_media(
            &channel,
            &MediaRef {
                id: Some("m1".into()),
                ..MediaRef::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(media.bytes, b"OggS");
    let uploaded = meta
        .upload_media(
            &channel,
            FileToSend {
                bytes: b"%PDF",
                mime_type: "application/pdf",
                filename: "menu.pdf",
            },
        )
        .await
        .unwrap();
    assert_eq!(uploaded, Uploaded::Id("up1".into()));
    meta.mark_read(&channel, "wamid.X", false).await.unwrap();
}

#[tokio::test]
async fn a_version_ending_the_configured_url_is_the_default_a_channel_may_override() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EchoPath)
        .mount(&server)
        .await;
    // As earlier releases were configured: the version in the URL.
    let meta = provider(&format!("{}/v21.0/", server.uri()));
    assert_eq!(meta.default_version(), "v21.0");
    let message = outbound(OutboundBody::text("hi"), None);
    let old = meta.send(&channel_on(ROUTE, None), &message).await.unwrap();
    assert_eq!(
        old.provider_message_id,
        format!("wamid./v21.0/{ROUTE}/messages")
    );
    let chosen = meta
        .send(&channel_on(ROUTE, Some("v24.0")), &message)
        .await
        .unwrap();
    assert_eq!(
        chosen.provider_message_id,
        format!("wamid./v24.0/{ROUTE}/messages")
    );
    assert_eq!(
        provider(&server.uri()).default_version(),
        DEFAULT_GRAPH_VERSION
    );
}

#[tokio::test]
async fn a_stored_version_that_is_not_one_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    let meta = provider(&server.uri());
    let message = outbound(OutboundBody::text("hi"), None);
    for version in ["v23.0/../x", "23", ""] {
        let error = meta
            .send(&channel_on(ROUTE, Some(version)), &message)
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Permanent(_)), "{error:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// The outbox's idempotency key travels as `biz_opaque_callback_data` and comes back in the
/// message's status webhooks, so a send whose answer was lost is still recognised.
#[test]
fn the_idempotency_key_goes_out_as_callback_data_and_comes_back_in_statuses() {
    let mut message = outbound(OutboundBody::text("Yes, we ship to Lisbon."), None);
    message.idempotency_key = Some("0193a000-0000-7000-8000-00000000abcd".into());
    let body = message_body(&message).unwrap();
    assert_eq!(
        body["biz_opaque_callback_data"],
        "0193a000-0000-7000-8000-00000000abcd"
    );
    assert!(message_body(&outbound(OutboundBody::text("Hi"), None))
        .unwrap()
        .get("biz_opaque_callback_data")
        .is_none());

    let status = |extra: serde_json::Value| {
        let mut status = json!({"id": "wamid.OUT.1", "status": "sent", "timestamp": "1700000000", "recipient_id": CUSTOMER});
        status
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "106540352242922"},
            "statuses": [status]}}]}]}))
        .unwrap()
    };
    let meta = provider("http://unused");
    for (extra, expected) in [
        (
            json!({"biz_opaque_callback_data": "0193a000-0000-7000-8000-00000000abcd"}),
            Some("0193a000-0000-7000-8000-00000000abcd"),
        ),
        (json!({"biz_opaque_callback_data": ""}), None),
        (json!({}), None),
    ] {
        let events = meta.parse(&status(extra.clone())).unwrap();
        let [Event::Status { update, .. }] = events.as_slice() else {
            panic!("one status: {events:?}");
        };
        assert_eq!(update.reference.as_deref(), expected, "{extra}");
    }
}
