//! Checking that a request comes from Discord: an Ed25519 signature over the timestamp
//! and the body (serenity's `Verifier`), and a timestamp no more than five minutes off,
//! which serenity does not check, so that a captured request cannot be replayed later.

use std::time::Duration;

use http::HeaderMap;
use ripcord_core::time::Timestamp;
use serenity::interactions_endpoint::Verifier;

/// How far the request's timestamp may be from now, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// The header holding the hex signature.
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// The header holding the Unix timestamp (seconds) that was signed with the body.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// The application's public key, ready to check requests.
#[derive(Clone)]
pub struct RequestVerifier {
    verifier: Verifier,
}

/// The public key is not 64 hex digits of a valid Ed25519 key.
#[derive(Debug, thiserror::Error)]
#[error(
    "RIPCORD_DISCORD_PUBLIC_KEY is not an Ed25519 public key: copy the 64 hex digits of \"Public Key\" from the application's General Information page"
)]
pub struct InvalidPublicKey;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// A header is missing or not text.
    #[error("the request has no {0} header; only Discord may call this endpoint")]
    MissingHeader(&'static str),
    /// The signature does not match the body and timestamp.
    #[error("the request's Ed25519 signature does not match its body and timestamp")]
    BadSignature,
    /// The timestamp is not a number of seconds, or too far from now.
    #[error(
        "the request's timestamp is more than 5 minutes from the current time; check the clock, or the request was replayed"
    )]
    Stale,
}

impl RequestVerifier {
    /// Reads the public key from its 64 hex digits.
    pub fn from_hex(public_key: &str) -> Result<Self, InvalidPublicKey> {
        let text = public_key.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidPublicKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| InvalidPublicKey)?;
        }
        Ok(Self {
            verifier: Verifier::try_new(key).map_err(|_| InvalidPublicKey)?,
        })
    }

    /// Checks a request's signature and timestamp against `now`.
    pub fn check(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), Unverified> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(Unverified::MissingHeader(name))
        };
        let signature = header(SIGNATURE_HEADER)?;
        let timestamp = header(TIMESTAMP_HEADER)?;
        // The signature first: an unsigned request learns nothing about the clock.
        self.verifier
            .verify(signature, timestamp, body)
            .map_err(|()| Unverified::BadSignature)?;
        let seconds: i64 = timestamp.trim().parse().map_err(|_| Unverified::Stale)?;
        let skew_ms = now.as_millis().abs_diff(seconds.saturating_mul(1000));
        if skew_ms > MAX_SKEW.as_millis() as u64 {
            return Err(Unverified::Stale);
        }
        Ok(())
    }
}
