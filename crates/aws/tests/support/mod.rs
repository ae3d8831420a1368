//! What every AWS adapter test shares: the SDK configuration pointed at the local
//! emulator that `scripts/test` starts, and unique names so tests never collide.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The SDK configuration for the local emulator. Fails with instructions when the
/// emulator's address is not set.
pub async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the local AWS emulator (got {endpoint:?}); run scripts/test, which starts moto on a loopback port and sets it"
    );
    ripcord_aws::sdk_config().await
}

/// A name unique to this test process and call, e.g. `ripcord-test-1234-7`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
