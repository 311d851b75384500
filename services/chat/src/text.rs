//! The rules of the text people type (room names, messages), and what a
//! message's text says beyond itself: who it mentions, what it links.

use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// The longest message, in characters.
pub const MAX_CHARS: usize = 4000;
/// URLs of one message passed on in `message.sent`.
pub const MAX_URLS: usize = 10;

/// The longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 64;

/// Characters that are not seen but change what is: controls (Unicode
/// category Cc) and format characters (Cf: zero-width spaces and joiners,
/// bidirectional overrides and isolates, the byte order mark).
fn is_unseen(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format
    )
}

/// Something to see: not unseen, not white space.
fn is_visible(c: char) -> bool {
    !is_unseen(c) && !c.is_whitespace()
}

/// What a message may not hold: controls (Cc) but tab, line feed and
/// carriage return.
fn is_refused_in_message(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// A room name as it is kept and shown (Unicode NFC, trimmed), and the key
/// it is unique by (also lower-cased), or what is wrong with it. As sent, a
/// name is 1–64 characters with no control or format character, so it can
/// neither look empty nor reorder the text around it (Unicode TR #36,
/// §2.2), and something to see. [`room_name_pattern`] says the same.
pub fn room_name(raw: &str) -> Result<(String, String), Vec<String>> {
    let mut problems = Vec::new();
    let length = raw.chars().count();
    if !(1..=MAX_ROOM_NAME_CHARS).contains(&length) {
        problems.push(format!(
            "must be 1 to {MAX_ROOM_NAME_CHARS} characters long"
        ));
    }
    if raw.chars().any(is_unseen) {
        problems.push(
            "may not contain control or invisible formatting characters (zero-width, bidirectional)"
                .to_owned(),
        );
    }
    if length > 0 && !raw.chars().any(is_visible) {
        problems.push("must have something to see, not only spaces".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let name: String = raw.nfc().collect::<String>().trim().to_owned();
    let key = name.to_lowercase();
    Ok((name, key))
}

/// A message's text as it is kept (Unicode NFC, line breaks as `\n`,
/// trimmed), or what is wrong with it. As sent: 1–4,000 characters, no
/// control character but tab and line breaks, and something to see — not
/// only spaces and format characters. Format characters are allowed inside
/// (emoji sequences and right-to-left text need them); clients show each
/// message isolated, so they cannot reorder what is around it.
/// [`message_pattern`] says the same.
pub fn message_text(raw: &str) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    if raw.chars().count() > MAX_CHARS {
        problems.push(format!("must be at most {MAX_CHARS} characters long"));
    }
    if raw.chars().any(is_refused_in_message) {
        problems.push("may not contain control characters".to_owned());
    }
    if !raw.chars().any(is_visible) {
        problems.push("may not be empty".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(raw
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .nfc()
        .collect::<String>()
        .trim()
        .to_owned())
}

/// [`room_name`]'s rule as a regular expression (JSON Schema's `pattern`;
/// the length is its `minLength` and `maxLength`), made from the very
/// functions the rule applies.
pub fn room_name_pattern() -> &'static str {
    static PATTERN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let allowed = class_without(is_unseen);
        format!(
            "^{allowed}*{}{allowed}*$",
            class_without(|c| !is_visible(c))
        )
    })
}

/// [`message_text`]'s rule as a regular expression, as [`room_name_pattern`].
pub fn message_pattern() -> &'static str {
    static PATTERN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let allowed = class_without(is_refused_in_message);
        format!(
            "^{allowed}*{}{allowed}*$",
            class_without(|c| !is_visible(c))
        )
    })
}

/// `[^…]`: every character but those `refused` says, as ranges. Characters
/// of the Basic Multilingual Plane are written `\uXXXX`, the others as
/// themselves: both mean the same to ECMA-262 (with the `u` flag), Python
/// and Rust's regex engines.
fn class_without(refused: impl Fn(char) -> bool) -> String {
    let mut class = String::from("[^");
    let mut run: Option<(char, char)> = None;
    let write = |class: &mut String, (first, last): (char, char)| {
        let one = |c: char| {
            if (c as u32) <= 0xFFFF {
                format!("\\u{:04X}", c as u32)
            } else {
                c.to_string()
            }
        };
        class.push_str(&one(first));
        if last != first {
            class.push('-');
            class.push_str(&one(last));
        }
    };
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        if refused(c) {
            run = match run {
                Some((first, last)) if last as u32 + 1 == c as u32 => Some((first, c)),
                Some(done) => {
                    write(&mut class, done);
                    Some((c, c))
                }
                None => Some((c, c)),
            };
        }
    }
    if let Some(done) = run {
        write(&mut class, done);
    }
    class.push(']');
    class
}

/// Usernames after `@` (accounts' rule: 3–32 of `a-z`, `0-9`, `_`), each once,
/// in order of first mention. An `@` inside a word (`a@b.c`, an e-mail
/// address) or inside a link (`https://social.example/@carol`) is no mention.
pub fn mentions(text: &str) -> Vec<String> {
    let links = link_spans(text);
    let in_link = |at: usize| {
        links
            .iter()
            .any(|(start, end)| (*start..*end).contains(&at))
    };
    let mut found: Vec<String> = Vec::new();
    let mut previous = ' ';
    for (at, c) in text.char_indices() {
        let starts_mention =
            c == '@' && !(previous.is_alphanumeric() || previous == '_') && !in_link(at);
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

/// `http` and `https` URLs, each once (at most [`MAX_URLS`]), as [`link_spans`] finds them.
pub fn urls(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (start, end) in link_spans(text) {
        let Ok(url) = url::Url::parse(&text[start..end]) else {
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

/// Where the links of `text` are (byte ranges): from `http://` or
/// `https://` to the next white space, without the punctuation that ends a
/// sentence after it (`.` `,` `;` `:` `!` `?` quotes) or a bracket that
/// closes one opened before the link — `…/Rust_(language)` keeps its `)`,
/// `(see …/page)` loses it.
pub fn link_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| text[from..].find(scheme))
        .min()
    {
        let start = from + found;
        let word_end = text[start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |end| start + end);
        let end = start + trim_link(&text[start..word_end]).len();
        spans.push((start, end));
        from = word_end;
    }
    spans
}

/// `link` without what ends the sentence around it.
fn trim_link(mut link: &str) -> &str {
    loop {
        let Some(last) = link.chars().last() else {
            return link;
        };
        let opener = match last {
            ')' => '(',
            ']' => '[',
            '}' => '{',
            '>' => '<',
            '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '*' => {
                link = &link[..link.len() - 1];
                continue;
            }
            _ => return link,
        };
        let opened = link.matches(opener).count();
        let closed = link.matches(last).count();
        if opened >= closed {
            return link;
        }
        link = &link[..link.len() - 1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_normalised_and_unique_whatever_their_case_or_composition() {
        let composed = room_name("  Général ").unwrap();
        let decomposed = room_name("Ge\u{301}ne\u{301}ral").unwrap();
        assert_eq!(composed.0, "Général");
        assert_eq!(composed.0, decomposed.0, "one name however it was typed");
        assert_eq!(room_name("GÉNÉRAL").unwrap().1, composed.1);
        assert_eq!(room_name("日本語のへや 🎉").unwrap().0, "日本語のへや 🎉");
        assert_eq!(room_name(&"x".repeat(64)).unwrap().0.len(), 64);
    }

    #[test]
    fn the_patterns_say_what_the_rules_say() {
        let name = regex::Regex::new(room_name_pattern()).unwrap();
        let message = regex::Regex::new(message_pattern()).unwrap();
        for text in [
            "general",
            "  Général ",
            "日本語のへや 🎉",
            "",
            " ",
            "\u{200b}",
            "a\u{202e}b",
            "tab\there",
            "line\nbreak",
            " \n\t ",
            "\u{200b} \u{2060}",
            "bell\u{7}",
            "nul\u{0}",
            "e\u{301}",
            "👨\u{200d}👩\u{200d}👧",
            "\u{e0001}tag",
            "x\r\ny",
            "\u{85}",
            "\u{a0}",
            "\u{3000}x",
            "\u{1d173}",
            "ok\u{feff}",
        ] {
            let chars = text.chars().count();
            assert_eq!(
                room_name(text).is_ok(),
                name.is_match(text) && (1..=MAX_ROOM_NAME_CHARS).contains(&chars),
                "room name {text:?}"
            );
            assert_eq!(
                message_text(text).is_ok(),
                message.is_match(text) && chars <= MAX_CHARS,
                "message {text:?}"
            );
        }
    }

    #[test]
    fn room_names_that_look_empty_or_reorder_text_are_refused() {
        for bad in [
            "",
            "   ",
            "\u{200b}\u{200b}",
            "evil\u{202e}gpj.exe",
            "a\u{2066}b",
            "\u{feff}bom",
            "tab\there",
            "nul\u{0}",
            &"x".repeat(65),
        ] {
            assert!(room_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_keep_their_lines_and_emoji_and_lose_what_cannot_be_seen_alone() {
        assert_eq!(
            message_text(" one\r\ntwo\rthree ").unwrap(),
            "one\ntwo\nthree"
        );
        assert_eq!(message_text("e\u{301}").unwrap(), "é");
        // A family emoji is joined by zero-width joiners: format characters inside are fine.
        let family = "👨\u{200d}👩\u{200d}👧";
        assert_eq!(message_text(family).unwrap(), family);
        assert_eq!(
            message_text("שלום \u{200f}world").unwrap(),
            "שלום \u{200f}world"
        );
        for bad in [
            "",
            " \n\t ",
            "\u{200b}",
            "\u{200b} \u{2060}",
            "bell\u{7}",
            "nul\u{0}",
            &"x".repeat(4001),
        ] {
            assert!(message_text(bad).is_err(), "{bad:?}");
        }
        assert!(message_text(&"x".repeat(4000)).is_ok());
    }

    #[test]
    fn mentions_are_found_once_each_in_order_and_lowercased() {
        assert_eq!(
            mentions("@Bob and @carol, then @bob again; mail a@b.com; @x is too short"),
            vec!["bob", "carol"]
        );
    }

    #[test]
    fn an_at_sign_inside_a_link_or_an_address_is_no_mention() {
        assert_eq!(
            mentions("this thread https://social.example/@carol/1099 is for @bob"),
            ["bob"]
        );
        assert_eq!(
            mentions("mail carol@example.com or see http://x.test/?u=@dave, @erin!"),
            ["erin"]
        );
        assert_eq!(mentions("(@frank) and https://a.test/@gina"), ["frank"]);
    }

    #[test]
    fn balanced_brackets_stay_in_a_link_and_closing_ones_around_it_go() {
        for (text, url) in [
            (
                "read http://example.org/wiki/Rust_(language) first",
                "http://example.org/wiki/Rust_(language)",
            ),
            (
                "(see http://example.org/wiki/Rust_(language))",
                "http://example.org/wiki/Rust_(language)",
            ),
            ("(see http://example.org/page)", "http://example.org/page"),
            ("[http://example.org/a_[b]]", "http://example.org/a_[b]"),
            ("<http://example.org/x>", "http://example.org/x"),
            ("\"http://example.org/q?a=1\".", "http://example.org/q?a=1"),
            ("is it http://example.org/?!", "http://example.org/"),
            ("http://example.org/path/*", "http://example.org/path/"),
        ] {
            assert_eq!(urls(text), [url], "{text}");
        }
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
