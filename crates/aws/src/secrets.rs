//! Secret settings (the webhook secret, the Discord keys and token): read from an SSM
//! Parameter Store parameter named by `<NAME>_PARAM`, or taken from `<NAME>` itself.
//!
//! The SSM form is the one for AWS: the environment holds only the parameter's name,
//! and the value is fetched once per process (once per Lambda container) and kept in
//! memory. The plain form is for local runs. Either way the value is wrapped in
//! [`Secret`], which never prints itself, so it cannot end up in a log line or an
//! error message by accident.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use ripcord_core::ports::PortError;
use tokio::sync::OnceCell;

use crate::errors::port_error;

/// A secret value. It prints as `[redacted]`, compares in constant time, and gives its
/// value only through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call it only where the value is used (to key an HMAC, to
    /// authenticate a request), never to log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

/// Compares two byte strings in a time that depends only on the longer one's length,
/// never on where they first differ, so that timing reveals nothing of a secret's
/// content.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= x ^ y;
    }
    // Keeps the optimiser from turning the loop into an early exit.
    std::hint::black_box(difference) == 0
}

/// How the environment is read: the process environment, or a table in tests.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Resolves secret settings by name, from SSM Parameter Store or the environment.
///
/// Build one per process (in a Lambda function, before the handler loop) and share it:
/// clones share the cache, so each parameter is fetched from SSM once.
#[derive(Clone)]
pub struct Secrets {
    ssm: Client,
    env: Arc<Lookup>,
    cache: Arc<Mutex<HashMap<String, Arc<OnceCell<Secret>>>>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Secrets")
            .field("cached_parameters", &cached)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Resolves settings from the process environment and this SSM client.
    pub fn new(ssm: Client) -> Self {
        Self::with_env(ssm, |name| std::env::var(name).ok())
    }

    /// Resolves settings from `env` (which returns a variable's value, if set) and
    /// this SSM client. Tests use it to give settings without touching the process
    /// environment.
    pub fn with_env(
        ssm: Client,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            ssm,
            env: Arc::new(env),
            cache: Arc::default(),
        }
    }

    /// The value of setting `name`: from the SSM parameter named by `<name>_PARAM` when
    /// that is set, else from `<name>`. An empty variable counts as unset.
    pub async fn resolve(&self, name: &str) -> Result<Secret, PortError> {
        let param_var = format!("{name}_PARAM");
        let set = |var: &str| (self.env)(var).filter(|v| !v.is_empty());
        if let Some(parameter) = set(&param_var) {
            return self.parameter(&param_var, &parameter).await;
        }
        if let Some(value) = set(name) {
            return Ok(Secret(value));
        }
        Err(PortError::permanent(format!(
            "{name} is not set: set {param_var} to the name of the SSM SecureString parameter that holds it, or (for local runs) set {name} to the value itself"
        )))
    }

    /// The parameter's value, fetched at most once per process.
    async fn parameter(&self, param_var: &str, parameter: &str) -> Result<Secret, PortError> {
        let cell = {
            // A poisoned lock only means another thread panicked while inserting; the
            // map itself is still consistent.
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entry(parameter.to_string()).or_default().clone()
        };
        // Concurrent first reads of one parameter wait for a single fetch; a failed
        // fetch is not cached, so the next call tries again.
        cell.get_or_try_init(|| self.fetch(param_var, parameter))
            .await
            .cloned()
    }

    async fn fetch(&self, param_var: &str, parameter: &str) -> Result<Secret, PortError> {
        let out = self
            .ssm
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                port_error(
                    &format!("GetParameter for SSM parameter {parameter} (named by {param_var})"),
                    &e,
                )
            })?;
        let found = out.parameter();
        let value = found.and_then(|p| p.value()).ok_or_else(|| {
            PortError::permanent(format!(
                "SSM parameter {parameter} (named by {param_var}) has no value"
            ))
        })?;
        if found.and_then(|p| p.r#type()) != Some(&ParameterType::SecureString) {
            tracing::warn!(
                parameter,
                "SSM parameter holding a secret is not a SecureString; store it as a SecureString so that it is encrypted at rest"
            );
        }
        tracing::debug!(parameter, "read secret setting from SSM");
        Ok(Secret(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        let table: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"ab", b"abc", false),
            (b"", b"\0", false),
            (b"\0", b"", false),
        ];
        for (a, b, equal) in table {
            assert_eq!(constant_time_eq(a, b), *equal, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(secret, Secret::new("hunter2"));
        assert_ne!(secret, Secret::new("hunter3"));
    }
}
