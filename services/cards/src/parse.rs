//! What a card shows, read from a page with a real HTML parser: OpenGraph
//! `og:title`, `og:description`, `og:image`, or else `<title>` and the
//! description meta tag.

use scraper::{Html, Selector};
use url::Url;

/// A page's preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub title: String,
    pub description: Option<String>,
    pub image: Option<String>,
}

/// Limits of the `card.created` schema.
const TITLE_CHARS: usize = 300;
const DESCRIPTION_CHARS: usize = 1000;

fn meta(document: &Html, attribute: &str, name: &str) -> Option<String> {
    let selector = Selector::parse(&format!("meta[{attribute}=\"{name}\"]")).ok()?;
    document
        .select(&selector)
        .filter_map(|element| element.value().attr("content"))
        .map(tidy)
        .find(|content| !content.is_empty())
}

/// Whitespace folded to single spaces.
fn tidy(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn clip(text: String, chars: usize) -> String {
    if text.chars().count() <= chars {
        text
    } else {
        text.chars().take(chars - 1).chain(['…']).collect()
    }
}

/// The preview of `html` fetched from `base`; `None` when it has no title at all.
pub fn preview(html: &str, base: &Url) -> Option<Preview> {
    let document = Html::parse_document(html);
    let title = meta(&document, "property", "og:title").or_else(|| {
        let selector = Selector::parse("title").ok()?;
        let title = tidy(
            &document
                .select(&selector)
                .next()?
                .text()
                .collect::<String>(),
        );
        (!title.is_empty()).then_some(title)
    })?;
    let description = meta(&document, "property", "og:description")
        .or_else(|| meta(&document, "name", "description"))
        .map(|d| clip(d, DESCRIPTION_CHARS));
    let image = meta(&document, "property", "og:image")
        .and_then(|src| base.join(&src).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .map(String::from);
    Some(Preview {
        title: clip(title, TITLE_CHARS),
        description,
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.com/posts/1").unwrap()
    }

    #[test]
    fn opengraph_tags_make_the_card_with_a_relative_image_made_absolute() {
        let html = r#"<html><head><title>Fallback</title>
            <meta property="og:title" content=" The   post ">
            <meta property="og:description" content="What it says">
            <meta property="og:image" content="/img/cover.png"></head><body></body></html>"#;
        assert_eq!(
            preview(html, &base()),
            Some(Preview {
                title: "The post".into(),
                description: Some("What it says".into()),
                image: Some("https://example.com/img/cover.png".into()),
            })
        );
    }

    #[test]
    fn without_opengraph_the_title_and_description_tags_serve() {
        let html = r#"<title>
            Plain page</title><meta name="description" content="About it">"#;
        let card = preview(html, &base()).unwrap();
        assert_eq!(card.title, "Plain page");
        assert_eq!(card.description.as_deref(), Some("About it"));
        assert_eq!(card.image, None);
    }

    #[test]
    fn a_page_without_a_title_makes_no_card_and_odd_images_are_dropped() {
        assert_eq!(preview("<p>no title</p>", &base()), None);
        assert_eq!(preview("", &base()), None);
        let html = r#"<title>t</title><meta property="og:image" content="javascript:alert(1)">"#;
        assert_eq!(preview(html, &base()).unwrap().image, None);
    }

    #[test]
    fn long_titles_are_clipped_to_what_the_event_allows() {
        let html = format!("<title>{}</title>", "x".repeat(1000));
        assert_eq!(preview(&html, &base()).unwrap().title.chars().count(), 300);
    }
}
