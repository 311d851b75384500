use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app, Backend};
use dozen_testing::on_every_database;

on_every_database!(
    signing_up_answers_201_with_the_user_and_a_token,
    signing_up_twice_with_one_username_answers_409,
    signing_up_twice_with_one_email_in_any_case_answers_409,
    concurrent_signups_with_one_username_create_one_user,
    invalid_signup_fields_answer_422_naming_each_field,
    a_missing_signup_field_answers_422,
    the_signed_in_user_reads_their_own_profile,
    a_signed_in_user_reads_another_users_public_fields_only,
    an_unknown_user_id_answers_404,
    reading_users_without_a_token_answers_401,
);

async fn signing_up_answers_201_with_the_user_and_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .sign_up("alice", "Alice@Example.COM", "correct horse battery")
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(
        body["user"]["email"], "alice@example.com",
        "e-mail is normalised"
    );
    assert!(body["user"]["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["user"]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(body["user"].get("password_hash").is_none());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
}

async fn signing_up_twice_with_one_username_answers_409(backend: Backend) {
    let app = spawn_app(backend).await;
    app.new_user("bob").await;
    let again = app
        .sign_up("bob", "other@example.com", "another password")
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "username_taken");
}

async fn signing_up_twice_with_one_email_in_any_case_answers_409(backend: Backend) {
    let app = spawn_app(backend).await;
    app.new_user("carol").await;
    let again = app
        .sign_up("carol2", "CAROL@example.com", "another password")
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "email_taken");
}

async fn concurrent_signups_with_one_username_create_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let attempts = (0..6).map(|i| {
        let app = &app;
        async move {
            app.sign_up("dave", &format!("dave{i}@example.com"), "dave's password")
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 5), "{statuses:?}");
}

async fn invalid_signup_fields_answer_422_naming_each_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        ("ab", "ok@example.com", "long enough password", "username"),
        (
            "Upper",
            "ok@example.com",
            "long enough password",
            "username",
        ),
        (
            &"x".repeat(33) as &str,
            "ok@example.com",
            "long enough password",
            "username",
        ),
        ("erin", "not-an-email", "long enough password", "email"),
        ("erin", "erin@localhost", "long enough password", "email"),
        ("erin", "erin@example.com", "short", "password"),
        ("erin", "erin@example.com", &"p".repeat(129), "password"),
    ];
    for (username, email, password, field) in cases {
        let response = app.sign_up(username, email, password).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_failed");
        assert!(body["error"]["fields"][field].is_array(), "{body}");
        assert_eq!(
            body["error"]["fields"].as_object().unwrap().len(),
            1,
            "{body}"
        );
    }
}

async fn a_missing_signup_field_answers_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json("/v1/users", &serde_json::json!({ "username": "frank" }))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["fields"]["email"][0], "is required");
    assert_eq!(body["error"]["fields"]["password"][0], "is required");
}

async fn the_signed_in_user_reads_their_own_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let grace = app.new_user("grace").await;
    let response = app.get_with_token("/v1/users/me", &grace.token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], grace.id.as_str());
    assert_eq!(body["username"], "grace");
    assert_eq!(body["email"], grace.email.as_str());
}

async fn a_signed_in_user_reads_another_users_public_fields_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let heidi = app.new_user("heidi").await;
    let ivan = app.new_user("ivan").await;
    let response = app
        .get_with_token(&format!("/v1/users/{}", ivan.id), &heidi.token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "ivan");
    assert!(body.get("email").is_none(), "e-mail is private: {body}");
}

async fn an_unknown_user_id_answers_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let judy = app.new_user("judy").await;
    for id in [
        "0190b6a0-0000-7000-8000-000000000000",
        "not-a-uuid",
        "%27%20OR%201%3D1",
    ] {
        let response = app
            .get_with_token(&format!("/v1/users/{id}"), &judy.token)
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        assert_eq!(error_code(response).await, "not_found");
    }
}

async fn reading_users_without_a_token_answers_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/v1/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(error_code(response).await, "unauthorized");
}
