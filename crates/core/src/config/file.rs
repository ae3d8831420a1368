//! file
use super::Config;
/// A config error.
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ConfigError;
/// Parses.
pub fn parse_config(_path: &str, _text: &str) -> Result<Config, ConfigError> { Err(ConfigError) }
