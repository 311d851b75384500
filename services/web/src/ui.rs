//! The browser UI: `/` and `/assets/…`, every file embedded in the binary
//! by `build.rs` (as it is and gzip-compressed), with the headers that
//! make it safe to render other people's text (a strict
//! Content-Security-Policy with Trusted Types, no framing, no sniffing, no
//! referrer).
//!
//! Files are revalidated on every load (`no-cache` with a strong ETag), so
//! a new release is picked up at once and an unchanged file costs a 304.

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dozen_runtime::http::ApiError;

/// One embedded file.
#[derive(Debug)]
pub struct UiFile {
    /// Where it is served: `/` for `index.html`, else `/<path under ui/>`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    pub gzip: &'static [u8],
    /// A strong ETag, quotes included.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));

/// The page's policy: scripts and styles only from this origin, no inline
/// script or `eval`, every DOM sink behind Trusted Types (so no string can
/// become HTML), API calls only to this origin, images from anywhere on
/// http(s) (cards show other sites' pictures), and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' https: http:; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // Card images come from other sites: they learn nothing of the page.
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
];

/// `/` and `/assets/…`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(serve))
        .route("/assets/{*path}", get(serve))
}

/// The embedded file at `path`, if any.
pub fn file(path: &str) -> Option<&'static UiFile> {
    FILES.iter().find(|f| f.path == path)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn serve(uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let file = file(uri.path()).ok_or_else(|| ApiError::not_found("no such page"))?;
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == file.etag));
    let gzip = accepts_gzip(&headers);
    let (status, body) = match (not_modified, gzip) {
        (true, _) => (StatusCode::NOT_MODIFIED, Body::empty()),
        (false, true) => (StatusCode::OK, Body::from(file.gzip)),
        (false, false) => (StatusCode::OK, Body::from(file.body)),
    };
    let mut response = (status, body).into_response();
    let answer = response.headers_mut();
    answer.insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    answer.insert(ETAG, HeaderValue::from_static(file.etag));
    answer.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    answer.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if gzip && !not_modified {
        answer.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    for (name, value) in SECURITY_HEADERS {
        answer.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!with("gzip; q=0, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_page_and_its_assets_are_all_embedded() {
        let page = file("/").expect("index.html");
        let html = std::str::from_utf8(page.body).unwrap();
        for asset in html.split('"').filter(|s| s.starts_with("/assets/")) {
            assert!(
                file(asset).is_some(),
                "{asset} is referenced but not embedded"
            );
        }
        for file in FILES {
            assert!(file.gzip.len() < file.body.len() + 64, "{}", file.path);
        }
    }
}
