//! Message templates (Meta, and Kapso's proxy of Meta): what a WhatsApp Business Account has
//! approved, read from `GET /{waba}/message_templates`, and the values a send must give. A
//! template's placeholders are named `component.name`: `header.1`, `body.1`, `body.customer_name`
//! (named parameters), `header.image` (a media header's link, or the id of media uploaded to
//! WhatsApp), `header.latitude` and `header.longitude` (with `header.location_name` and
//! `header.location_address` if wanted) for a location header, `button.0` (the variable part of
//! the first button's URL), `coupon.2` (the code a third, copy-code button copies). A send is
//! checked against the template before anything goes out, so a missing or malformed value is an
//! error naming it, not a rejected message later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::FieldError;

/// An approved (or pending, rejected...) template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    /// Meta's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`...
    pub status: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    #[serde(default)]
    pub category: Option<String>,
    /// The header: its format (`TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`) and text.
    #[serde(default)]
    pub header: Option<TemplateHeader>,
    /// The body text with its `{{1}}` or `{{name}}` placeholders.
    pub body: String,
    /// The footer text.
    #[serde(default)]
    pub footer: Option<String>,
    /// Buttons, in order.
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
    /// The values a send must give, in order (`body.1`, `button.0`...).
    pub placeholders: Vec<String>,
}

/// A template's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateHeader {
    /// `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT` or `LOCATION`.
    pub format: String,
    /// The text of a `TEXT` header.
    #[serde(default)]
    pub text: Option<String>,
}

/// A template's button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateButton {
    /// `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`...
    pub kind: String,
    /// Its label.
    pub text: String,
    /// The URL of a `URL` button, maybe ending in `{{1}}`.
    #[serde(default)]
    pub url: Option<String>,
}

/// The `{{...}}` placeholders of `text`, in order of first appearance.
fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let name = after[..end].trim().to_string();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        rest = &after[end + 2..];
    }
    found
}

impl Template {
    /// A template as the Graph API lists it; `None` for an object without a name or language.
    pub fn from_graph(item: &Value) -> Option<Self> {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let name = text(item, "name")?;
        let language = text(item, "language")?;
        let mut header = None;
        let mut body = String::new();
        let mut footer = None;
        let mut buttons = Vec::new();
        for component in item
            .get("components")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match text(component, "type")
                .unwrap_or_default()
                .to_uppercase()
                .as_str()
            {
                "HEADER" => {
                    header = Some(TemplateHeader {
                        format: text(component, "format")
                            .unwrap_or_else(|| "TEXT".into())
                            .to_uppercase(),
                        text: text(component, "text"),
                    })
                }
                "BODY" => body = text(component, "text").unwrap_or_default(),
                "FOOTER" => footer = text(component, "text"),
                "BUTTONS" => {
                    for button in component
                        .get("buttons")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    {
                        buttons.push(TemplateButton {
                            kind: text(button, "type").unwrap_or_default().to_uppercase(),
                            text: text(button, "text").unwrap_or_default(),
                            url: text(button, "url"),
                        });
                    }
                }
                _ => {}
            }
        }
        let mut template = Self {
            id: text(item, "id"),
            name,
            language,
            status: text(item, "status").unwrap_or_default().to_uppercase(),
            category: text(item, "category"),
            header,
            body,
            footer,
            buttons,
            placeholders: Vec::new(),
        };
        template.placeholders = template.required();
        Some(template)
    }

    fn required(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(header) = &self.header {
            match header.format.as_str() {
                "TEXT" => out.extend(
                    variables(header.text.as_deref().unwrap_or_default())
                        .into_iter()
                        .map(|v| format!("header.{v}")),
                ),
                "IMAGE" | "VIDEO" | "DOCUMENT" => {
                    out.push(format!("header.{}", header.format.to_lowercase()))
                }
                "LOCATION" => out.extend(["header.latitude".into(), "header.longitude".into()]),
                _ => {}
            }
        }
        out.extend(
            variables(&self.body)
                .into_iter()
                .map(|v| format!("body.{v}")),
        );
        for (i, button) in self.buttons.iter().enumerate() {
            if button.kind == "URL" && button.url.as_deref().is_some_and(|u| u.contains("{{")) {
                out.push(format!("button.{i}"));
            }
            // Meta requires the code a copy-code button copies with every send.
            if button.kind == "COPY_CODE" {
                out.push(format!("coupon.{i}"));
            }
        }
        out
    }

    /// Values a send may give but need not: a location header's name and address.
    fn optional(&self) -> Vec<String> {
        match self.header.as_ref().map(|h| h.format.as_str()) {
            Some("LOCATION") => vec![
                "header.location_name".into(),
                "header.location_address".into(),
            ],
            _ => Vec::new(),
        }
    }

    /// Every problem with sending this template with `values`: a placeholder without a value
    /// (or an empty one), a value for no placeholder, a template not approved. Fields are
    /// named `parameters.<placeholder>`.
    pub fn check(&self, values: &BTreeMap<String, String>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.status != "APPROVED" {
            errors.push(FieldError::new(
                "name",
                format!(
                    "template `{}` ({}) is {}, not approved",
                    self.name,
                    self.language,
                    self.status.to_lowercase()
                ),
            ));
        }
        for placeholder in &self.placeholders {
            match values.get(placeholder) {
                None => errors.push(FieldError::new(
                    format!("parameters.{placeholder}"),
                    format!("is required by template `{}`", self.name),
                )),
                Some(v) if v.trim().is_empty() => errors.push(FieldError::new(
                    format!("parameters.{placeholder}"),
                    "must not be empty",
                )),
                // WhatsApp refuses parameters with new lines, tabs or more than four spaces in
                // a row.
                Some(v)
                    if !placeholder.starts_with("header.")
                        && (v.contains(['\n', '\t']) || v.contains("     ")) =>
                {
                    errors.push(FieldError::new(
                        format!("parameters.{placeholder}"),
                        "must not contain new lines, tabs or more than four spaces in a row",
                    ))
                }
                Some(v) => {
                    if let Some(problem) = malformed(placeholder, v.trim()) {
                        errors.push(FieldError::new(
                            format!("parameters.{placeholder}"),
                            problem,
                        ));
                    }
                }
            }
        }
        let optional = self.optional();
        for given in values.keys() {
            if !self.placeholders.contains(given) && !optional.contains(given) {
                errors.push(FieldError::new(
                    format!("parameters.{given}"),
                    format!(
                        "template `{}` has no such parameter (it takes: {})",
                        self.name,
                        if self.placeholders.is_empty() {
                            "none".to_string()
                        } else {
                            self.placeholders.join(", ")
                        }
                    ),
                ));
            }
        }
        errors
    }
}

/// What is wrong with `value` for `placeholder`, for values with a form of their own.
fn malformed(placeholder: &str, value: &str) -> Option<String> {
    match placeholder {
        "header.image" | "header.video" | "header.document" => {
            let link = value.starts_with("https://") || value.starts_with("http://");
            let link = link && reqwest::Url::parse(value).is_ok_and(|u| u.host_str().is_some());
            let media_id = value.chars().all(|c| c.is_ascii_digit());
            (!link && !media_id).then(|| {
                "must be a link (https://...) to the file, or the id of media uploaded to WhatsApp"
                    .to_string()
            })
        }
        "header.latitude" | "header.longitude" => {
            let limit = if placeholder.ends_with("latitude") {
                90.0
            } else {
                180.0
            };
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v.abs() <= limit => None,
                _ => Some(format!("must be a number from -{limit} to {limit}")),
            }
        }
        p if p.starts_with("coupon.") => (value.chars().count() > MAX_COUPON_CHARS)
            .then(|| format!("must be at most {MAX_COUPON_CHARS} characters")),
        _ => None,
    }
}

/// The longest code a copy-code button takes.
const MAX_COUPON_CHARS: usize = 15;

/// The `components` of a Cloud API template send for `values` (see the module's naming).
/// Positional body values go in number order; named ones carry their `parameter_name`.
pub fn components(values: &BTreeMap<String, String>) -> Vec<Value> {
    let mut header = Vec::new();
    let mut body: Vec<(&str, &str)> = Vec::new();
    let mut buttons: Vec<(u32, Value)> = Vec::new();
    let mut location = serde_json::Map::new();
    for (key, value) in values {
        let Some((component, name)) = key.split_once('.') else {
            continue;
        };
        match component {
            "header" => match name {
                "image" | "video" | "document" => {
                    // Digits alone are the id of media uploaded to WhatsApp.
                    let media = if value.chars().all(|c| c.is_ascii_digit()) {
                        json!({"id": value})
                    } else {
                        json!({"link": value})
                    };
                    header.push(json!({"type": name, name: media}));
                }
                "latitude" | "longitude" => {
                    let number = value
                        .trim()
                        .parse::<f64>()
                        .map_or(json!(value), |n| json!(n));
                    location.insert(name.to_string(), number);
                }
                "location_name" => {
                    location.insert("name".into(), json!(value));
                }
                "location_address" => {
                    location.insert("address".into(), json!(value));
                }
                n if n.parse::<u32>().is_ok() => {
                    header.push(json!({"type": "text", "text": value}))
                }
                n => header.push(json!({"type": "text", "parameter_name": n, "text": value})),
            },
            "body" => body.push((name, value)),
            "button" => {
                if let Ok(index) = name.parse::<u32>() {
                    buttons.push((
                        index,
                        json!({
                            "type": "button", "sub_type": "url", "index": index.to_string(),
                            "parameters": [{"type": "text", "text": value}]
                        }),
                    ));
                }
            }
            "coupon" => {
                if let Ok(index) = name.parse::<u32>() {
                    buttons.push((
                        index,
                        json!({
                            "type": "button", "sub_type": "copy_code", "index": index.to_string(),
                            "parameters": [{"type": "coupon_code", "coupon_code": value}]
                        }),
                    ));
                }
            }
            _ => {}
        }
    }
    if !location.is_empty() {
        header.push(json!({"type": "location", "location": location}));
    }
    // "10" after "9": numbers by value, names after them by name.
    body.sort_by_key(|(name, _)| (name.parse::<u32>().unwrap_or(u32::MAX), name.to_string()));
    let mut out = Vec::new();
    if !header.is_empty() {
        out.push(json!({"type": "header", "parameters": header}));
    }
    if !body.is_empty() {
        let parameters: Vec<Value> = body
            .iter()
            .map(|(name, value)| match name.parse::<u32>() {
                Ok(_) => json!({"type": "text", "text": value}),
                Err(_) => json!({"type": "text", "parameter_name": name, "text": value}),
            })
            .collect();
        out.push(json!({"type": "body", "parameters": parameters}));
    }
    buttons.sort_by_key(|(index, _)| *index);
    out.extend(buttons.into_iter().map(|(_, button)| button));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Vec<Template> {
        let page: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/meta/templates.list.response.json"
        ))
        .unwrap();
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Template::from_graph)
            .collect()
    }

    #[test]
    fn placeholders_come_from_the_header_body_and_url_buttons() {
        let templates = listed();
        let named = &templates[0];
        assert_eq!(named.name, "reservation_confirmation");
        assert_eq!(
            named.placeholders,
            [
                "header.image",
                "body.number_of_guests",
                "body.day",
                "body.date",
                "body.time"
            ]
        );
        let positional = &templates[1];
        assert_eq!(
            positional.placeholders,
            ["header.1", "body.1", "body.2", "button.0"]
        );
        assert_eq!(positional.buttons[1].kind, "QUICK_REPLY");
    }

    #[test]
    fn a_send_is_checked_against_its_template() {
        let template = &listed()[1];
        let values = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let full = values(&[
            ("header.1", "Pablo"),
            ("body.1", "SUMMER20"),
            ("body.2", "10"),
            ("button.0", "summer2023"),
        ]);
        assert!(template.check(&full).is_empty());
        let errors = template.check(&values(&[
            ("header.1", "Pablo"),
            ("body.1", "SUMMER20\nnext line"),
            ("button.0", "summer2023"),
            ("body.3", "extra"),
        ]));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "parameters.body.1",
                "parameters.body.2",
                "parameters.body.3"
            ]
        );
        assert!(errors[1].message.contains("required"), "{errors:?}");
        let mut paused = template.clone();
        paused.status = "PAUSED".into();
        assert_eq!(paused.check(&full)[0].field, "name");
    }

    #[test]
    fn components_follow_the_cloud_api() {
        let values: BTreeMap<String, String> = [
            ("header.1", "Pablo"),
            ("body.2", "10"),
            ("body.10", "ten"),
            ("body.1", "SUMMER20"),
            ("button.0", "summer2023"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            components(&values),
            vec![
                json!({"type": "header", "parameters": [{"type": "text", "text": "Pablo"}]}),
                json!({"type": "body", "parameters": [
                    {"type": "text", "text": "SUMMER20"},
                    {"type": "text", "text": "10"},
                    {"type": "text", "text": "ten"}
                ]}),
                json!({"type": "button", "sub_type": "url", "index": "0",
                       "parameters": [{"type": "text", "text": "summer2023"}]}),
            ]
        );
        let named: BTreeMap<String, String> = [
            ("header.image", "https://example.com/table.jpg"),
            ("body.first_name", "Jessica"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            components(&named),
            vec![
                json!({"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/table.jpg"}}]}),
                json!({"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Jessica"}]}),
            ]
        );
    }

    /// A template as Meta lists it, with `components`.
    fn template(components: Value) -> Template {
        Template::from_graph(&json!({
            "name": "offer", "language": "en_US", "status": "APPROVED", "components": components
        }))
        .unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Defect: a copy-code button was sent without the code, which Meta requires.
    #[test]
    fn a_copy_code_button_takes_its_code() {
        let offer = template(json!([
            {"type": "BODY", "text": "Your code for 20% off"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "No thanks"},
                {"type": "COPY_CODE", "example": ["SAVE20"]}
            ]}
        ]));
        assert_eq!(offer.placeholders, ["coupon.1"]);
        let missing = offer.check(&values(&[]));
        assert_eq!(missing[0].field, "parameters.coupon.1");
        let long = offer.check(&values(&[("coupon.1", "A-VERY-LONG-COUPON-CODE")]));
        assert_eq!(long[0].field, "parameters.coupon.1");
        let send = values(&[("coupon.1", "SAVE20")]);
        assert!(offer.check(&send).is_empty());
        assert_eq!(
            components(&send),
            vec![
                json!({"type": "button", "sub_type": "copy_code", "index": "1",
                        "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}]})
            ]
        );
    }

    /// Defect: a location header was sent without its parameters.
    #[test]
    fn a_location_header_takes_its_place() {
        let visit = template(json!([
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "See you at the shop"}
        ]));
        assert_eq!(visit.placeholders, ["header.latitude", "header.longitude"]);
        let far = visit.check(&values(&[
            ("header.latitude", "91"),
            ("header.longitude", "x"),
        ]));
        let fields: Vec<&str> = far.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["parameters.header.latitude", "parameters.header.longitude"]
        );
        let send = values(&[
            ("header.latitude", "41.1496"),
            ("header.longitude", "-8.6109"),
            ("header.location_name", "Casa Nube"),
        ]);
        assert!(visit.check(&send).is_empty(), "{:?}", visit.check(&send));
        assert_eq!(
            components(&send),
            vec![
                json!({"type": "header", "parameters": [{"type": "location", "location": {
                    "latitude": 41.1496, "longitude": -8.6109, "name": "Casa Nube"
                }}]})
            ]
        );
    }

    /// Defect: a media header's value was not checked ("not a url" was sent as a link), and a
    /// media id was not accepted in place of a link.
    #[test]
    fn a_media_header_takes_a_link_or_a_media_id() {
        let menu = template(json!([
            {"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Our new menu"}
        ]));
        for bad in [
            "not a url",
            "ftp://example.com/menu.pdf",
            "https://",
            "12ab",
        ] {
            let errors = menu.check(&values(&[("header.document", bad)]));
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].field, "parameters.header.document");
        }
        for good in ["https://example.com/menu.pdf", "1234567890123456"] {
            assert!(
                menu.check(&values(&[("header.document", good)])).is_empty(),
                "{good}"
            );
        }
        assert_eq!(
            components(&values(&[("header.document", "1234567890123456")])),
            vec![json!({"type": "header", "parameters": [
                {"type": "document", "document": {"id": "1234567890123456"}}
            ]})]
        );
    }
}
