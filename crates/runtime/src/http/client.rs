//! Who is calling: the client's address, as far as the proxies in front can
//! be trusted to say it.
//!
//! Each proxy in front (the `dozen up` gateway, an ingress controller, an
//! AWS ALB) appends the address it was called from to `X-Forwarded-For`
//! (the de facto standard; RFC 7239 §5.2 describes the same chain). With
//! `TRUSTED_PROXY_HOPS = n`, the client is the `n`th address from the
//! right: anything further left was written by the caller and proves
//! nothing. With 0 (the default) it is the peer of the TCP connection.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// The client's address, in a request's extensions (set by the standard
/// middleware); a handler takes it as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// How many proxies in front of the service append to `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrustedProxyHops(pub usize);

impl TrustedProxyHops {
    /// The client behind `hops` proxies: the peer, or the `hops`th entry of
    /// `X-Forwarded-For` from the right (every header line, in order). With
    /// fewer entries than hops, the leftmost (the first proxy saw it).
    pub fn client(self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.0 == 0 {
            return peer;
        }
        let chain: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|entry| entry.trim().parse::<IpAddr>())
            .collect::<Result<_, _>>()
            // A chain with garbage in it: only the peer is known.
            .unwrap_or_default();
        match chain.len() {
            0 => peer,
            len => chain[len.saturating_sub(self.0)],
        }
    }
}

/// The peer address of a request served by [`super::HttpServer`] (none in
/// tests that call a router directly: then loopback).
fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<super::PeerAddress>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0 .0.ip())
}

/// Middleware: puts the request's [`ClientAddress`] in its extensions.
pub(crate) async fn remember_client(
    axum::extract::State(hops): axum::extract::State<TrustedProxyHops>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let client = hops.client(peer(request.extensions()), request.headers());
    request.extensions_mut().insert(ClientAddress(client));
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .unwrap_or_else(|| ClientAddress(peer(&parts.extensions))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_as_many_hops_from_the_right_as_there_are_trusted_proxies() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let forged_then_real = headers(&["6.6.6.6, 203.0.113.7", "198.51.100.2"]);
        let cases = [
            (0, &forged_then_real, "10.0.0.9"),
            (1, &forged_then_real, "198.51.100.2"),
            (2, &forged_then_real, "203.0.113.7"),
            (9, &forged_then_real, "6.6.6.6"),
            (1, &headers(&[]), "10.0.0.9"),
            (1, &headers(&["not an address, 198.51.100.2"]), "10.0.0.9"),
            (1, &headers(&["2001:db8::1"]), "2001:db8::1"),
        ];
        for (hops, headers, client) in cases {
            assert_eq!(
                TrustedProxyHops(hops).client(peer, headers),
                client.parse::<IpAddr>().unwrap(),
                "{hops} hops, {headers:?}"
            );
        }
    }
}
