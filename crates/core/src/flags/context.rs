//! The context a flag is evaluated for: Unleash's context fields, and its JSON form.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::time::Timestamp;

/// Who and where a flag is evaluated for, with Unleash's fields.
///
/// An empty string counts as absent everywhere, as it does in Unleash's SDKs, so that
/// `"userId": ""` does not put every anonymous user into one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The signed-in user.
    pub user_id: Option<String>,
    /// The browser or device session.
    pub session_id: Option<String>,
    /// The client's IP address.
    pub remote_address: Option<String>,
    /// The environment the application runs in, e.g. `production`.
    pub environment: Option<String>,
    /// The application asking.
    pub app_name: Option<String>,
    /// The instant `DATE_AFTER` and `DATE_BEFORE` compare. Evaluation never reads a
    /// clock: a caller that wants "now" sets it (the CLI does when it is absent).
    pub current_time: Option<Timestamp>,
    /// Any other field, by name.
    pub properties: BTreeMap<String, String>,
}

impl Context {
    /// The value of a context field by its Unleash name (`userId`, `currentTime`, ...)
    /// or, for any other name, the property of that name. A standard field that is
    /// absent is also looked up among the properties, as Unleash's SDKs do.
    pub fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.lookup(Standard::of(name), name)
    }

    /// The value of a field whose name was read once, with the flag: what
    /// [`Context::field`] gives, without matching the standard names again.
    pub fn value(&self, field: &FieldName) -> Option<Cow<'_, str>> {
        self.lookup(field.standard, &field.name)
    }

    fn lookup(&self, standard: Option<Standard>, name: &str) -> Option<Cow<'_, str>> {
        let standard = standard.and_then(|standard| match standard {
            Standard::UserId => self.user_id.as_deref().map(Cow::Borrowed),
            Standard::SessionId => self.session_id.as_deref().map(Cow::Borrowed),
            Standard::RemoteAddress => self.remote_address.as_deref().map(Cow::Borrowed),
            Standard::Environment => self.environment.as_deref().map(Cow::Borrowed),
            Standard::AppName => self.app_name.as_deref().map(Cow::Borrowed),
            Standard::CurrentTime => self.current_time.map(|t| Cow::Owned(t.to_rfc3339())),
        });
        standard.filter(|value| !value.is_empty()).or_else(|| {
            self.properties
                .get(name)
                .filter(|value| !value.is_empty())
                .map(|value| Cow::Borrowed(value.as_str()))
        })
    }

    /// Reads a context in Unleash's JSON form, e.g.
    /// `{"userId": "42", "environment": "production", "properties": {"plan": "pro"}}`.
    ///
    /// Fields are strings; numbers and booleans are taken as their text, and `null`
    /// as absent. `currentTime` is an RFC 3339 instant. Any other field belongs under
    /// `properties`, and a top-level field Unleash does not define is refused so that
    /// a misspelt `userID` is not silently ignored.
    ///
    /// # Errors
    ///
    /// A [`ContextError`] naming the field at fault.
    pub fn from_json(value: &Value) -> Result<Context, ContextError> {
        let Value::Object(object) = value else {
            return Err(ContextError::NotAnObject {
                found: describe(value),
            });
        };
        let mut context = Context::default();
        for (key, value) in object {
            if key == "properties" {
                context.properties = properties(value)?;
                continue;
            }
            let slot = match key.as_str() {
                "userId" => &mut context.user_id,
                "sessionId" => &mut context.session_id,
                "remoteAddress" => &mut context.remote_address,
                "environment" => &mut context.environment,
                "appName" => &mut context.app_name,
                "currentTime" => {
                    context.current_time = match scalar(key, value)? {
                        None => None,
                        Some(text) => Some(Timestamp::parse_rfc3339(&text).map_err(|error| {
                            ContextError::BadTime {
                                reason: error.to_string(),
                            }
                        })?),
                    };
                    continue;
                }
                _ => {
                    return Err(ContextError::UnknownField { field: key.clone() });
                }
            };
            *slot = scalar(key, value)?;
        }
        Ok(context)
    }

    /// Parses JSON text, then reads it as [`Context::from_json`] does.
    ///
    /// # Errors
    ///
    /// [`ContextError::NotJson`] for text that is not JSON, or what
    /// [`Context::from_json`] returns.
    pub fn parse_json(text: &str) -> Result<Context, ContextError> {
        let value: Value = serde_json::from_str(text).map_err(|error| ContextError::NotJson {
            reason: error.to_string(),
        })?;
        Context::from_json(&value)
    }
}

/// The name of a context field, as a constraint or a variant override names it: the
/// name as written, with Unleash's standard fields told apart once, when the flag is
/// read, rather than on every evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldName {
    name: String,
    standard: Option<Standard>,
}

impl FieldName {
    /// The field called `name`: a standard one (`userId`, `currentTime`, ...) or a
    /// property.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            standard: Standard::of(&name),
            name,
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether this is `currentTime`, the one field that is not text.
    pub(super) fn is_current_time(&self) -> bool {
        self.standard == Some(Standard::CurrentTime)
    }
}

impl From<&str> for FieldName {
    fn from(name: &str) -> Self {
        FieldName::new(name)
    }
}

impl From<String> for FieldName {
    fn from(name: String) -> Self {
        FieldName::new(name)
    }
}

impl std::fmt::Display for FieldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The fields Unleash defines outside `properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standard {
    UserId,
    SessionId,
    RemoteAddress,
    Environment,
    AppName,
    CurrentTime,
}

impl Standard {
    fn of(name: &str) -> Option<Self> {
        match name {
            "userId" => Some(Standard::UserId),
            "sessionId" => Some(Standard::SessionId),
            "remoteAddress" => Some(Standard::RemoteAddress),
            "environment" => Some(Standard::Environment),
            "appName" => Some(Standard::AppName),
            "currentTime" => Some(Standard::CurrentTime),
            _ => None,
        }
    }
}

/// Why a context could not be read. Each message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The text is not JSON.
    #[error("the context is not valid JSON ({reason}): write e.g. {{\"userId\": \"42\"}}")]
    NotJson {
        /// The parser's message, with its line and column.
        reason: String,
    },
    /// The JSON is not an object.
    #[error("the context must be a JSON object such as {{\"userId\": \"42\"}}, not {found}")]
    NotAnObject {
        /// What was found instead.
        found: String,
    },
    /// A field is neither a string, a number, a boolean nor null.
    #[error("context field {field:?} must be a string, not {found}")]
    NotAString {
        /// The field, e.g. `userId` or `properties.plan`.
        field: String,
        /// What was found instead.
        found: String,
    },
    /// `properties` is not an object.
    #[error("context field \"properties\" must be an object of strings, not {found}")]
    PropertiesNotAnObject {
        /// What was found instead.
        found: String,
    },
    /// `currentTime` is not an RFC 3339 instant.
    #[error("context field \"currentTime\": {reason}")]
    BadTime {
        /// Why it could not be read.
        reason: String,
    },
    /// A top-level field Unleash does not define.
    #[error(
        "unknown context field {field:?}: the fields are userId, sessionId, remoteAddress, environment, appName, currentTime and properties; put custom fields under \"properties\""
    )]
    UnknownField {
        /// The field as written.
        field: String,
    },
}

fn properties(value: &Value) -> Result<BTreeMap<String, String>, ContextError> {
    match value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(object) => {
            let mut properties = BTreeMap::new();
            for (name, value) in object {
                if let Some(text) = scalar(&format!("properties.{name}"), value)? {
                    properties.insert(name.clone(), text);
                }
            }
            Ok(properties)
        }
        other => Err(ContextError::PropertiesNotAnObject {
            found: describe(other),
        }),
    }
}

/// A field's value as text: strings as they are, numbers and booleans as written,
/// `null` as absent.
fn scalar(field: &str, value: &Value) -> Result<Option<String>, ContextError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        other => Err(ContextError::NotAString {
            field: field.to_string(),
            found: describe(other),
        }),
    }
}

/// "an array", "an object", ... for messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_is_read() {
        let context = Context::from_json(&json!({
            "userId": "123",
            "sessionId": "asd123",
            "remoteAddress": "127.0.0.1",
            "environment": "prod",
            "appName": "web",
            "currentTime": "2022-01-29T13:00:00.000+02:00",
            "properties": {"plan": "pro", "seats": 12, "beta": true, "gone": null}
        }))
        .unwrap();
        assert_eq!(context.field("userId").as_deref(), Some("123"));
        assert_eq!(context.field("sessionId").as_deref(), Some("asd123"));
        assert_eq!(context.field("remoteAddress").as_deref(), Some("127.0.0.1"));
        assert_eq!(context.field("environment").as_deref(), Some("prod"));
        assert_eq!(context.field("appName").as_deref(), Some("web"));
        assert_eq!(
            context.field("currentTime").as_deref(),
            Some("2022-01-29T11:00:00Z")
        );
        assert_eq!(context.field("plan").as_deref(), Some("pro"));
        assert_eq!(context.field("seats").as_deref(), Some("12"));
        assert_eq!(context.field("beta").as_deref(), Some("true"));
        assert_eq!(context.field("gone"), None);
        assert_eq!(context.field("missing"), None);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let context = Context::from_json(&json!({
            "userId": "",
            "properties": {"userId": "from-properties", "blank": ""}
        }))
        .unwrap();
        assert_eq!(context.field("userId").as_deref(), Some("from-properties"));
        assert_eq!(context.field("blank"), None);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (
                r#"{"userId": ["a"]}"#,
                "\"userId\" must be a string, not an array",
            ),
            (
                r#"{"properties": {"plan": {"tier": 1}}}"#,
                "\"properties.plan\" must be a string, not an object",
            ),
            (
                r#"{"properties": "pro"}"#,
                "\"properties\" must be an object",
            ),
            (r#"{"currentTime": "yesterday"}"#, "\"currentTime\""),
            (r#"{"userID": "42"}"#, "unknown context field \"userID\""),
        ];
        for (text, expected) in cases {
            let error = Context::parse_json(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
