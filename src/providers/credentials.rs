//! A channel's secrets as the channel layer holds them: a JSON object whose fields each provider
//! defines, validates and reads into its own typed struct ([`Credentials::read`]). The channel
//! layer seals and unseals the object without knowing what is in it; `Debug` names the fields and
//! never shows a value.

use std::fmt;

use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ProviderError;
use crate::domain::FieldError;

/// Secrets of one channel, opaque outside its provider.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials(Map<String, Value>);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("fields", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One field of a provider's credentials, as [`Credentials::accept`] checks it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its name in the API and in storage.
    pub name: &'static str,
    /// What happens when a new channel does not give it.
    pub when_missing: Missing,
}

/// What a missing field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The caller must give it.
    Required,
    /// Palaver generates a random secret.
    Generated,
    /// Left out, the capability that needs it is unavailable.
    Optional,
}

impl Field {
    /// A field the caller must give.
    pub const fn required(name: &'static str) -> Self {
        Self {
            name,
            when_missing: Missing::Required,
        }
    }

    /// A field that may be left out.
    pub const fn optional(name: &'static str) -> Self {
        Self {
            name,
            when_missing: Missing::Optional,
        }
    }

    /// A secret generated when the caller does not give one.
    pub const fn generated(name: &'static str) -> Self {
        Self {
            name,
            when_missing: Missing::Generated,
        }
    }
}

impl Credentials {
    /// Credentials from pairs of field and value (tests, benchmarks, unattended set-up).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    }

    /// Credentials as given by an API caller: a JSON object, else a field error.
    pub fn from_json(value: Value) -> Result<Self, Vec<FieldError>> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(vec![FieldError::new("credentials", "must be an object")]),
        }
    }

    /// The stored form, to be sealed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    /// Reads the stored form back. Earlier releases stored a `provider` tag beside the fields;
    /// it is dropped.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut map: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
        map.remove("provider");
        Some(Self(map))
    }

    /// A field's text, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// Sets a field.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0
            .insert(name.to_string(), Value::String(value.to_string()));
    }

    /// The provider's typed view of these credentials. A stored object that does not fit is
    /// the channel's problem (`Auth`): it needs new credentials.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_value(Value::Object(self.0.clone()))
            .map_err(|e| ProviderError::Auth(format!("stored credentials are unusable: {e}")))
    }

    /// Checks credentials given for a new channel (`previous` is `None`) or for an update of a
    /// stored one, against the provider's `fields`: every value is non-empty text, unknown
    /// fields are refused, a field an update leaves out keeps its stored value, a field a new
    /// channel leaves out is required or generated. Returns what to store.
    pub fn accept(
        given: Credentials,
        previous: Option<&Credentials>,
        fields: &[Field],
        provider: &str,
    ) -> Result<Credentials, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (name, value) in &given.0 {
            let path = format!("credentials.{name}");
            if !fields.iter().any(|f| f.name == name) {
                errors.push(FieldError::new(
                    path,
                    format!("is not used by {provider} channels"),
                ));
                continue;
            }
            match value.as_str() {
                Some(text) if !text.trim().is_empty() => {}
                Some(_) => errors.push(FieldError::new(path, "must not be empty")),
                None => errors.push(FieldError::new(path, "must be a string")),
            }
        }
        let mut accepted = previous.cloned().unwrap_or_default();
        for field in fields {
            match given.get(field.name) {
                Some(value) => accepted.set(field.name, value.trim()),
                None if accepted.get(field.name).is_some_and(|v| !v.is_empty()) => {}
                None => match field.when_missing {
                    Missing::Required => errors.push(FieldError::new(
                        format!("credentials.{}", field.name),
                        "is required",
                    )),
                    Missing::Optional => {}
                    Missing::Generated => {
                        accepted.set(field.name, crate::crypto::generate_api_key().as_str())
                    }
                },
            }
        }
        accepted.0.retain(|k, _| fields.iter().any(|f| f.name == k));
        if errors.is_empty() {
            Ok(accepted)
        } else {
            Err(errors)
        }
    }
}

/// A secret from a typed credentials struct, refused when empty (an empty secret would make
/// every empty header or signature match).
pub fn non_empty<'a>(
    secret: &'a secrecy::SecretString,
    what: &str,
) -> Result<&'a secrecy::SecretString, ProviderError> {
    if secret.expose_secret().trim().is_empty() {
        Err(ProviderError::Auth(format!(
            "the channel's {what} is empty"
        )))
    } else {
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::required("server_url"),
        Field::required("api_key"),
        Field::generated("webhook_secret"),
    ];

    fn errors(result: Result<Credentials, Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn accept_checks_new_and_updated_credentials() {
        let stored = Credentials::from_pairs([
            ("server_url", "https://evo.example"),
            ("api_key", "k1"),
            ("webhook_secret", "s1"),
        ]);
        // (given, previous, expected errors, expected webhook_secret)
        type Case<'a> = (
            Credentials,
            Option<&'a Credentials>,
            Vec<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            // An update without the secret keeps it (an empty one would authenticate empty headers).
            (
                Credentials::from_pairs([("api_key", "k2")]),
                Some(&stored),
                vec![],
                Some("s1"),
            ),
            // An empty secret is refused, on update and on create.
            (
                Credentials::from_pairs([("webhook_secret", "")]),
                Some(&stored),
                vec!["credentials.webhook_secret: must not be empty"],
                None,
            ),
            (
                Credentials::from_pairs([
                    ("server_url", "https://e"),
                    ("api_key", "k"),
                    ("webhook_secret", "  "),
                ]),
                None,
                vec!["credentials.webhook_secret: must not be empty"],
                None,
            ),
            // Missing required fields on create; a stray field.
            (
                Credentials::from_pairs([("access_token", "t")]),
                None,
                vec![
                    "credentials.access_token: is not used by evolution channels",
                    "credentials.server_url: is required",
                    "credentials.api_key: is required",
                ],
                None,
            ),
        ];
        for (given, previous, expected, secret) in cases {
            let result = Credentials::accept(given.clone(), previous, FIELDS, "evolution");
            let accepted = result.clone().ok();
            assert_eq!(errors(result), expected, "{given:?}");
            if let Some(secret) = secret {
                assert_eq!(accepted.unwrap().get("webhook_secret"), Some(secret));
            }
        }
        // A new channel without a secret gets a generated one.
        let created = Credentials::accept(
            Credentials::from_pairs([("server_url", "https://e"), ("api_key", "k")]),
            None,
            FIELDS,
            "evolution",
        )
        .unwrap();
        assert!(created.get("webhook_secret").is_some_and(|s| s.len() >= 20));
        let non_string = Credentials::from_json(serde_json::json!({"api_key": 5})).unwrap();
        assert_eq!(
            errors(Credentials::accept(
                non_string,
                Some(&stored),
                FIELDS,
                "evolution"
            )),
            vec!["credentials.api_key: must be a string"]
        );
    }

    #[test]
    fn stored_form_round_trips_and_reads_the_old_tagged_form() {
        let old = br#"{"provider":"meta","access_token":"t","app_secret":"a","verify_token":"v"}"#;
        let c = Credentials::from_bytes(old).unwrap();
        assert_eq!(c.get("provider"), None);
        assert_eq!(c.get("app_secret"), Some("a"));
        assert_eq!(Credentials::from_bytes(&c.to_bytes()), Some(c.clone()));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("app_secret") && !shown.contains("\"a\""),
            "{shown}"
        );
    }
}
