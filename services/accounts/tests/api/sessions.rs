use reqwest::StatusCode;
use serde_json::{json, Value};

use std::time::Duration;

use accounts::throttle::ThrottleSettings;
use dozen_runtime::http::TrustedProxyHops;

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};
use dozen_testing::on_every_database;

on_every_database!(
    logging_in_by_username_answers_a_token_for_that_user,
    logging_in_by_email_in_any_case_answers_a_token,
    a_wrong_password_answers_401,
    an_unknown_user_answers_401_like_a_wrong_password,
    a_login_without_password_or_with_both_names_answers_422,
    the_same_password_composed_differently_logs_in,
    guessing_one_accounts_password_is_throttled_alike_whether_it_exists_or_not,
    guessing_from_one_address_is_throttled_whatever_the_accounts,
);

/// Logs in from `address` (the gateway in front says so in X-Forwarded-For).
async fn log_in_from(app: &TestApp, address: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/sessions"))
        .header("x-forwarded-for", address)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A 429 as a throttled login gets it: the code, and a wait within the window.
async fn assert_throttled(response: reqwest::Response, window: Duration) -> Value {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window.as_secs()).contains(&wait),
        "Retry-After: {wait}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    body
}

async fn throttled_app(backend: Backend, throttle: ThrottleSettings) -> TestApp {
    spawn_app_with(backend, |settings| {
        settings.throttle = throttle;
        settings.process.http.trusted_proxy_hops = TrustedProxyHops(1);
    })
    .await
}

async fn guessing_one_accounts_password_is_throttled_alike_whether_it_exists_or_not(
    backend: Backend,
) {
    let window = Duration::from_secs(2);
    let app = throttled_app(
        backend,
        ThrottleSettings {
            per_account: 5,
            per_address: 1000,
            window,
        },
    )
    .await;
    let alice = app.new_user("alice").await;
    let bob = app.new_user("bob").await;
    let mut throttled = Vec::new();
    for (n, name) in ["alice", "nobody"].into_iter().enumerate() {
        // Each guess from another address: the account's own limit holds.
        for guess in 0..5 {
            let from = format!("198.51.100.{}", n * 10 + guess);
            let wrong = json!({ "username": name, "password": format!("guess number {guess}") });
            let response = log_in_from(&app, &from, wrong).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{name} {guess}"
            );
        }
        // Now even the right password waits.
        let right = json!({ "username": name, "password": alice.password });
        let body = assert_throttled(log_in_from(&app, "203.0.113.1", right).await, window).await;
        throttled.push(body["error"]["code"].clone());
    }
    assert_eq!(
        throttled[0], throttled[1],
        "the answer tells nothing of the account"
    );
    // Another account from the same addresses is not held back.
    let bob = json!({ "username": "bob", "password": bob.password });
    let response = log_in_from(&app, "203.0.113.1", bob).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The lock lasts the window, no longer; then the right password works.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    let right = json!({ "username": "alice", "password": alice.password });
    assert_eq!(
        log_in_from(&app, "203.0.113.1", right.clone())
            .await
            .status(),
        StatusCode::OK
    );
    // A success starts the account afresh: five more mistakes are allowed.
    for guess in 0..5 {
        let wrong = json!({ "username": "alice", "password": format!("typo number {guess}") });
        let response = log_in_from(&app, "203.0.113.1", wrong).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn guessing_from_one_address_is_throttled_whatever_the_accounts(backend: Backend) {
    let window = Duration::from_secs(60);
    let app = throttled_app(
        backend,
        ThrottleSettings {
            per_account: 1000,
            per_address: 8,
            window,
        },
    )
    .await;
    let carol = app.new_user("carol").await;
    for n in 0..8 {
        let body =
            json!({ "email": format!("user{n}@example.com"), "password": "a guess of mine" });
        let response = log_in_from(&app, "192.0.2.66", body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{n}");
    }
    let right = json!({ "username": "carol", "password": carol.password });
    assert_throttled(log_in_from(&app, "192.0.2.66", right.clone()).await, window).await;
    // Anyone else, and carol from elsewhere, logs in as ever.
    assert_eq!(
        log_in_from(&app, "192.0.2.67", right).await.status(),
        StatusCode::OK
    );
}

/// NIST SP 800-63B: passwords compared in one Unicode normal form.
async fn the_same_password_composed_differently_logs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    for (n, (signed_up_with, logs_in_with)) in [
        (
            "cr\u{e8}me br\u{fb}l\u{e9}e",
            "cre\u{300}me bru\u{302}le\u{301}e",
        ),
        (
            "cre\u{300}me bru\u{302}le\u{301}e",
            "cr\u{e8}me br\u{fb}l\u{e9}e",
        ),
        ("\u{ff30}\u{ff21}\u{ff33}\u{ff33} word 42", "PASS word 42"),
        ("\u{212b}ngstr\u{f6}m 1234", "\u{c5}ngstro\u{308}m 1234"),
    ]
    .into_iter()
    .enumerate()
    {
        let username = format!("accent{n}");
        let signed_up = app
            .sign_up(
                &username,
                &format!("{username}@example.com"),
                signed_up_with,
            )
            .await;
        assert_eq!(signed_up.status(), StatusCode::CREATED);
        let response = app
            .log_in(json!({ "username": username, "password": logs_in_with }))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{logs_in_with:?}");
        let wrong = app
            .log_in(json!({ "username": username, "password": logs_in_with.to_uppercase() }))
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn logging_in_by_username_answers_a_token_for_that_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let kim = app.new_user("kim").await;
    let response = app
        .log_in(json!({ "username": "kim", "password": kim.password }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], kim.id.as_str());
    let token = body["access_token"].as_str().unwrap();
    let me: Value = app
        .get_with_token("/v1/users/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "kim");
}

async fn logging_in_by_email_in_any_case_answers_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let lee = app.new_user("lee").await;
    let response = app
        .log_in(json!({ "email": " LEE@example.com ", "password": lee.password }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_wrong_password_answers_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.new_user("mallory").await;
    let response = app
        .log_in(json!({ "username": "mallory", "password": "not her password" }))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_credentials");
}

/// The two answers are the same, and both cost one password check: an unknown
/// user is checked against a decoy hash, so timing does not tell them apart.
async fn an_unknown_user_answers_401_like_a_wrong_password(backend: Backend) {
    let app = spawn_app(backend).await;
    app.new_user("nina").await;
    let mut answers = Vec::new();
    for username in ["nina", "nobody"] {
        let checks_before = app.password_checks().await;
        let response = app
            .log_in(json!({ "username": username, "password": "not her password" }))
            .await;
        let checks = app.password_checks().await - checks_before;
        answers.push((
            response.status(),
            response.json::<Value>().await.unwrap(),
            checks,
        ));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answers[0], answers[1],
        "a wrong password and an unknown user look alike"
    );
    assert_eq!(answers[1].2, 1, "the unknown user cost one password check");
}

async fn a_login_without_password_or_with_both_names_answers_422(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({ "username": "olga" }),
        json!({ "password": "something long" }),
        json!({ "username": "olga", "email": "olga@example.com", "password": "something long" }),
    ] {
        let response = app.log_in(body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert_eq!(error_code(response).await, "validation_failed");
    }
}
