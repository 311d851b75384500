//! What a message's text says beyond itself: who it mentions, what it links.

/// The longest message, in characters.
pub const MAX_CHARS: usize = 4000;
/// URLs of one message passed on in `message.sent`.
pub const MAX_URLS: usize = 10;

/// Usernames after `@` (accounts' rule: 3–32 of `a-z`, `0-9`, `_`), each once,
/// in order of first mention. `a@b.c` is an address, not a mention.
pub fn mentions(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut previous = ' ';
    for (at, c) in text.char_indices() {
        let starts_mention = c == '@' && !(previous.is_alphanumeric() || previous == '_');
        previous = c;
        if !starts_mention {
            continue;
        }
        let name: String = text[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = name.to_ascii_lowercase();
        if (3..=32).contains(&name.len()) && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// `http` and `https` URLs, each once, without the punctuation that ends a
/// sentence or closes a bracket around them.
pub fn urls(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let Some(start) = word.find("http://").or_else(|| word.find("https://")) else {
            continue;
        };
        let candidate = word[start..].trim_end_matches(|c: char| {
            matches!(
                c,
                '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '}' | '>' | '"' | '\''
            )
        });
        let Ok(url) = url::Url::parse(candidate) else {
            continue;
        };
        if url.host_str().is_none_or(str::is_empty) {
            continue;
        }
        let url = url.to_string();
        if !found.contains(&url) && found.len() < MAX_URLS {
            found.push(url);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_once_each_in_order_and_lowercased() {
        assert_eq!(
            mentions("@Bob and @carol, then @bob again; mail a@b.com; @x is too short"),
            vec!["bob", "carol"]
        );
    }

    #[test]
    fn urls_lose_trailing_punctuation_and_repeats() {
        assert_eq!(
            urls("see (https://example.com/a?b=1), http://x.test. and https://example.com/a?b=1!"),
            vec!["https://example.com/a?b=1", "http://x.test/"]
        );
    }

    #[test]
    fn things_that_only_look_like_urls_are_not_urls() {
        assert!(urls("ftp://example.com http:// https://:80 mailto:a@b.c").is_empty());
    }
}
