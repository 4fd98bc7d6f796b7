//! Property tests of what anyone may send: every provider's webhook parser takes any bytes, and
//! any mutation of the recorded payloads, without panicking; and the template checker holds a
//! send to its template whatever values it is given. Bounded (a fixed number of cases each),
//! so they run in every `cargo test`.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use super::templates::{components, Template};

/// Cases per property: enough to explore, few enough for CI on two cores.
const CASES: u32 = 256;

/// The recorded webhooks of every provider (`tests/fixtures/<provider>/webhook*.json` and
/// Kapso's `fragment`/`project` events), as JSON.
fn recorded(provider: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider);
    let mut out: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json")
                && ["webhook", "fragment", "project"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
        })
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect();
    out.sort_by_key(|v| v.to_string());
    assert!(!out.is_empty(), "no recorded webhooks in {}", dir.display());
    out
}

/// Every parser, on `body`: each may refuse it, none may panic.
fn parse_all(body: &[u8]) {
    let _ = super::meta::webhook::parse_notification(body);
    let _ = super::evolution::webhook::parse_webhook(body);
    let _ = super::kapso::webhook::parse_body(body);
}

/// A JSON value a hostile sender might put anywhere.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::Array(Vec::new())),
        Just(Value::Object(Default::default())),
        Just(Value::String("\u{0}\u{202e}<script>".into())),
    ]
}

/// `value` with its `n`th node (in document order, wrapping around) replaced by `with`.
fn mutate(value: &mut Value, n: usize, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, with: &mut Option<Value>) {
        if *n == 0 {
            if let Some(w) = with.take() {
                *v = w;
            }
            return;
        }
        *n -= 1;
        match v {
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, n, with)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, n, with)),
            _ => {}
        }
    }
    let mut n = n % count(value);
    walk(value, &mut n, &mut Some(with));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_refused_or_read_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        parse_all(&body);
    }

    #[test]
    fn any_json_is_refused_or_read_never_a_panic(value in hostile()) {
        parse_all(value.to_string().as_bytes());
    }

    #[test]
    fn recorded_webhooks_mutated_anywhere_never_panic(
        provider in prop::sample::select(vec!["meta", "evolution", "kapso"]),
        pick in any::<usize>(),
        at in proptest::collection::vec((any::<usize>(), hostile()), 1..4),
    ) {
        let recorded = recorded(provider);
        let mut payload = recorded[pick % recorded.len()].clone();
        for (n, with) in at {
            mutate(&mut payload, n, with);
        }
        parse_all(payload.to_string().as_bytes());
    }

    #[test]
    fn a_send_that_passes_the_check_fills_its_template(
        values in proptest::collection::btree_map(
            prop::sample::select(vec![
                "header.1", "header.image", "header.document", "header.latitude",
                "header.longitude", "header.location_name", "body.1", "body.2", "body.name",
                "button.0", "coupon.1", "coupon.2", "other.1",
            ]).prop_map(str::to_string),
            ".{0,24}",
            0..8,
        ),
        which in 0usize..3,
    ) {
        let components_json = [
            serde_json::json!([
                {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
                {"type": "BODY", "text": "Code {{1}} for {{2}}"},
                {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Go", "url": "https://e.example/{{1}}"}]}
            ]),
            serde_json::json!([
                {"type": "HEADER", "format": "LOCATION"},
                {"type": "BODY", "text": "See you, {{name}}"},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Ok"}, {"type": "COPY_CODE"}]}
            ]),
            serde_json::json!([
                {"type": "HEADER", "format": "IMAGE"},
                {"type": "BODY", "text": "Our menu"}
            ]),
        ];
        let template = Template::from_graph(&serde_json::json!({
            "name": "t", "language": "en", "status": "APPROVED", "components": components_json[which]
        })).unwrap();
        let values: BTreeMap<String, String> = values;
        let errors = template.check(&values);
        let sent = components(&values);
        if errors.is_empty() {
            // Every placeholder has a non-empty value, and nothing else was given but the
            // template's optional values.
            for p in &template.placeholders {
                prop_assert!(values.get(p).is_some_and(|v| !v.trim().is_empty()), "{p}");
            }
            prop_assert!(!sent.is_empty() || template.placeholders.is_empty());
        } else {
            for e in &errors {
                prop_assert!(e.field == "name" || e.field.starts_with("parameters."), "{e:?}");
            }
        }
    }
}
