//! EC2 through its Query API, for the VPC, subnets and instances an ALB needs. The
//! emulator does not check signatures, so a plain HTTP request with the credential
//! scope in its Authorization header (which is how the emulator tells services apart)
//! is enough, and the tests need no EC2 SDK.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

/// A VPC with one subnet in each of two availability zones, as an ALB needs.
pub struct Network {
    pub vpc: String,
    pub subnets: [String; 2],
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Calls one EC2 action and returns the response body; panics on anything but 200.
pub fn call(action: &str, params: &[(&str, &str)]) -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-1".to_string());
    let mut body = format!("Action={action}&Version=2016-11-15");
    for (key, value) in params {
        body.push_str(&format!("&{}={}", encode(key), encode(value)));
    }
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "EC2 {action} failed: {head}\n{body}"
    );
    body.to_string()
}

/// Every value of `<tag>` in `xml`, in order, without repeats.
pub fn values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut found: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let end = rest.find(&close).expect("a closing tag");
        let value = rest[..end].to_string();
        if !found.contains(&value) {
            found.push(value);
        }
        rest = &rest[end..];
    }
    found
}

/// One network per test process, made on first use.
pub fn network() -> &'static Network {
    static NETWORK: OnceLock<Network> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let vpc = values(&call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")]), "vpcId").remove(0);
        let subnet = |cidr: &str, zone: &str| {
            values(
                &call(
                    "CreateSubnet",
                    &[
                        ("VpcId", &vpc),
                        ("CidrBlock", cidr),
                        ("AvailabilityZone", zone),
                    ],
                ),
                "subnetId",
            )
            .remove(0)
        };
        let subnets = [
            subnet("10.0.1.0/24", "eu-west-1a"),
            subnet("10.0.2.0/24", "eu-west-1b"),
        ];
        Network { vpc, subnets }
    })
}
