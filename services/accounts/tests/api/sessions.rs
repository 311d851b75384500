use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, Backend};
use dozen_testing::on_every_database;

on_every_database!(
    logging_in_by_username_answers_a_token_for_that_user,
    logging_in_by_email_in_any_case_answers_a_token,
    a_wrong_password_answers_401,
    an_unknown_user_answers_401_like_a_wrong_password,
    a_login_without_password_or_with_both_names_answers_422,
);

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
