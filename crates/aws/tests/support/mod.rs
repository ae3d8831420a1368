//! What every AWS adapter test shares: the SDK configuration pointed at the local
//! emulator that `scripts/test` starts, and unique names so tests never collide; the
//! EC2 network an ALB needs (`ec2`), a fault-injecting proxy (`faults`) and a whole
//! installation of a service on the emulator (`world`).

#![allow(dead_code)]

pub mod ec2;
pub mod faults;
pub mod world;

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

/// A DynamoDB client for the local emulator, through a proxy that lets one request
/// at a time reach it.
///
/// DynamoDB applies every request atomically. moto's server handles requests on
/// concurrent threads and checks a write's conditions and applies it as separate
/// steps; a failed transaction even restores a copy of the whole table taken before
/// it started, undoing what other requests wrote meanwhile. Tests where writers race
/// on the same items go through this proxy, so that the emulator keeps DynamoDB's
/// guarantee while the writers still interleave between requests.
pub async fn dynamodb_one_request_at_a_time() -> aws_sdk_dynamodb::Client {
    let sdk = config().await;
    let upstream = std::env::var("AWS_ENDPOINT_URL")
        .expect("checked by config()")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // The endpoint is set on the client's own configuration: the SDK reads
    // AWS_ENDPOINT_URL again for every service, over the shared configuration.
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(one_connection_at_a_time(upstream))
        .build();
    aws_sdk_dynamodb::Client::from_conf(dynamodb)
}

/// Starts a TCP proxy to `upstream` that serves one connection at a time, and
/// returns its URL. The emulator closes every connection after its answer, so one
/// connection is one request; the others wait in the listen queue.
fn one_connection_at_a_time(upstream: String) -> String {
    use std::io::copy;
    use std::net::{Shutdown, TcpListener, TcpStream};

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("the proxy's address");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            // Dropping the client when the emulator is unreachable makes the SDK
            // report a dispatch failure, as it would without the proxy.
            let Ok(mut server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(mut request), Ok(mut forward)) = (client.try_clone(), server.try_clone())
            else {
                continue;
            };
            let upload = std::thread::spawn(move || {
                let _ = copy(&mut request, &mut forward);
                let _ = forward.shutdown(Shutdown::Write);
            });
            let _ = copy(&mut server, &mut client);
            let _ = client.shutdown(Shutdown::Both);
            let _ = upload.join();
        }
    });
    format!("http://{address}")
}
