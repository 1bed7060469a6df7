//! The fields of a settings or credentials form, how a connection is checked before it is
//! saved, and the checks of one field's value against its spec.

use crate::model::AuthMode;
use crate::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a setting or credential field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free single-line text.
    String,
    /// A secret single-line value (shown masked).
    Secret,
    /// A multi-line secret such as a PEM private key.
    SecretText,
    /// An absolute `http(s)` URL.
    Url,
    /// An absolute path starting with `/`.
    Path,
    /// A host name or address (no scheme).
    Host,
    /// A whole number, within `min` and `max` when they are set.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of `choices`.
    Enum,
    /// A list of strings (scopes).
    List,
    /// A map of string to string.
    Map,
}

/// One field of a settings or credentials form, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The key of the field in the settings or credentials object (`subdomain`, `api_key`).
    pub name: String,
    /// The name shown next to the input in forms and in error messages.
    pub label: String,
    /// What values the field takes, and how forms show it.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Required in every auth mode the field applies to.
    #[serde(default)]
    pub required: bool,
    /// Required only in these auth modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_for: Vec<AuthMode>,
    /// The auth modes the field applies to; empty means all of the application's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_modes: Vec<AuthMode>,
    /// The value used when none is given; `None`: none, so a required field must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub default: Option<Value>,
    /// The allowed values of an `enum` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The smallest value an `integer` field takes; `None`: no lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// The largest value an `integer` field takes; `None`: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Help text shown under the input; may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// An example shown greyed in the empty input; never used as a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

impl FieldSpec {
    pub(super) fn applies_to(&self, mode: AuthMode) -> bool {
        self.auth_modes.is_empty() || self.auth_modes.contains(&mode)
    }

    pub(super) fn is_required(&self, mode: AuthMode) -> bool {
        self.required || self.required_for.contains(&mode)
    }
}

/// How a connection is checked before it is saved (R9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifySpec {
    /// An HTTP request to the API base with the credential injected; a 2xx answer passes.
    Http {
        /// The HTTP method of the check request (`GET` unless told).
        #[serde(default = "default_method")]
        method: String,
        /// A fixed path, or
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// the name of the setting that holds the path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_setting: Option<String>,
        /// A good answer also has this JSON value at this pointer (RFC 6901), e.g. Slack's
        /// `/ok` = `true` (it answers 200 to a bad token).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_pointer: Option<String>,
        /// The value expected at `expect_pointer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        expect_value: Option<Value>,
        /// A JSON body to send (a GraphQL query such as `{"query": "{ viewer { id } }"}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// A PostgreSQL connection that runs `SELECT 1`.
    Postgres,
    /// A MySQL or MariaDB connection that runs `SELECT 1`.
    Mysql,
    /// An SSH handshake (the host key checked against the pinned fingerprint, or pinned) and a
    /// directory listing of the `path` setting over SFTP.
    Sftp,
    /// A Redis connection: `AUTH` (as the ACL user when a username is given), `SELECT` of the
    /// database, then `PING`.
    Redis,
}

fn default_method() -> String {
    "GET".into()
}

pub(super) fn check_range(field: &str, spec: &FieldSpec, n: i64) -> Result<(), CoreError> {
    if spec.min.is_some_and(|m| n < m) || spec.max.is_some_and(|m| n > m) {
        return Err(CoreError::invalid(
            field,
            format!(
                "`{}` must be between {} and {}",
                spec.name,
                spec.min.unwrap_or(i64::MIN),
                spec.max.unwrap_or(i64::MAX)
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_host(field: &str, v: &str) -> Result<(), CoreError> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && !v.contains("://")
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_with_hint(
            field,
            format!("`{v}` is not a host name or address"),
            "give the host alone (db.example.com or 10.0.0.5), without scheme, port or path",
        ))
    }
}

pub(super) fn check_value(field: &str, spec: &FieldSpec, v: &Value) -> Result<Value, CoreError> {
    let wrong = |what: &str| {
        Err(CoreError::invalid(
            field,
            format!("`{}` must be {what}", spec.name),
        ))
    };
    match spec.kind {
        FieldType::String | FieldType::Secret | FieldType::SecretText => match v {
            Value::String(s) if s.len() <= 4096 => Ok(v.clone()),
            Value::String(_) => wrong("at most 4096 characters"),
            _ => wrong("a string"),
        },
        FieldType::Url => match v.as_str().map(url::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(Value::String(
                    v.as_str()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string(),
                ))
            }
            _ => Err(CoreError::invalid_with_hint(
                field,
                format!("`{}` must be an absolute http or https URL", spec.name),
                "for example https://api.example.com/v1",
            )),
        },
        FieldType::Path => match v.as_str() {
            Some(s) if s.starts_with('/') && !s.contains("://") && s.len() <= 2048 => Ok(v.clone()),
            _ => wrong("a path starting with `/`"),
        },
        FieldType::Host => match v.as_str() {
            Some(s) => check_host(field, s).map(|()| v.clone()),
            None => wrong("a host name"),
        },
        FieldType::Integer => match v.as_i64() {
            Some(n) => check_range(field, spec, n).map(|()| v.clone()),
            None => wrong("a whole number"),
        },
        FieldType::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => wrong("true or false"),
        },
        FieldType::Enum => match v.as_str() {
            Some(s) if spec.choices.iter().any(|c| c == s) => Ok(v.clone()),
            _ => wrong(&format!("one of: {}", spec.choices.join(", "))),
        },
        FieldType::List => match v {
            Value::Array(items)
                if items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                }) =>
            {
                Ok(v.clone())
            }
            Value::String(s) => Ok(Value::Array(
                s.split_whitespace()
                    .map(|x| Value::String(x.into()))
                    .collect(),
            )),
            _ => wrong("a list of words (or one string of space-separated words)"),
        },
        FieldType::Map => match v {
            Value::Object(m) if m.values().all(Value::is_string) => Ok(v.clone()),
            _ => wrong("an object of strings"),
        },
    }
}
