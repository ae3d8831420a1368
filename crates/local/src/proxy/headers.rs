//! What the proxy changes in the headers it passes on: hop-by-hop headers removed
//! both ways, `X-Forwarded-*` headers added to requests, and the sticky cookie read
//! from requests and set on answers.

use std::net::IpAddr;

use http::header::{CONNECTION, COOKIE, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use ripcord_core::domain::Slot;

use super::STICKY_COOKIE;

/// Headers that describe one connection rather than the message (RFC 9110, section
/// 7.6.1), so they must not travel past the proxy in either direction. The headers
/// that `Connection` itself lists are removed as well.
const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers, and any header that `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Adds the client's address to `X-Forwarded-For` (after any addresses earlier
/// proxies put there), and sets `X-Forwarded-Proto` and `X-Forwarded-Host`, as an
/// ALB does, so that the application sees who asked and for what.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    original_host: Option<HeaderValue>,
) {
    let client = client.to_string();
    let mut forwarded_for = Vec::new();
    for earlier in headers.get_all(&X_FORWARDED_FOR) {
        forwarded_for.extend_from_slice(earlier.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    forwarded_for.extend_from_slice(client.as_bytes());
    // Earlier values were valid header values and the separator and the address are
    // plain ASCII, so this only fails if a client sent something hyper let through
    // but `HeaderValue` refuses; then the address alone is still right.
    let value = HeaderValue::from_bytes(&forwarded_for)
        .or_else(|_| HeaderValue::from_str(&client))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    headers.insert(X_FORWARDED_FOR, value);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// The slot named by a valid sticky cookie in the request, if any.
pub(crate) fn sticky_slot(headers: &HeaderMap) -> Option<Slot> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == STICKY_COOKIE)
        .find_map(|(_, value)| match value.trim_matches('"') {
            "blue" => Some(Slot::Blue),
            "green" => Some(Slot::Green),
            _ => None,
        })
}

/// The `Set-Cookie` value that keeps a client on `slot`. It lasts for the browser
/// session and is not readable by scripts, since only the proxy needs it.
pub(crate) fn sticky_cookie(slot: Slot) -> HeaderValue {
    match slot {
        Slot::Blue => HeaderValue::from_static("ripcord_slot=blue; Path=/; HttpOnly; SameSite=Lax"),
        Slot::Green => {
            HeaderValue::from_static("ripcord_slot=green; Path=/; HttpOnly; SameSite=Lax")
        }
    }
}

/// The original `Host` of a request: its header, or the authority of an absolute URI.
pub(crate) fn original_host(headers: &HeaderMap, uri: &Uri) -> Option<HeaderValue> {
    headers.get(HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_lists_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Session-Hop"),
            ("connection", "x-other-hop"),
            ("x-session-hop", "1"),
            ("x-other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-end-to-end", "kept"),
            ("accept", "text/plain"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-end-to-end"]);
    }

    #[test]
    fn forwarded_headers_append_the_client_after_earlier_proxies() {
        let mut map = headers(&[("x-forwarded-for", "203.0.113.7")]);
        add_forwarded(
            &mut map,
            "127.0.0.1".parse().unwrap(),
            Some(HeaderValue::from_static("shop.example")),
        );
        assert_eq!(map["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["x-forwarded-host"], "shop.example");

        let mut map = HeaderMap::new();
        add_forwarded(&mut map, "::1".parse().unwrap(), None);
        assert_eq!(map["x-forwarded-for"], "::1");
        assert!(!map.contains_key("x-forwarded-host"));
    }

    #[test]
    fn sticky_cookie_is_found_among_others_and_checked() {
        let map = headers(&[("cookie", "theme=dark; ripcord_slot=green; lang=en")]);
        assert_eq!(sticky_slot(&map), Some(Slot::Green));
        let map = headers(&[("cookie", "theme=dark"), ("cookie", "ripcord_slot=blue")]);
        assert_eq!(sticky_slot(&map), Some(Slot::Blue));
        let map = headers(&[("cookie", "ripcord_slot=purple")]);
        assert_eq!(sticky_slot(&map), None);
        let map = headers(&[("cookie", "not_ripcord_slot=green")]);
        assert_eq!(sticky_slot(&map), None);
    }
}
