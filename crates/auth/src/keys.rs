//! Where a service gets the keys it checks tokens with: fixed at start (the
//! signer's own, or a JWKS from the environment), or fetched from accounts'
//! JWKS URL, cached, and fetched again when a token names a key not yet seen
//! (accounts rotated its key) — at most once per [`REFETCH_AFTER`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::jwk::JwkSet;
use crate::verifier::{Claims, TokenError, TokenVerifier};

/// The shortest gap between two fetches of the JWKS, so forged key ids
/// cannot make a service hammer accounts.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The token is bad: answer 401.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No keys could be had (accounts unreachable): answer 503.
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// The keys tokens are checked with. Cheap to clone.
#[derive(Clone)]
pub struct Keys(Arc<Source>);

enum Source {
    Fixed(TokenVerifier),
    Fetched {
        url: String,
        issuer: String,
        audience: String,
        client: reqwest::Client,
        refetch_after: Duration,
        state: Mutex<Fetched>,
        fetching: tokio::sync::Mutex<()>,
    },
}

#[derive(Default)]
struct Fetched {
    verifier: Option<Arc<TokenVerifier>>,
    at: Option<Instant>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::Fixed(verifier) => f.debug_tuple("Keys::Fixed").field(verifier).finish(),
            Source::Fetched { url, .. } => {
                f.debug_struct("Keys::Fetched").field("url", url).finish()
            }
        }
    }
}

impl Keys {
    pub fn fixed(verifier: TokenVerifier) -> Self {
        Self(Arc::new(Source::Fixed(verifier)))
    }

    /// Keys fetched from `url` (a JWKS document) when first needed.
    pub fn fetched(url: impl Into<String>, issuer: &str, audience: &str) -> Self {
        Self::fetched_at_most_every(url, issuer, audience, REFETCH_AFTER)
    }

    /// As [`Keys::fetched`], with another shortest gap between fetches.
    pub fn fetched_at_most_every(
        url: impl Into<String>,
        issuer: &str,
        audience: &str,
        refetch_after: Duration,
    ) -> Self {
        Self(Arc::new(Source::Fetched {
            refetch_after,
            url: url.into(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("a client without custom TLS roots always builds"),
            state: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }))
    }

    /// The token's claims if it is valid.
    pub async fn check(&self, token: &str) -> Result<Claims, CheckError> {
        let (state, fetching, refetch_after) = match &*self.0 {
            Source::Fixed(verifier) => return Ok(verifier.verify(token)?),
            Source::Fetched {
                state,
                fetching,
                refetch_after,
                ..
            } => (state, fetching, *refetch_after),
        };
        let cached = state.lock().expect("keys lock").verifier.clone();
        if let Some(verifier) = &cached {
            match verifier.verify(token) {
                Err(TokenError::UnknownKey) => {}
                outcome => return Ok(outcome?),
            }
        }
        let _one_fetch = fetching.lock().await;
        let (verifier, at) = {
            let state = state.lock().expect("keys lock");
            (state.verifier.clone(), state.at)
        };
        let fresh_enough = at.is_some_and(|at| at.elapsed() < refetch_after);
        // Someone else fetched while we waited, or fetched too recently to try again.
        let changed = !same(&verifier, &cached);
        let verifier = match verifier {
            Some(verifier) if changed || fresh_enough => verifier,
            _ => self.fetch().await?,
        };
        Ok(verifier.verify(token)?)
    }

    async fn fetch(&self) -> Result<Arc<TokenVerifier>, CheckError> {
        let Source::Fetched {
            url,
            issuer,
            audience,
            client,
            state,
            ..
        } = &*self.0
        else {
            unreachable!("only fetched keys are fetched")
        };
        let unavailable = |e: &dyn std::fmt::Display| CheckError::KeysUnavailable(e.to_string());
        let response = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(&e))?;
        let jwks: JwkSet = response.json().await.map_err(|e| unavailable(&e))?;
        let verifier =
            Arc::new(TokenVerifier::new(&jwks, issuer, audience).map_err(|e| unavailable(&e))?);
        let mut state = state.lock().expect("keys lock");
        state.verifier = Some(verifier.clone());
        state.at = Some(Instant::now());
        tracing::info!(
            url,
            keys = jwks.keys.len(),
            "fetched the token signing keys"
        );
        Ok(verifier)
    }
}

fn same(a: &Option<Arc<TokenVerifier>>, b: &Option<Arc<TokenVerifier>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
