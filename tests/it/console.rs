//! The web console over HTTP, as a browser without JavaScript uses it: first run, sign-in,
//! the inbox showing a webhook's message, a reply reaching the Graph API once, resolving, and
//! the CSRF and Content-Security-Policy rules.

use serde_json::{json, Value};
use wiremock::MockServer;

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{meta_app, meta_text, mount_send, post_meta, sends, sent_ok};

/// A browser: no redirects followed, the session cookie kept by hand.
struct Page {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    fn new(t: &TestApp) -> Self {
        Page {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: t.url.clone(),
            cookie: None,
        }
    }

    async fn answer(&mut self, response: reqwest::Response) -> Answer {
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap();
            let value = pair.strip_prefix("palaver_session=").unwrap();
            self.cookie = (!value.is_empty()).then(|| value.to_string());
        }
        Answer {
            status: response.status().as_u16(),
            location: headers
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            html: response.text().await.unwrap(),
            headers,
        }
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => request.header("cookie", format!("palaver_session={c}")),
            None => request,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.with_cookie(self.client.get(format!("{}{path}", self.base)));
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.with_cookie(self.client.post(format!("{}{path}", self.base)));
        let response = request.form(form).send().await.unwrap();
        self.answer(response).await
    }
}

/// A browser signed in as the instance owner, made through the set-up page.
async fn signed_in_owner(t: &TestApp) -> Page {
    let mut owner = Page::new(t);
    let token = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    let made = owner
        .post(
            "/setup",
            &[
                ("token", &token),
                ("email", "marta@casanube.example"),
                ("name", "Marta"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    owner
}

/// The value of the first input named `field` on a page.
fn input(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("name=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} in {html}"));
    let tag = &html[at..at + html[at..].find('>').unwrap()];
    let start = tag
        .find("value=\"")
        .unwrap_or_else(|| panic!("no value in {tag}"))
        + 7;
    tag[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_person_sets_up_signs_in_answers_and_resolves_from_the_console() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.out")).await;
    let t = meta_app(&graph, json!({})).await;
    let mut page = Page::new(&t);

    // Nobody exists yet: every page leads to the set-up page.
    let home = page.get("/").await;
    assert_eq!(home.location.as_deref(), Some("/inbox"));
    let inbox = page.get("/inbox").await;
    assert_eq!(inbox.status, 303);
    assert_eq!(inbox.location.as_deref(), Some("/setup"));
    let setup = page.get("/setup?token=abc").await;
    assert_eq!(setup.status, 200);
    assert!(setup.html.contains("Welcome to Palaver"));
    assert_eq!(
        input(&setup.html, "token"),
        "abc",
        "the link's token is filled in"
    );
    let csp = setup.headers["content-security-policy"].to_str().unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!setup.html.contains("<script>"), "no inline script");

    let wrong = page
        .post(
            "/setup",
            &[
                ("token", "wrong"),
                ("email", "marta@casanube.example"),
                ("name", "Marta"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 404);
    assert!(
        wrong.html.contains("invalid, used or expired"),
        "{}",
        wrong.html
    );
    assert!(
        wrong.html.contains("marta@casanube.example"),
        "the form keeps what was typed"
    );
    let token = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    let made = page
        .post(
            "/setup",
            &[
                ("token", &token),
                ("email", "marta@casanube.example"),
                ("name", "Marta"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    assert_eq!(made.location.as_deref(), Some("/inbox"));
    assert!(page.cookie.is_some(), "signed in");

    // The inbox is empty, then shows a customer's message (escaped) without anything else.
    let inbox = page.get("/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.html.contains("No conversations"), "{}", inbox.html);
    assert_eq!(
        post_meta(
            &t,
            &meta_text("wamid.c1", "<b>quiero hablar con una persona</b>")
        )
        .await
        .status(),
        200
    );
    // The list previews the latest message, which is the bot's handover once the keyword has
    // been handled (a race with this request); the thread shows every message.
    let inbox = page.get("/inbox").await;
    assert!(inbox.html.contains("Test Customer"), "{}", inbox.html);
    assert!(!inbox.html.contains("<b>quiero"));
    let id = first_conversation(&inbox.html).unwrap();
    let searched = page.get("/inbox?q=nothing-like-this").await;
    assert!(searched.html.contains("No conversations match"));

    let thread = page.get(&format!("/inbox/{id}")).await;
    assert_eq!(thread.status, 200);
    assert!(thread.html.contains("&lt;b&gt;quiero"), "{}", thread.html);
    assert!(!thread.html.contains("<b>quiero"));
    let csrf = input(&thread.html, "_csrf");
    let key = input(&thread.html, "key");

    // Without the form's CSRF token nothing is sent.
    let forged = page
        .post(
            &format!("/inbox/{id}/reply"),
            &[("text", "forged"), ("key", "k")],
        )
        .await;
    assert_eq!(forged.status, 403);
    // A reply, submitted twice (a double click), reaches the Graph API once.
    for _ in 0..2 {
        let sent = page
            .post(
                &format!("/inbox/{id}/reply"),
                &[
                    ("_csrf", &csrf),
                    ("key", &key),
                    ("text", "Hola, soy Marta. ¿En qué te ayudo?"),
                ],
            )
            .await;
        assert_eq!(sent.status, 303, "{}", sent.html);
    }
    let human = eventually(std::time::Duration::from_secs(10), || async {
        let s: Vec<_> = sends(&graph)
            .await
            .into_iter()
            .filter(|s| s.to_string().contains("soy Marta"))
            .collect();
        (!s.is_empty()).then_some(s)
    })
    .await
    .expect("the reply is sent");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        sends(&graph)
            .await
            .iter()
            .filter(|s| s.to_string().contains("soy Marta"))
            .count(),
        1,
        "{human:?} all: {:#?}",
        sends(&graph).await
    );
    let thread = page.get(&format!("/inbox/{id}")).await;
    assert!(thread.html.contains("soy Marta"));
    assert!(
        thread.html.contains("escalated"),
        "a person's reply takes over"
    );

    let resolved = page
        .post(&format!("/inbox/{id}/resolve"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(resolved.status, 303);
    let thread = page.get(&format!("/inbox/{id}")).await;
    assert!(thread.html.contains("status-resolved"), "{}", thread.html);

    // Another workspace's (or a made-up) conversation is not found.
    let missing = page.get("/inbox/not-an-id").await;
    assert_eq!(missing.status, 404);

    // Signing out ends the session: the inbox asks to sign in again.
    let out = page.post("/sign-out", &[("_csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/sign-in"));
    assert!(page.cookie.is_none());
    let inbox = page.get(&format!("/inbox/{id}")).await;
    assert_eq!(inbox.status, 303);
    let to = inbox.location.unwrap();
    assert!(to.starts_with("/sign-in?next=%2Finbox%2F"), "{to}");
    let wrong = page
        .post(
            "/sign-in",
            &[
                ("email", "marta@casanube.example"),
                ("password", "wrong password!"),
                ("next", "/inbox"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.html.contains("wrong email or password"));
    let back = page
        .post(
            "/sign-in",
            &[
                ("email", "marta@casanube.example"),
                ("password", "correct horse battery"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(back.status, 303);
    assert_eq!(
        back.location.as_deref(),
        Some("/inbox"),
        "never sent to another site"
    );
}

#[tokio::test]
async fn console_assets_are_served_from_the_binary() {
    let t = TestApp::start(Default::default()).await.unwrap();
    for (path, kind) in [
        ("/assets/console.css", "text/css"),
        ("/assets/console.js", "text/javascript"),
        ("/assets/api.js", "text/javascript"),
        ("/assets/channels.js", "text/javascript"),
        ("/assets/agent.js", "text/javascript"),
        ("/assets/sandbox.js", "text/javascript"),
        ("/assets/evals.js", "text/javascript"),
    ] {
        let response = t
            .client
            .get(format!("{}{path}", t.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(content_type.starts_with(kind), "{content_type}");
        assert!(response.text().await.unwrap().len() > 500);
    }
}

#[tokio::test]
async fn the_agent_page_edits_the_bots_messages_in_each_language() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let (status, body) = t
        .patch(
            "/api/v1/agents/demo",
            &json!({"messages": {"pt": {"escalation": "Já lhe passo a um colega."}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut owner = signed_in_owner(&t).await;
    let page = owner.get("/agents/demo").await;
    assert_eq!(page.status, 200);
    let textarea = |name: &str| {
        let at = page
            .html
            .find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("no {name} on the agent page"));
        let end = at + page.html[at..].find("</textarea>").unwrap();
        page.html[at..end].to_string()
    };
    // The agent's own wording, and the shipped one shown where it has none.
    assert!(textarea("messages.pt.escalation").ends_with(">Já lhe passo a um colega."));
    let shipped = textarea("messages.es.escalation");
    assert!(
        shipped.contains("placeholder=\"Pasaré tu mensaje a un compañero"),
        "{shipped}"
    );
    assert!(
        shipped.ends_with('>'),
        "no wording of the agent's: {shipped}"
    );
    // In the agent's own language (English) its settings say the rest; two messages remain.
    assert!(!page.html.contains("name=\"messages.en.escalation\""));
    assert!(textarea("messages.en.other_language").contains("placeholder=\"Our information"));
    for code in ["de", "fr"] {
        assert!(page
            .html
            .contains(&format!("name=\"messages.{code}.voice_unavailable\"")));
    }
}

#[tokio::test]
async fn the_agent_page_shows_the_basics_and_folds_the_expert_settings() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let mut owner = signed_in_owner(&t).await;
    let page = owner.get("/agents/demo").await;
    assert_eq!(page.status, 200);
    let html = &page.html;
    let folded_at = html
        .find("<details class=\"advanced\"")
        .expect("an Advanced section");
    let folded_end = folded_at + html[folded_at..].find("</details>").unwrap();
    let folded = &html[folded_at..folded_end];
    assert!(folded.contains("<summary>Advanced"), "{folded}");
    assert!(
        !folded[..folded.find('>').unwrap()].contains("open"),
        "closed at first"
    );
    for expert in [
        "prompt_file",
        "model",
        "temperature",
        "max_tokens",
        "top_k",
        "min_score",
        "confidence_threshold",
    ] {
        assert!(
            folded.contains(&format!("name=\"{expert}\"")),
            "{expert} is advanced"
        );
    }
    for basic in [
        "active",
        "cite_sources",
        "business_name",
        "system_prompt",
        "answerer",
    ] {
        let at = html
            .find(&format!("name=\"{basic}\""))
            .unwrap_or_else(|| panic!("no {basic}"));
        assert!(at < folded_at, "{basic} is shown before Advanced");
    }
    // The source suffix is off until the agent asks for it.
    let cite = |html: &str| {
        let at = html.find("name=\"cite_sources\"").unwrap();
        html[at..at + html[at..].find('>').unwrap()].contains("checked")
    };
    assert!(!cite(html));
    let (status, body) = t
        .patch("/api/v1/agents/demo", &json!({"cite_sources": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(cite(&owner.get("/agents/demo").await.html));
}

#[tokio::test]
async fn an_empty_inbox_shows_the_first_steps_each_ticked_once_done() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.out")).await;
    let t = TestApp::start(crate::support::app::Options {
        workers: true,
        tweak: Box::new({
            let uri = graph.uri();
            move |s| s.channels.meta_graph_url = uri
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut owner = signed_in_owner(&t).await;
    // Each step's link, and whether it is ticked, as the page says it.
    let steps = |html: &str| -> Vec<(String, bool)> {
        html.split("<li class=\"step")
            .skip(1)
            .map(|step| {
                let href = step
                    .split("href=\"")
                    .nth(1)
                    .map_or("", |h| h.split('"').next().unwrap());
                // The page escapes the slashes of values it writes (`&#x2f;`).
                (href.replace("&#x2f;", "/"), step.starts_with(" done"))
            })
            .collect()
    };
    let inbox = owner.get("/inbox").await;
    assert_eq!(inbox.status, 200);
    assert_eq!(
        steps(&inbox.html),
        [
            ("/agents".into(), false),
            ("/agents".into(), false),
            ("/sandbox".into(), false),
            ("/channels".into(), false)
        ]
    );
    // An agent with documents, tried in the sandbox.
    t.demo_agent("demo", json!({})).await;
    let (status, body) = t
        .post("/api/v1/sandbox/demo/messages", &json!({"text": "hello"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let done: Vec<bool> = steps(&owner.get("/inbox").await.html)
        .into_iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(done, [true, true, true, false]);
    assert!(!owner.get("/inbox").await.html.contains("All set"));
    let steps_now = steps(&owner.get("/inbox").await.html);
    assert_eq!(
        steps_now[1].0, "/agents/demo",
        "documents are added on the agent's page"
    );
    // A filtered list that finds nothing says so, not the steps.
    let filtered = owner.get("/inbox?status=resolved").await;
    assert!(steps(&filtered.html).is_empty());
    assert!(filtered.html.contains("match these filters"));

    // A number: then the first customer's conversation takes the steps' place.
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "Casa Nube", "provider": "meta", "phone_number_id": crate::webhooks::PHONE_ID, "agent": "demo",
                "credentials": {"access_token": "test-token", "app_secret": crate::webhooks::APP_SECRET, "verify_token": "verify-me"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let done: Vec<bool> = steps(&owner.get("/inbox").await.html)
        .into_iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(done, [true, true, true, true]);
    assert!(owner.get("/inbox").await.html.contains("All set"));
    post_meta(&t, &meta_text("wamid.first", "Hello")).await;
    let inbox = owner.get("/inbox").await;
    assert!(steps(&inbox.html).is_empty(), "{}", inbox.html);
    assert!(inbox.html.contains("Test Customer"));
    // Every conversation snoozed is not a first run: the list says where they are.
    let list = t.get("/api/v1/conversations").await;
    let id = list[0]["id"].as_str().unwrap();
    let (status, _) = t
        .post(
            &format!("/api/v1/conversations/{id}/snooze"),
            &json!({"preset": "1h"}),
        )
        .await;
    assert_eq!(status, 200);
    let inbox = owner.get("/inbox").await;
    assert!(steps(&inbox.html).is_empty(), "{}", inbox.html);
    assert!(!inbox.html.contains("Test Customer"));
    assert!(inbox
        .html
        .contains("Snoozed conversations</a> come back by themselves"));
    let snoozed = owner.get("/inbox?status=snoozed").await;
    assert!(snoozed.html.contains("Test Customer"));
    assert!(snoozed.html.contains("Snoozed until"));
    t.stop().await;
}

#[tokio::test]
async fn each_role_opens_the_pages_it_may_and_no_other() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let mut owner = signed_in_owner(&t).await;
    for path in [
        "/inbox",
        "/channels",
        "/agents",
        "/agents/demo",
        "/sandbox",
        "/sandbox?agent=demo",
        "/evals",
        "/knowledge-gaps",
        "/settings",
    ] {
        let page = owner.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.html);
        assert!(page.html.contains("name=\"csrf-token\""), "{path}");
    }
    let channels = owner.get("/channels").await;
    // Templates escape `/` in attribute values.
    assert!(
        channels
            .html
            .replace("&#x2f;", "/")
            .contains("/webhooks/meta"),
        "the webhook URL to copy"
    );
    assert!(
        !channels.html.contains("test-token"),
        "credentials are never shown"
    );
    assert_eq!(owner.get("/agents/nobody").await.status, 404);
    assert_eq!(owner.get("/evals/not-a-run").await.status, 404);
    assert_eq!(owner.get("/assets/nothing.js").await.status, 404);

    // People invited by the owner, through the JSON API as the settings page does it.
    for (email, role, opens, refused) in [
        (
            "joao@casanube.example",
            "agent",
            &["/inbox"][..],
            &[
                "/channels",
                "/settings",
                "/agents",
                "/sandbox",
                "/evals",
                "/knowledge-gaps",
            ][..],
        ),
        (
            "ines@casanube.example",
            "author",
            &["/inbox", "/agents", "/sandbox", "/evals", "/knowledge-gaps"][..],
            &["/channels", "/settings"][..],
        ),
    ] {
        let (status, invitation) = t
            .post(
                "/api/v1/invitations",
                &json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{invitation}");
        let url = invitation["url"].as_str().unwrap();
        assert!(url.contains("/invitations/accept?token="), "{url}");
        let token = invitation["token"].as_str().unwrap();
        let mut person = Page::new(&t);
        let join = person
            .get(&format!("/invitations/accept?token={token}"))
            .await;
        assert_eq!(join.status, 200);
        assert_eq!(input(&join.html, "token"), token);
        let joined = person
            .post(
                "/invitations/accept",
                &[
                    ("token", token),
                    ("name", "New person"),
                    ("password", "another good password"),
                ],
            )
            .await;
        assert_eq!(joined.status, 303, "{}", joined.html);
        for path in opens {
            assert_eq!(person.get(path).await.status, 200, "{role} opens {path}");
        }
        for path in refused {
            let page = person.get(path).await;
            assert_eq!(page.status, 403, "{role} is refused {path}");
            assert!(page.html.contains("Not allowed"), "{}", page.html);
        }
        // Templates escape `/` in attribute values.
        let inbox = person.get("/inbox").await.html.replace("&#x2f;", "/");
        assert!(!inbox.contains("href=\"/channels\""), "{role}'s menu");
        assert!(!inbox.contains("href=\"/settings\""), "{role}'s menu");
        // The first steps (no conversation yet; the sandbox not tried) link only what the
        // role opens, and say who takes the others.
        assert_eq!(
            inbox.contains("An owner or an author does this."),
            role == "agent",
            "{inbox}"
        );
        assert_eq!(inbox.contains("href=\"/sandbox\""), role == "author");
    }
    // A wrong invitation code is refused.
    let again = Page::new(&t)
        .post(
            "/invitations/accept",
            &[("token", "nonsense"), ("password", "another good password")],
        )
        .await;
    assert!(again.status >= 400, "{}", again.html);
}

#[tokio::test]
async fn a_long_conversation_pages_back_to_its_first_message() {
    let t = TestApp::start(Default::default()).await.unwrap();
    let store = t.app.store.clone();
    let channel = store
        .create_channel(palaver::store::NewChannel {
            workspace_id: palaver::domain::WorkspaceId::DEFAULT,
            name: "long".into(),
            provider: palaver::domain::ProviderKind::Meta,
            route_key: "100000000000077".into(),
            agent_id: None,
            settings: Default::default(),
            graph_version: None,
            sealed_credentials: vec![1],
            state: palaver::domain::ChannelState::Connected,
        })
        .await
        .unwrap();
    for n in 0..230 {
        let mut inbound = crate::store::conversations::inbound(
            &format!("wamid.LONG.{n}"),
            "351911111111",
            &format!("message number {n:03}"),
        );
        inbound.sent_at = chrono::Utc::now();
        store
            .record_inbound(&channel, inbound, crate::store::conversations::policy())
            .await
            .unwrap();
    }
    let mut page = signed_in_owner(&t).await;
    let inbox = page.get("/inbox").await;
    let id = first_conversation(&inbox.html).unwrap();
    let latest = page.get(&format!("/inbox/{id}")).await;
    assert!(latest.html.contains("message number 229"));
    assert!(!latest.html.contains("message number 029"), "200 a page");
    let earlier_at = latest
        .html
        .find("Earlier messages")
        .expect("a link to earlier messages");
    let href_at = latest.html[..earlier_at].rfind("href=\"").unwrap() + 6;
    let href = latest.html[href_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    let earlier = page.get(&href).await;
    assert_eq!(earlier.status, 200, "{href}");
    assert!(earlier.html.contains("message number 000"));
    assert!(earlier.html.contains("message number 029"));
    assert!(!earlier.html.contains("message number 030"));
    assert!(!earlier.html.contains("Earlier messages"), "the first page");
    assert!(earlier.html.contains("Latest messages"));
    assert_eq!(
        page.get(&format!("/inbox/{id}?before=nonsense"))
            .await
            .status,
        422
    );
    t.stop().await;
}

/// Characters that break naive form and query parsing: separators, escapes, invalid percent
/// sequences, control characters, path tricks and text outside ASCII.
fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just("%".to_string()),
        Just("%zz".to_string()),
        Just("%FF%FE".to_string()),
        Just("%00".to_string()),
        Just("%0A".to_string()),
        Just("%09".to_string()),
        Just("&".to_string()),
        Just("=".to_string()),
        Just("+".to_string()),
        Just("//".to_string()),
        Just("\\".to_string()),
        Just("..".to_string()),
        Just("<script>".to_string()),
        Just("é".to_string()),
        Just("🙂".to_string()),
        Just("9".repeat(40)),
        Just("-1".to_string()),
        Just("open".to_string()),
        Just("escalated".to_string()),
        Just("http://evil.example".to_string()),
        "[a-z0-9_]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
}

/// `text` as it can stand in a URL's query or a form body: bytes a URL cannot hold are
/// percent-encoded, but `%`, `&`, `=` and `+` are left as they are, so that broken escapes and
/// extra separators reach the server's parser.
fn raw(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'#' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Any query string on any console page and any body on any console form gets a page or a
/// clear refusal: never a server error, always the security headers, and a redirect only within
/// the site.
#[tokio::test]
async fn any_query_or_form_gets_a_page_or_a_clear_refusal() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// Requests per page or form: bounded, so the suite stays quick.
    const CASES: usize = 24;

    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.out")).await;
    let t = meta_app(&graph, json!({})).await;
    let mut page = signed_in_owner(&t).await;
    assert_eq!(
        post_meta(&t, &meta_text("wamid.p1", "hello"))
            .await
            .status(),
        200
    );
    let conversation = eventually(std::time::Duration::from_secs(10), || {
        let list = page.with_cookie(page.client.get(format!("{}/inbox", page.base)));
        async move {
            let html = list.send().await.ok()?.text().await.ok()?;
            first_conversation(&html)
        }
    })
    .await
    .expect("the conversation is listed");
    let inbox = page.get("/inbox").await.html;
    let marker = "name=\"csrf-token\" content=\"";
    let at = inbox.find(marker).expect("the page carries its CSRF token") + marker.len();
    let csrf = inbox[at..].split('"').next().unwrap().to_string();

    let gets = [
        "/sign-in".to_string(),
        "/setup".to_string(),
        "/invitations/accept".to_string(),
        "/inbox".to_string(),
        format!("/inbox/{conversation}"),
        "/channels".to_string(),
        "/agents".to_string(),
        "/agents/demo".to_string(),
        "/sandbox".to_string(),
        "/evals".to_string(),
        "/evals/case".to_string(),
        "/settings".to_string(),
    ];
    let posts = [
        format!("/inbox/{conversation}/reply"),
        format!("/inbox/{conversation}/assign"),
        format!("/inbox/{conversation}/handback"),
        format!("/inbox/{conversation}/resolve"),
        "/invitations/accept".to_string(),
        "/setup".to_string(),
        "/sign-in".to_string(),
    ];
    let fields = [
        "q",
        "status",
        "assignee",
        "channel",
        "unread",
        "page",
        "before",
        "next",
        "token",
        "agent",
        "conversation",
        "message",
        "compare",
        "text",
        "email",
        "password",
        "name",
        "_csrf",
    ];
    let pairs = proptest::collection::vec(
        (
            proptest::prop_oneof![
                proptest::sample::select(fields.to_vec()).prop_map(str::to_string),
                hostile_text(),
            ],
            hostile_text(),
        ),
        0..6,
    );
    let mut runner = TestRunner::deterministic();
    let mut sample = || pairs.new_tree(&mut runner).unwrap().current();
    let check = |what: &str, answer: &Answer| {
        assert!(
            answer.status < 500,
            "{what}: {} {}",
            answer.status,
            answer.html
        );
        assert!(
            answer.headers.contains_key("content-security-policy"),
            "{what}: no CSP"
        );
        if let Some(to) = &answer.location {
            assert!(
                to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'),
                "{what}: redirects to {to:?}"
            );
        }
    };
    let query = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", raw(k), raw(v)))
            .collect::<Vec<_>>()
            .join("&")
    };

    for path in &gets {
        for _ in 0..CASES {
            let q = query(&sample());
            let what = format!("GET {path}?{q}");
            let answer = page.get(&format!("{path}?{q}")).await;
            check(&what, &answer);
        }
    }
    for path in &posts {
        for n in 0..CASES {
            let mut pairs = sample();
            // Half the forms carry the session's token, so that they reach the form's own
            // checks rather than stopping at the CSRF check.
            if n % 2 == 0 {
                pairs.push(("_csrf".into(), csrf.clone()));
            }
            let body = query(&pairs);
            let what = format!("POST {path} {body}");
            let request = page
                .with_cookie(page.client.post(format!("{}{path}", page.base)))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            let response = request.send().await.unwrap();
            let answer = page.answer(response).await;
            check(&what, &answer);
            if page.cookie.is_none() {
                // A form that signs out or in as nobody: sign in again for the next one.
                page = Page::new(&t);
                let again = page
                    .post(
                        "/sign-in",
                        &[
                            ("email", "marta@casanube.example"),
                            ("password", "correct horse battery"),
                        ],
                    )
                    .await;
                assert_eq!(again.status, 303, "{}", again.html);
            }
        }
    }
    // The pages still work for the person who sent all of that.
    assert_eq!(page.get("/inbox").await.status, 200);
    assert_eq!(
        page.get(&format!("/inbox/{conversation}")).await.status,
        200
    );
}

#[tokio::test]
async fn a_meta_channels_card_shows_its_graph_version_and_a_retired_one_is_flagged() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let mut owner = signed_in_owner(&t).await;
    let page = owner.get("/channels").await;
    assert_eq!(page.status, 200, "{}", page.html);
    // The card's form changes it through the API, offering the versions Meta still serves.
    assert_eq!(
        input(&page.html, "graph_version"),
        crate::webhooks::GRAPH_VERSION
    );
    let html = page.html.replace("&#x2f;", "/");
    assert!(html.contains("data-method=\"PATCH\""), "{html}");
    assert!(html.contains("<datalist id=\"graph-versions\">"), "{html}");
    assert!(html.contains("<option value=\"v26.0\">"), "{html}");
    assert!(
        !html.contains("<option value=\"v19.0\">"),
        "retired: {html}"
    );

    // A version with no retirement announced needs no warning; one Meta has retired since it
    // was chosen is flagged on the card.
    let mut channel = t.app.store.list_channels(None, None).await.unwrap()[0].clone();
    channel.graph_version = Some("v26.0".into());
    t.app.store.update_channel(&channel, None).await.unwrap();
    let page = owner.get("/channels").await;
    assert_eq!(input(&page.html, "graph_version"), "v26.0");
    assert!(!page.html.contains("class=\"warning\""), "{}", page.html);
    channel.graph_version = Some("v19.0".into());
    t.app.store.update_channel(&channel, None).await.unwrap();
    let page = owner.get("/channels").await;
    assert_eq!(input(&page.html, "graph_version"), "v19.0");
    let warning = page
        .html
        .split("class=\"warning\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no warning in {}", page.html));
    assert!(
        warning.contains("Graph API v19.0 was retired by Meta on 2026-05-21"),
        "{warning}"
    );
}

/// The API reference page is the served document, read as a page: every operation under its
/// tag with who may call it, the outgoing webhook and the schemas; no script, the console's
/// policy; and the menu links to it.
#[tokio::test]
async fn the_api_reference_shows_every_operation_of_the_document() {
    let t = TestApp::start(Options::default()).await.unwrap();
    let mut owner = signed_in_owner(&t).await;
    let page = owner.get("/reference").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page
        .html
        .contains("href=\"/reference\" aria-current=\"page\""));
    let html = page.html.replace("&#x2f;", "/").replace("&#x27;", "'");
    let doc: Value = t
        .client
        .get(format!("{}/api/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(html.contains(&format!("id=\"op-{id}\"")), "{id}");
            assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
            operations += 1;
        }
    }
    assert!(operations > 60);
    // Who may call, as the document says: an owners' route and a public one.
    let section = |id: &str| {
        let at = html.find(&format!("id=\"op-{id}\"")).unwrap();
        html[at..at + html[at..].find("</section>").unwrap()].to_string()
    };
    assert!(section("list_jobs").contains("(owner)"));
    assert!(section("sign_in").contains("(public)"));
    assert!(section("list_agents").contains("href=\"#schema-AgentView\""));
    for anchor in [
        "id=\"op-deliver_event\"",
        "id=\"schema-AgentView\"",
        "X-Hub-Signature-256",
        "X-Palaver-Signature",
    ] {
        assert!(html.contains(anchor), "{anchor}");
    }
    assert!(!html.contains("<script>"), "no inline script");
    t.stop().await;
}

/// The id of the first conversation an inbox page lists.
fn first_conversation(html: &str) -> Option<String> {
    let list = &html[html.find("id=\"conversations\"")?..];
    let at = list.find("href=\"/inbox/")? + "href=\"/inbox/".len();
    Some(list[at..].split('"').next()?.to_string())
}

#[tokio::test]
async fn teams_and_channel_rules_are_set_from_plain_forms_by_owners_only() {
    let t = TestApp::start(Default::default()).await.unwrap();
    let channel = t
        .app
        .store
        .create_channel(palaver::store::NewChannel {
            workspace_id: palaver::domain::WorkspaceId::DEFAULT,
            name: "Casa Nube".into(),
            provider: palaver::domain::ProviderKind::Meta,
            route_key: "100000000000088".into(),
            agent_id: None,
            settings: Default::default(),
            graph_version: None,
            sealed_credentials: vec![1],
            state: palaver::domain::ChannelState::Connected,
        })
        .await
        .unwrap();
    let mut owner = signed_in_owner(&t).await;
    let page = owner.get("/teams").await;
    assert_eq!(page.status, 200, "{}", page.html);
    let csrf = input(&page.html, "_csrf");

    // Without the form's CSRF token nothing is made; a name of spaces is said to be wrong.
    let refused = owner.post("/teams", &[("name", "Vendas")]).await;
    assert_eq!(refused.status, 403);
    let refused = owner
        .post("/teams", &[("_csrf", &csrf), ("name", "   ")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.html.contains("must be 1-64 characters"),
        "{}",
        refused.html
    );
    assert_eq!(t.get("/api/v1/teams").await, json!([]));
    let me = t.get("/api/v1/members").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made = owner
        .post(
            "/teams",
            &[("_csrf", &csrf), ("name", "Vendas"), ("member", &me)],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let teams = t.get("/api/v1/teams").await;
    assert_eq!(teams[0]["members"][0]["id"], me.as_str(), "{teams}");
    let team = teams[0]["id"].as_str().unwrap().to_string();

    // The channel's rule: a team, read back by the API; a rule the form does not offer is 422.
    let path = format!("/teams/channels/{}", channel.id);
    let set = owner
        .post(
            &path,
            &[("_csrf", &csrf), ("rule", &format!("team:{team}"))],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.html);
    let rule = t
        .get(&format!("/api/v1/channels/{}/assignment", channel.id))
        .await;
    assert_eq!(rule, json!({"mode": "team", "team": team}));
    let bad = owner
        .post(&path, &[("_csrf", &csrf), ("rule", "round_robin")])
        .await;
    assert_eq!(bad.status, 422);

    // An inbox agent neither opens the page nor sends its forms.
    let (status, invited) = t
        .post(
            "/api/v1/invitations",
            &json!({"email": "joao@casanube.example", "role": "agent"}),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let mut agent = Page::new(&t);
    let joined = agent
        .post(
            "/invitations/accept",
            &[
                ("token", invited["token"].as_str().unwrap()),
                ("name", "João"),
                ("password", "another good password"),
            ],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.html);
    assert_eq!(agent.get("/teams").await.status, 403);
    let agent_csrf = input(&agent.get("/inbox").await.html, "_csrf");
    let refused = agent
        .post(&format!("/teams/{team}/delete"), &[("_csrf", &agent_csrf)])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(t.get("/api/v1/teams").await.as_array().unwrap().len(), 1);
    t.stop().await;
}
