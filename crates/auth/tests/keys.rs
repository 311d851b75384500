//! Keys fetched from a JWKS URL: served here by a small local server whose
//! keys the test rotates and whose fetches it counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use dozen_auth::{CheckError, Claims, Jwk, JwkSet, Keys, TokenError};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

struct Signer {
    key: EncodingKey,
    jwk: Jwk,
}

impl Signer {
    fn new() -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        Self {
            jwk: Jwk::ed25519(&key.verifying_key().to_bytes()),
            key: EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes()),
        }
    }

    fn token(&self, kid: Option<String>) -> String {
        self.token_expiring(kid, now() + 60)
    }

    fn token_expiring(&self, kid: Option<String>, exp: i64) -> String {
        let claims = Claims {
            sub: "user-1".into(),
            iss: "dozen".into(),
            aud: "dozen".into(),
            iat: now() - 60,
            exp,
            preferred_username: Some("alice".into()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.or_else(|| self.jwk.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_token_checked_once_is_taken_again_but_still_expires_on_time() {
    let signer = Signer::new();
    let verifier = dozen_auth::TokenVerifier::new(
        &JwkSet {
            keys: vec![signer.jwk.clone()],
        },
        "dozen",
        "dozen",
    )
    .unwrap();
    // Valid for two more seconds, the 30 s leeway for clock skew included.
    let token = signer.token_expiring(None, now() - 30 + 2);
    for _ in 0..3 {
        assert_eq!(verifier.verify(&token).unwrap().sub, "user-1");
    }
    // The same claims under another signature are checked afresh, not remembered.
    let (unsigned, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{unsigned}.{}", "A".repeat(86));
    assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(verifier.verify(&token), Err(TokenError::Expired));
    // A token from an unknown signer is never let through by a remembered one.
    let stranger = Signer::new().token(signer.jwk.kid.clone());
    assert_eq!(verifier.verify(&stranger), Err(TokenError::BadSignature));
}

struct JwksServer {
    url: String,
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(first: &Signer) -> JwksServer {
    let keys = Arc::new(Mutex::new(JwkSet {
        keys: vec![first.jwk.clone()],
    }));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (keys.clone(), fetches.clone());
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let keys = served.lock().unwrap().clone();
            async move { Json(keys) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer { url, keys, fetches }
}

#[tokio::test]
async fn keys_from_a_jwks_url_are_fetched_once_and_verify_tokens() {
    let signer = Signer::new();
    let server = serve_jwks(&signer).await;
    let keys = Keys::fetched(&server.url, "dozen", "dozen");
    for _ in 0..3 {
        let claims = keys.check(&signer.token(None)).await.unwrap();
        assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_signed_with_a_rotated_key_is_accepted_after_one_fetch() {
    let (old, new) = (Signer::new(), Signer::new());
    let server = serve_jwks(&old).await;
    let keys = Keys::fetched_at_most_every(&server.url, "dozen", "dozen", Duration::ZERO);
    keys.check(&old.token(None)).await.unwrap();
    server.keys.lock().unwrap().keys.push(new.jwk.clone());
    keys.check(&new.token(None)).await.unwrap();
    keys.check(&old.token(None)).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_key_ids_do_not_make_it_fetch_more_than_once_per_interval() {
    let signer = Signer::new();
    let server = serve_jwks(&signer).await;
    let keys = Keys::fetched(&server.url, "dozen", "dozen");
    for n in 0..20 {
        let forged = signer.token(Some(format!("forged-{n}")));
        assert_eq!(
            keys.check(&forged).await,
            Err(CheckError::Token(TokenError::UnknownKey))
        );
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_url_means_keys_unavailable_not_a_bad_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let keys = Keys::fetched(url, "dozen", "dozen");
    let outcome = keys.check(&Signer::new().token(None)).await;
    assert!(
        matches!(outcome, Err(CheckError::KeysUnavailable(_))),
        "{outcome:?}"
    );
}
