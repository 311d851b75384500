//! Tokens: verifiable from the public keys alone, and refused when tampered with.
//! Token checks do not touch the database, so these run on SQLite only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dozen_auth::{Jwk, JwkSet, TokenError, TokenVerifier};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, new_signing_key_pem, spawn_app, Backend, TestApp};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Signs arbitrary claims with an Ed25519 key, as an attacker holding that key would.
fn sign_with(pem: &str, claims: &Value) -> String {
    let der = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Jwk::from_private_pem(pem).unwrap().kid;
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

fn claims_for(user_id: &str) -> Value {
    json!({ "sub": user_id, "iss": "dozen", "aud": "dozen", "iat": now(), "exp": now() + 600 })
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let response = app.get_with_token("/v1/users/me", token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
    assert_eq!(error_code(response).await, "unauthorized", "{why}");
}

#[tokio::test]
async fn a_token_verifies_with_the_published_public_keys_alone() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("pat").await;
    let jwks: JwkSet = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].alg.as_deref(), Some("EdDSA"));
    assert!(jwks.keys[0].kid.is_some());
    let verifier = TokenVerifier::new(&jwks, "dozen", "dozen").unwrap();
    let claims = verifier.verify(&user.token).unwrap();
    assert_eq!(claims.sub, user.id);
    assert!(claims.exp > claims.iat);
    assert_eq!(
        TokenVerifier::new(&jwks, "dozen", "another-service")
            .unwrap()
            .verify(&user.token),
        Err(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn a_correctly_signed_token_is_accepted() {
    // The control for the refusals below: the same crafting, all claims right.
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("quinn").await;
    let token = sign_with(&app.key_pem, &claims_for(&user.id));
    let response = app.get_with_token("/v1/users/me", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn expired_wrong_audience_and_wrong_issuer_tokens_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("rita").await;
    let mut expired = claims_for(&user.id);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_audience = claims_for(&user.id);
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims_for(&user.id);
    wrong_issuer["iss"] = json!("evil");
    let mut no_expiry = claims_for(&user.id);
    no_expiry.as_object_mut().unwrap().remove("exp");
    for (why, claims) in [
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("wrong issuer", wrong_issuer),
        ("no expiry", no_expiry),
    ] {
        assert_refused(&app, &sign_with(&app.key_pem, &claims), why).await;
    }
}

#[tokio::test]
async fn tokens_not_valid_yet_are_refused_and_a_clock_a_little_ahead_is_forgiven() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("nora").await;
    let with = |changes: &[(&str, i64)]| {
        let mut claims = claims_for(&user.id);
        for (name, at) in changes {
            claims[*name] = json!(at);
        }
        sign_with(&app.key_pem, &claims)
    };
    for (why, token) in [
        ("nbf an hour ahead", with(&[("nbf", now() + 3600)])),
        ("nbf a minute ahead", with(&[("nbf", now() + 60)])),
        (
            "iat an hour ahead",
            with(&[("iat", now() + 3600), ("exp", now() + 7200)]),
        ),
        (
            "iat a day ahead",
            with(&[("iat", now() + 86_400), ("exp", now() + 90_000)]),
        ),
        (
            "both ahead",
            with(&[
                ("nbf", now() + 600),
                ("iat", now() + 600),
                ("exp", now() + 1200),
            ]),
        ),
    ] {
        assert_refused(&app, &token, why).await;
    }
    // Within the leeway a signer's clock may run ahead of ours.
    for (why, token) in [
        ("nbf 5 s ahead", with(&[("nbf", now() + 5)])),
        ("iat 5 s ahead", with(&[("iat", now() + 5)])),
        ("nbf passed", with(&[("nbf", now() - 60)])),
    ] {
        let response = app.get_with_token("/v1/users/me", &token).await;
        assert_eq!(response.status(), StatusCode::OK, "{why}");
    }
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("sam").await;
    let other = app.new_user("tess").await;
    let parts: Vec<&str> = user.token.split('.').collect();
    // Swap in a payload naming another user, keeping the original signature.
    let forged_payload = URL_SAFE_NO_PAD.encode(claims_for(&other.id).to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&app, &forged, "payload swapped").await;
    // Flip one character of the signature.
    let mut signature = parts[2].to_owned();
    let flipped = if signature.ends_with('A') { "B" } else { "A" };
    signature.replace_range(signature.len() - 1.., flipped);
    let bad_signature = format!("{}.{}.{signature}", parts[0], parts[1]);
    assert_refused(&app, &bad_signature, "signature altered").await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("uma").await;
    let stranger_key = new_signing_key_pem();
    assert_refused(
        &app,
        &sign_with(&stranger_key, &claims_for(&user.id)),
        "unknown kid",
    )
    .await;
    // The stranger's signature under accounts' own kid.
    let token = sign_with(&stranger_key, &claims_for(&user.id));
    let own_kid = Jwk::from_private_pem(&app.key_pem).unwrap().kid.unwrap();
    let header =
        URL_SAFE_NO_PAD.encode(json!({ "alg": "EdDSA", "typ": "JWT", "kid": own_kid }).to_string());
    let rest = token.split_once('.').unwrap().1;
    assert_refused(&app, &format!("{header}.{rest}"), "kid borrowed").await;
}

#[tokio::test]
async fn alg_none_and_hmac_tokens_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("vic").await;
    let payload = URL_SAFE_NO_PAD.encode(claims_for(&user.id).to_string());
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
        assert_refused(&app, &format!("{header}.{payload}."), alg).await;
    }
    // HS256 keyed with the public key: the classic algorithm-confusion forgery.
    let jwk = Jwk::from_private_pem(&app.key_pem).unwrap();
    let public = URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = jwk.kid;
    let token = jsonwebtoken::encode(
        &header,
        &claims_for(&user.id),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_refused(&app, &token, "HS256 with the public key").await;
}

#[tokio::test]
async fn garbage_in_the_authorization_header_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    for token in [
        "",
        "abc",
        "a.b.c",
        "....",
        &"x".repeat(10_000),
        "eyJhbGciOiJFZERTQSJ9.e30.AA",
    ] {
        assert_refused(&app, token, token).await;
    }
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"] {
        let response = app
            .client
            .get(app.url("/v1/users/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(error_code(response).await, "unauthorized");
    }
}
