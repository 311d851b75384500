//! A small web site of the test's own, on 127.0.0.1, counting its visits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

pub struct Site {
    pub base: String,
    pub visits: Arc<AtomicUsize>,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn visits(&self) -> usize {
        self.visits.load(Ordering::SeqCst)
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub async fn start() -> Site {
    let visits = Arc::new(AtomicUsize::new(0));
    let counted = visits.clone();
    let app = Router::new()
        .route(
            "/og",
            get(|| async {
                html(
                    r#"<html><head><title>Fallback</title>
                    <meta property="og:title" content="A post worth reading">
                    <meta property="og:description" content="What the post says">
                    <meta property="og:image" content="/cover.png"></head></html>"#
                        .into(),
                )
            }),
        )
        .route(
            "/latin-meta",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    &b"<html><head><meta charset=\"windows-1252\"><title>Caf\xe9 cr\xe8me</title></head></html>"[..],
                )
                    .into_response()
            }),
        )
        .route(
            "/latin-header",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=ISO-8859-1")],
                    &b"<title>Caf\xe9 cr\xe8me</title><meta property=\"og:description\" content=\"Cr\xe8me br\xfbl\xe9e\">"[..],
                )
                    .into_response()
            }),
        )
        .route(
            "/plain",
            get(|| async { html("<title>Just a title</title>".into()) }),
        )
        .route(
            "/untitled",
            get(|| async { html("<p>nothing to call it</p>".into()) }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/og") }))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}").into_response() }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                html("<title>late</title>".into())
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // The title first, then 4 MiB: only the cap is read.
                html(format!(
                    "<title>Huge page</title>{}",
                    "x".repeat(4 * 1024 * 1024)
                ))
            }),
        )
        .layer(axum::middleware::from_fn(
            move |request, next: axum::middleware::Next| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Site { base, visits }
}
