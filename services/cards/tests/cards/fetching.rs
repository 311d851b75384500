//! The guard and the limits, on real HTTP.

use std::time::Duration;

use cards::fetch::{FetchError, FetchLimits, Fetcher};
use cards::guard::AddressPolicy;
use cards::parse::preview;

use crate::site;

fn fetcher_allowing_loopback() -> Fetcher {
    Fetcher::new(
        AddressPolicy::allowing(vec!["127.0.0.1".parse().unwrap()]),
        FetchLimits {
            total_timeout: Duration::from_secs(2),
            ..FetchLimits::default()
        },
    )
}

#[tokio::test]
async fn an_opengraph_page_gives_its_title_description_and_absolute_image() {
    let site = site::start().await;
    let page = fetcher_allowing_loopback()
        .fetch(&site.url("/og"))
        .await
        .unwrap();
    let card = preview(&page.html, &page.url).unwrap();
    assert_eq!(card.title, "A post worth reading");
    assert_eq!(card.description.as_deref(), Some("What the post says"));
    assert_eq!(card.image, Some(site.url("/cover.png")));
}

#[tokio::test]
async fn a_page_not_in_utf8_gets_its_title_in_the_encoding_it_declares() {
    let site = site::start().await;
    let fetcher = fetcher_allowing_loopback();
    let page = fetcher.fetch(&site.url("/latin-meta")).await.unwrap();
    assert_eq!(preview(&page.html, &page.url).unwrap().title, "Café crème");
    let page = fetcher.fetch(&site.url("/latin-header")).await.unwrap();
    let card = preview(&page.html, &page.url).unwrap();
    assert_eq!(card.title, "Café crème");
    assert_eq!(card.description.as_deref(), Some("Crème brûlée"));
}

#[tokio::test]
async fn loopback_is_refused_unless_the_allow_list_names_it() {
    let site = site::start().await;
    let strict = Fetcher::new(AddressPolicy::default(), FetchLimits::default());
    let error = strict.fetch(&site.url("/og")).await.unwrap_err();
    assert!(matches!(error, FetchError::Refused { .. }), "{error}");
    assert_eq!(site.visits(), 0, "refused before connecting");
    assert!(fetcher_allowing_loopback()
        .fetch(&site.url("/og"))
        .await
        .is_ok());
}

#[tokio::test]
async fn redirects_are_followed_and_each_hop_is_checked_again() {
    let site = site::start().await;
    let fetcher = fetcher_allowing_loopback();
    let page = fetcher.fetch(&site.url("/moved")).await.unwrap();
    assert!(page.url.as_str().ends_with("/og"));
    let error = fetcher.fetch(&site.url("/to-metadata")).await.unwrap_err();
    assert_eq!(
        error,
        FetchError::Refused {
            host: "169.254.169.254".into(),
            address: "169.254.169.254".into()
        }
    );
    assert_eq!(
        fetcher.fetch(&site.url("/loop")).await.unwrap_err(),
        FetchError::TooManyRedirects(5)
    );
}

#[tokio::test]
async fn only_http_html_within_time_is_taken_and_a_huge_page_is_read_only_to_the_cap() {
    let site = site::start().await;
    let fetcher = fetcher_allowing_loopback();
    for (url, expected) in [
        (
            "file:///etc/passwd".to_owned(),
            FetchError::Scheme("file".into()),
        ),
        (
            "gopher://127.0.0.1/".to_owned(),
            FetchError::Scheme("gopher".into()),
        ),
        (
            site.url("/json"),
            FetchError::NotHtml("application/json".into()),
        ),
        (site.url("/missing"), FetchError::Status(404)),
        (site.url("/slow"), FetchError::Timeout),
    ] {
        assert_eq!(fetcher.fetch(&url).await.unwrap_err(), expected, "{url}");
    }
    assert!(matches!(
        fetcher.fetch("not a url").await.unwrap_err(),
        FetchError::BadUrl(_)
    ));
    let page = fetcher.fetch(&site.url("/huge")).await.unwrap();
    assert_eq!(page.html.len(), FetchLimits::default().max_bytes);
    assert_eq!(preview(&page.html, &page.url).unwrap().title, "Huge page");
}
