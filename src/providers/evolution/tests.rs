use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::providers::test_support::{
    at, channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
};

const ROUTE: &str = "support-bot";
const CUSTOMER: &str = "5511988887777";
const API_KEY: &str = "instance-api-key";
const SECRET: &str = "webhook-secret-value";

fn credentials(server: &str) -> Credentials {
    Credentials::from_pairs([
        ("server_url", server),
        ("api_key", API_KEY),
        ("webhook_secret", SECRET),
    ])
}

fn evolution() -> EvolutionProvider {
    EvolutionProvider::new(GuardedClient::allowing_private())
}

#[test]
fn every_webhook_fixture_matches_its_snapshot() {
    let names = fixture_names("evolution");
    let webhooks = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("webhook."));
    check_webhook_snapshots(&evolution(), "evolution", webhooks, |_, b| b);
}

#[test]
fn rest_bodies_are_not_webhooks() {
    for name in fixture_names("evolution") {
        if !name.starts_with("webhook.") {
            let parsed = evolution().parse(&fixture("evolution", &name));
            assert!(
                matches!(parsed, Err(ProviderError::BadPayload(_))),
                "{name}: {parsed:?}"
            );
        }
    }
}

fn envelope(event: &str, data: Value) -> Vec<u8> {
    json!({"event": event, "instance": ROUTE, "data": data, "date_time": "2025-06-08T18:39:43.512Z"})
        .to_string()
        .into_bytes()
}

#[test]
fn other_shapes_evolution_emits() {
    let upsert = |remote_jid: &str, message: Value, message_type: Option<&str>| {
        let mut data = json!({
            "key": {"remoteJid": remote_jid, "fromMe": false, "id": "ID1"},
            "pushName": "Ana",
            "message": message,
            "messageTimestamp": {"low": 1749408000, "high": 0, "unsigned": true},
        });
        if let Some(t) = message_type {
            data["messageType"] = json!(t);
        }
        let events = evolution()
            .parse(&envelope("MESSAGES_UPSERT", data))
            .unwrap();
        assert_eq!(events.len(), 1);
        events.into_iter().next().unwrap()
    };
    let person = "351912345678@s.whatsapp.net";
    let only = |event: Event| match event {
        Event::Message { message, .. } => message,
        other => panic!("{other:?}"),
    };

    assert_eq!(
        upsert("1203630@g.us", json!({"conversation": "hi"}), None),
        ignored(Some(ROUTE), "group")
    );
    assert_eq!(
        upsert("status@broadcast", json!({"conversation": "hi"}), None),
        ignored(Some(ROUTE), "status broadcast")
    );
    assert_eq!(
        upsert(
            person,
            json!({"protocolMessage": {"type": "EPHEMERAL_SETTING", "key": {"id": "3EB0OLD"}}}),
            Some("protocolMessage")
        ),
        ignored(Some(ROUTE), "protocol message EPHEMERAL_SETTING")
    );
    assert!(matches!(
        upsert(
            person,
            json!({"protocolMessage": {"type": "REVOKE", "key": {"id": "3EB0OLD"}}}),
            Some("protocolMessage")
        ),
        Event::Changed { original_id, change: crate::domain::MessageChange::Deleted, .. } if original_id == "3EB0OLD"
    ));

    let text = only(upsert(
        "351912345678:3@s.whatsapp.net",
        json!({"conversation": "olá"}),
        None,
    ));
    assert_eq!(
        (text.from.as_str(), text.text.as_deref(), text.timestamp),
        ("351912345678", Some("olá"), at(1749408000))
    );

    let lid_only = only(upsert(
        "99887766@lid",
        json!({"conversation": "x"}),
        Some("conversation"),
    ));
    assert_eq!(
        (lid_only.from.as_str(), lid_only.reply_to.as_deref()),
        ("99887766", Some("99887766@lid"))
    );

    let location = only(upsert(
        person,
        json!({"locationMessage": {"degreesLatitude": 38.7, "degreesLongitude": -9.1, "name": "Loja"}}),
        Some("locationMessage"),
    ));
    assert_eq!(location.kind, MessageKind::Location);
    assert_eq!(
        location.details.location.map(|l| (l.latitude, l.longitude)),
        Some((38.7, -9.1))
    );

    let reaction = only(upsert(
        person,
        json!({"reactionMessage": {"key": {"id": "3EB0SENT1"}, "text": ""}}),
        Some("reactionMessage"),
    ));
    assert_eq!(
        reaction.details.reaction,
        Some(Reaction {
            message_id: "3EB0SENT1".into(),
            emoji: None
        })
    );

    let list = only(upsert(
        person,
        json!({"listResponseMessage": {"title": "Billing", "singleSelectReply": {"selectedRowId": "topic_billing"}}}),
        Some("listResponseMessage"),
    ));
    assert_eq!(
        (list.kind, list.text.as_deref()),
        (MessageKind::Interactive, Some("Billing"))
    );
    assert_eq!(
        list.details.interactive.map(|i| i.id),
        Some("topic_billing".into())
    );

    let document = only(upsert(
        person,
        json!({"documentWithCaptionMessage": {"message": {"documentMessage": {
            "fileName": "nota.pdf", "mimetype": "application/pdf", "caption": "segue"}}},
            "mediaUrl": "https://s3.example.com/nota.pdf"}),
        Some("documentWithCaptionMessage"),
    ));
    assert_eq!(
        (document.kind, document.text.as_deref()),
        (MessageKind::Document, Some("segue"))
    );
    let media = document.details.media.unwrap();
    assert_eq!(media.filename.as_deref(), Some("nota.pdf"));
    assert_eq!(
        media.url.as_deref(),
        Some("https://s3.example.com/nota.pdf")
    );

    let ephemeral = only(upsert(
        person,
        json!({"ephemeralMessage": {"message": {"extendedTextMessage": {
            "text": "sumiu", "contextInfo": {"stanzaId": "Q1", "expiration": 604800}}}}}),
        Some("ephemeralMessage"),
    ));
    assert_eq!(
        (
            ephemeral.kind,
            ephemeral.text.as_deref(),
            ephemeral.details.context_message_id.as_deref()
        ),
        (MessageKind::Text, Some("sumiu"), Some("Q1"))
    );

    let poll = only(upsert(
        person,
        json!({"pollCreationMessageV3": {"name": "?"}}),
        Some("pollCreationMessageV3"),
    ));
    assert_eq!(
        (poll.kind, poll.details.original_type.as_deref()),
        (MessageKind::Unsupported, Some("pollCreationMessageV3"))
    );

    // Numeric Baileys statuses, customer-message acks and untracked statuses.
    let update = |data: Value| {
        evolution()
            .parse(&envelope("messages.update", data))
            .unwrap()
            .remove(0)
    };
    let Event::Status {
        update: delivered, ..
    } = update(json!({"keyId": "A", "fromMe": true, "status": 3}))
    else {
        panic!()
    };
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    let Event::Status { update: failed, .. } =
        update(json!({"key": {"id": "A", "fromMe": true}, "status": "ERROR"}))
    else {
        panic!()
    };
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(failed.error.is_some());
    assert_eq!(
        update(json!({"keyId": "A", "fromMe": false, "status": "READ"})),
        ignored(Some(ROUTE), "status of a customer message")
    );
    assert_eq!(
        update(json!({"keyId": "A", "fromMe": true, "status": "PENDING"})),
        ignored(Some(ROUTE), "status `PENDING` is not tracked")
    );

    assert_eq!(
        evolution()
            .parse(&envelope("contacts.update", json!([])))
            .unwrap(),
        vec![ignored(Some(ROUTE), "evolution event contacts.update")]
    );
    for bad in [
        &b"{}"[..],
        b"[1]",
        b"nope",
        br#"{"event":"messages.upsert"}"#,
    ] {
        assert!(matches!(
            evolution().parse(bad),
            Err(ProviderError::BadPayload(_))
        ));
    }
}

#[test]
fn truncated_bodies_never_panic() {
    let evolution = evolution();
    for file in fixture_names("evolution") {
        let body = fixture("evolution", &file);
        for end in (0..body.len()).step_by(5) {
            let _ = evolution.parse(&body[..end]);
        }
    }
}

#[test]
fn webhook_token_is_checked_in_either_header() {
    let body = fixture(
        "evolution",
        "webhook.messages.upsert.text_conversation.json",
    );
    let credentials = credentials("http://unused");
    let with = |name: &str, value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    };
    let accepted = [
        with(WEBHOOK_TOKEN_HEADER, SECRET),
        with("X-Palaver-Webhook-Token", SECRET),
        with("authorization", &format!("Bearer {SECRET}")),
    ];
    for headers in accepted {
        assert!(
            evolution().verify(&credentials, &headers, &body).is_ok(),
            "{headers:?}"
        );
    }
    let refused = [
        HeaderMap::new(),
        with(WEBHOOK_TOKEN_HEADER, "wrong"),
        with(WEBHOOK_TOKEN_HEADER, &format!("{SECRET}x")),
        with(WEBHOOK_TOKEN_HEADER, ""),
        with("authorization", SECRET),
        with("authorization", "Bearer wrong"),
        with("apikey", SECRET),
    ];
    for headers in refused {
        assert!(
            matches!(
                evolution().verify(&credentials, &headers, &body),
                Err(ProviderError::BadSignature(_))
            ),
            "{headers:?}"
        );
    }
    let meta = Credentials::from_pairs([
        ("access_token", "t"),
        ("app_secret", SECRET),
        ("verify_token", SECRET),
    ]);
    assert!(evolution()
        .verify(&meta, &with(WEBHOOK_TOKEN_HEADER, SECRET), &body)
        .is_err());
}

/// The fixtures register `authorization: Bearer change-me`; Palaver registers its own
/// token header, and no inline media (fetched by id when needed).
fn with_palaver_webhook(mut webhook: Value) -> Value {
    webhook["headers"] = json!({ WEBHOOK_TOKEN_HEADER: SECRET });
    webhook["base64"] = json!(false);
    webhook
}

fn settings() -> InstanceSettings {
    InstanceSettings {
        reject_call: true,
        msg_call: Some("Não atendemos ligações por aqui, envie uma mensagem.".into()),
        groups_ignore: true,
        always_online: false,
        read_messages: false,
        read_status: false,
        sync_full_history: false,
    }
}

#[tokio::test]
async fn creates_an_instance_with_webhook_and_settings() {
    let server = MockServer::start().await;
    let mut request = fixture_json("evolution", "rest.instance.create.request.json");
    request["webhook"] = with_palaver_webhook(request["webhook"].clone());
    Mock::given(method("POST"))
        .and(path("/instance/create"))
        .and(header("apikey", "global-key"))
        .and(body_json(request))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("evolution", "rest.instance.create.response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let created = evolution()
        .create_instance(
            &format!("{}/", server.uri()),
            &SecretString::from("global-key"),
            ROUTE,
            "https://bot.example.com/webhooks/evolution",
            &SecretString::from(SECRET),
            &settings(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.token.expose_secret(),
        "4C1E9A7B-2D3F-4E5A-8B6C-0D1E2F3A4B5C"
    );
    assert_eq!(
        created.instance_id.as_deref(),
        Some("0d6c2f9a-3b1e-4c55-9a0e-7f3e2b1c4d5e")
    );
    let qr = created.qr.unwrap();
    assert!(qr.image.unwrap().starts_with("data:image/png;base64,"));
    assert!(qr.code.unwrap().starts_with("2@TEST"));
    assert_eq!(qr.pairing_code, None);
}

#[tokio::test]
async fn lifecycle_calls_use_the_instance_routes() {
    let server = MockServer::start().await;
    let channel = channel(ROUTE, credentials(&server.uri()));
    let respond = |status: u16, file: &str| {
        ResponseTemplate::new(status).set_body_raw(fixture("evolution", file), "application/json")
    };
    Mock::given(method("GET"))
        .and(path("/instance/connectionState/support-bot"))
        .and(header("apikey", API_KEY))
        .respond_with(respond(200, "rest.instance.connectionState.response.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/instance/logout/support-bot"))
        .and(header("apikey", API_KEY))
        .respond_with(respond(200, "rest.instance.logout.response.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/instance/delete/support-bot"))
        .and(header("apikey", API_KEY))
        .respond_with(respond(200, "rest.instance.delete.response.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/settings/set/support-bot"))
        .and(header("apikey", API_KEY))
        .and(body_json(fixture_json(
            "evolution",
            "rest.settings.set.request.json",
        )))
        .respond_with(respond(201, "rest.settings.set.response.json"))
        .expect(1)
        .mount(&server)
        .await;
    let mut webhook = fixture_json("evolution", "rest.webhook.set.request.json");
    webhook["webhook"] = with_palaver_webhook(webhook["webhook"].clone());
    Mock::given(method("POST"))
        .and(path("/webhook/set/support-bot"))
        .and(header("apikey", API_KEY))
        .and(body_json(webhook))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"webhook": {}})))
        .expect(1)
        .mount(&server)
        .await;

    let evolution = evolution();
    assert_eq!(
        evolution.connection_state(&channel).await.unwrap(),
        ChannelState::Connected
    );
    evolution.logout(&channel).await.unwrap();
    evolution.delete(&channel).await.unwrap();
    evolution.set_settings(&channel, &settings()).await.unwrap();
    evolution
        .set_webhook(
            &channel,
            "https://bot.example.com/webhooks/evolution",
            &SecretString::from(SECRET),
            &WEBHOOK_EVENTS,
        )
        .await
        .unwrap();

    let cleared = InstanceSettings {
        msg_call: None,
        ..settings()
    };
    assert_eq!(cleared.to_json()["msgCall"], json!(""));
    assert!(InstanceSettings::from(&ChannelConfig::default()).reject_call);
}

#[tokio::test]
async fn connect_reads_every_answer_shape() {
    let cases = [
        (
            fixture_json(
                "evolution",
                "rest.instance.connect.response.connecting.json",
            ),
            "qr",
        ),
        (
            fixture_json("evolution", "rest.instance.connect.response.open.json"),
            "open",
        ),
        (json!({"count": 0}), "pending"),
        (
            json!({"pairingCode": "WZYEH1YY", "code": "2@x", "base64": null, "count": 1}),
            "pairing",
        ),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        let mut mock = Mock::given(method("GET"))
            .and(path("/instance/connect/support-bot"))
            .and(header("apikey", API_KEY));
        if expected == "pairing" {
            mock = mock.and(query_param("number", CUSTOMER));
        }
        mock.respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .expect(1)
            .mount(&server)
            .await;
        let number = (expected == "pairing").then_some(CUSTOMER);
        let outcome = evolution()
            .connect(&channel(ROUTE, credentials(&server.uri())), number)
            .await
            .unwrap();
        let got = match &outcome {
            ConnectOutcome::Qr(qr) if qr.pairing_code.is_some() => "pairing",
            ConnectOutcome::Qr(qr) if qr.image.is_some() => "qr",
            ConnectOutcome::Qr(_) => "code only",
            ConnectOutcome::AlreadyOpen => "open",
            ConnectOutcome::Pending => "pending",
        };
        assert_eq!(got, expected, "{outcome:?}");
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

#[tokio::test]
async fn sends_text_with_quote_and_typing_delay() {
    let server = MockServer::start().await;
    // Evolution looks the quoted message up by its key, so the quote's text is not sent.
    let mut request = fixture_json("evolution", "rest.message.sendText.request.json");
    request["quoted"] = json!({"key": {"id": "3EB0A1B2C3D4E5F60718"}});
    Mock::given(method("POST"))
        .and(path("/message/sendText/support-bot"))
        .and(header("apikey", API_KEY))
        .and(body_json(request))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("evolution", "rest.message.sendText.response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let sent = evolution()
        .with_typing_delay(Duration::from_millis(1200))
        .send(
            &channel(ROUTE, credentials(&server.uri())),
            &outbound(
                OutboundBody::text("Nosso horário é de 9h às 18h."),
                Some("3EB0A1B2C3D4E5F60718"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "3EB0SENT000000000001");
}

#[tokio::test]
async fn sends_reactions_and_media_and_refuses_what_it_cannot() {
    let server = MockServer::start().await;
    let channel = channel(ROUTE, credentials(&server.uri()));
    let answer = ResponseTemplate::new(201)
        .set_body_json(json!({"key": {"id": "3EB0OUT2", "fromMe": true}}));
    Mock::given(method("POST"))
        .and(path("/message/sendReaction/support-bot"))
        .and(body_json(json!({
            "key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0A1B2C3D4E5F60718"},
            "reaction": "👍"
        })))
        .respond_with(answer.clone())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/sendMedia/support-bot"))
        .and(body_json(json!({
            "number": CUSTOMER, "mediatype": "document", "media": "https://example.com/a.pdf",
            "caption": "Segue", "fileName": "a.pdf"
        })))
        .respond_with(answer.clone())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/sendWhatsAppAudio/support-bot"))
        .and(body_json(
            json!({"number": CUSTOMER, "audio": "https://example.com/a.ogg"}),
        ))
        .respond_with(answer.clone())
        .expect(1)
        .mount(&server)
        .await;
    // A person's file travels as base64 with its type.
    Mock::given(method("POST"))
        .and(path("/message/sendMedia/support-bot"))
        .and(body_json(json!({
            "number": CUSTOMER, "mediatype": "image", "mimetype": "image/png",
            "media": "iVBORw0KGgo=", "caption": "O cardápio"
        })))
        .respond_with(answer.clone())
        .expect(1)
        .mount(&server)
        .await;
    // Buttons and lists become numbered options.
    Mock::given(method("POST"))
        .and(path("/message/sendText/support-bot"))
        .and(body_json(json!({
            "number": CUSTOMER, "text": "Abrimos às 9h.\n\n1. Preços\n2. Falar com alguém"
        })))
        .respond_with(answer.clone())
        .expect(2)
        .mount(&server)
        .await;
    let evolution = evolution();
    let options = [
        OutboundBody::Buttons {
            text: "Abrimos às 9h.".into(),
            buttons: vec![
                ("palaver:ask:1".into(), "Preços".into()),
                ("palaver:person".into(), "Falar com alguém".into()),
            ],
        },
        OutboundBody::List {
            text: "Abrimos às 9h.".into(),
            button: "Opções".into(),
            rows: vec![
                ("palaver:ask:1".into(), "Preços".into(), None),
                ("palaver:person".into(), "Falar com alguém".into(), None),
            ],
        },
    ];
    for body in options {
        evolution
            .send(&channel, &outbound(body, None))
            .await
            .unwrap();
    }
    let uploaded = evolution
        .upload_media(
            &channel,
            crate::providers::FileToSend {
                bytes: b"\x89PNG\r\n\x1a\n",
                mime_type: "image/png",
                filename: "menu.png",
            },
        )
        .await
        .unwrap();
    let upload = OutboundBody::Upload {
        kind: "image".into(),
        media: uploaded,
        caption: Some("O cardápio".into()),
        filename: None,
    };
    let sent = evolution
        .send(&channel, &outbound(upload, None))
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "3EB0OUT2");
    let reaction = OutboundBody::Reaction {
        message_id: "3EB0A1B2C3D4E5F60718".into(),
        emoji: "👍".into(),
    };
    let document = OutboundBody::Media {
        kind: "document".into(),
        link: "https://example.com/a.pdf".into(),
        caption: Some("Segue".into()),
        filename: Some("a.pdf".into()),
    };
    let voice = OutboundBody::Media {
        kind: "voice".into(),
        link: "https://example.com/a.ogg".into(),
        caption: None,
        filename: None,
    };
    for body in [reaction, document, voice] {
        let sent = evolution
            .send(&channel, &outbound(body, None))
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, "3EB0OUT2");
    }
    let unsupported = [OutboundBody::Template {
        name: "t".into(),
        language: "pt_BR".into(),
        parameters: Default::default(),
    }];
    for body in unsupported {
        let error = evolution
            .send(&channel, &outbound(body, None))
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Unsupported(_)), "{error:?}");
    }
}

#[tokio::test]
async fn errors_are_read_from_the_envelope() {
    let cases = [
        (401, fixture("evolution", "rest.error.401.json"), "auth", "HTTP 401: Unauthorized"),
        (
            404,
            fixture("evolution", "rest.error.404_instance.json"),
            "permanent",
            "HTTP 404: The \"support-bot\" instance does not exist",
        ),
        (
            400,
            json!({"status": 400, "error": "Bad Request", "response": {"message": [
                {"jid": "5511988887777@s.whatsapp.net", "exists": false, "number": "5511988887777"}
            ]}})
            .to_string()
            .into_bytes(),
            "permanent",
            "HTTP 400: {\"jid\":\"5511988887777@s.whatsapp.net\",\"exists\":false,\"number\":\"5511988887777\"}",
        ),
        (
            500,
            json!({"status": 500, "error": "Internal Server Error", "response": {"message": "Connection Closed"}})
                .to_string()
                .into_bytes(),
            "transient",
            "HTTP 500: Connection Closed",
        ),
    ];
    for (status, body, kind, message) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let error = evolution()
            .send(
                &channel(ROUTE, credentials(&server.uri())),
                &outbound(OutboundBody::text("oi"), None),
            )
            .await
            .unwrap_err();
        let (got, text) = match &error {
            ProviderError::Auth(m) | ProviderError::Permanent(m) => (
                if matches!(error, ProviderError::Auth(_)) {
                    "auth"
                } else {
                    "permanent"
                },
                m.as_str(),
            ),
            ProviderError::Transient { message, .. } => ("transient", message.as_str()),
            other => panic!("{other:?}"),
        };
        assert_eq!((got, text), (kind, message));
        assert!(!format!("{error:?}").contains(API_KEY));
    }
}

#[tokio::test]
async fn fetches_inline_media_without_a_request_and_asks_evolution_otherwise() {
    let server = MockServer::start().await;
    let channel = channel(ROUTE, credentials(&server.uri()));
    let inline = MediaRef {
        id: Some("3EB0F00D1234ABCD5678".into()),
        mime_type: Some("audio/ogg; codecs=opus".into()),
        inline_base64: Some("T2dnUwACAAAAAAAAAAA=".into()),
        ..MediaRef::default()
    };
    let media = evolution().fetch_media(&channel, &inline).await.unwrap();
    assert_eq!(media.bytes, b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00");
    assert_eq!(media.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));

    Mock::given(method("POST"))
        .and(path("/chat/getBase64FromMediaMessage/support-bot"))
        .and(header("apikey", API_KEY))
        .and(body_json(
            json!({"message": {"key": {"id": "3EB0BEEF0000CAFE1111"}}, "convertToMp4": false}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "mediaType": "imageMessage", "fileName": "3EB0BEEF0000CAFE1111.jpeg",
            "size": {"fileLength": "84213"}, "mimetype": "image/jpeg", "base64": "/9j/4AAQ"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let by_key = MediaRef {
        id: Some("3EB0BEEF0000CAFE1111".into()),
        ..MediaRef::default()
    };
    let media = evolution().fetch_media(&channel, &by_key).await.unwrap();
    assert_eq!(media.bytes, [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]);
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));

    let broken = MediaRef {
        inline_base64: Some("not base64!".into()),
        ..MediaRef::default()
    };
    assert!(matches!(
        evolution().fetch_media(&channel, &broken).await,
        Err(ProviderError::Permanent(_))
    ));
    assert_eq!(
        decode_base64("data:image/png;base64,AAEC").unwrap(),
        [0, 1, 2]
    );
}
