//! Fetching a page behind the guard: http and https only; the host resolved
//! once, every address checked, and the connection pinned to a checked
//! address (no second lookup to rebind); redirects followed by hand and each
//! hop checked again; connect and total timeouts; HTML only; a size cap.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, LOCATION, USER_AGENT};
use tokio::time::Instant;
use url::Url;

use crate::guard::AddressPolicy;

/// Why a page was not fetched. Each is final for this URL: no retry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("not a URL: {0}")]
    BadUrl(String),
    #[error("only http and https are fetched, not {0}")]
    Scheme(String),
    #[error("{host} resolves to {address}, which is not allowed")]
    Refused { host: String, address: String },
    #[error("cannot resolve {0}")]
    Unresolved(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("timed out")]
    Timeout,
    #[error("the server answered {0}")]
    Status(u16),
    #[error("not HTML but {0:?}")]
    NotHtml(String),
    #[error("fetch failed: {0}")]
    Failed(String),
}

/// A fetched page: where it ended up, and its first bytes (up to the cap).
#[derive(Debug, Clone)]
pub struct Page {
    pub url: Url,
    pub html: String,
}

/// The limits of a fetch.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_bytes: usize,
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// Fetches pages for cards.
#[derive(Debug, Clone)]
pub struct Fetcher {
    policy: AddressPolicy,
    limits: FetchLimits,
}

impl Fetcher {
    pub fn new(policy: AddressPolicy, limits: FetchLimits) -> Self {
        Self { policy, limits }
    }

    pub async fn fetch(&self, url: &str) -> Result<Page, FetchError> {
        let deadline = Instant::now() + self.limits.total_timeout;
        match tokio::time::timeout_at(deadline, self.follow(url, deadline)).await {
            Ok(page) => page,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn follow(&self, url: &str, deadline: Instant) -> Result<Page, FetchError> {
        let mut url = Url::parse(url).map_err(|e| FetchError::BadUrl(format!("{url}: {e}")))?;
        for _ in 0..=self.limits.max_redirects {
            let address = self.checked_address(&url).await?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(self.limits.connect_timeout)
                .timeout(deadline.saturating_duration_since(Instant::now()))
                // The address already checked, for this host: no second lookup.
                .resolve(&host, address)
                .no_proxy()
                .build()
                .map_err(|e| FetchError::Failed(e.to_string()))?;
            let response = client
                .get(url.clone())
                .header(USER_AGENT, "DozenCards/1 (+link previews)")
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        FetchError::Timeout
                    } else {
                        FetchError::Failed(e.to_string())
                    }
                })?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(FetchError::Status(status.as_u16()))?;
                url = url
                    .join(location)
                    .map_err(|e| FetchError::BadUrl(format!("{location}: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let media_type = content_type.to_ascii_lowercase();
            if !(media_type.starts_with("text/html")
                || media_type.starts_with("application/xhtml+xml"))
            {
                return Err(FetchError::NotHtml(content_type));
            }
            let body = self.read_capped(response).await?;
            let html = crate::decode::decode(&body, &content_type);
            return Ok(Page { url, html });
        }
        Err(FetchError::TooManyRedirects(self.limits.max_redirects))
    }

    /// Resolves the host once; every address must be allowed; returns the first.
    async fn checked_address(&self, url: &Url) -> Result<SocketAddr, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme(url.scheme().to_owned()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| FetchError::BadUrl(url.to_string()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        // An IPv6 literal comes bracketed; the resolver wants it bare.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| FetchError::Unresolved(host.to_owned()))?
            .collect();
        if addresses.is_empty() {
            return Err(FetchError::Unresolved(host.to_owned()));
        }
        if let Some(refused) = addresses.iter().find(|a| !self.policy.permits(a.ip())) {
            return Err(FetchError::Refused {
                host: host.to_owned(),
                address: refused.ip().to_string(),
            });
        }
        Ok(addresses[0])
    }

    /// The body's first `max_bytes`: the head of a page holds what a card needs.
    async fn read_capped(&self, response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Failed(e.to_string())
                }
            })?;
            let room = self.limits.max_bytes - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= self.limits.max_bytes {
                break;
            }
        }
        Ok(body)
    }
}
