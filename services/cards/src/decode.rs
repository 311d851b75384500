//! A page's bytes as text, in the encoding the page declares, as browsers
//! decide it (WHATWG HTML, "Determining the character encoding"): a byte
//! order mark first, then the `charset` of the `Content-Type` header, then a
//! `<meta charset>` or `<meta http-equiv="Content-Type">` in the first 1024
//! bytes; UTF-8 when none says. The decoding itself is `encoding_rs`'s
//! (the WHATWG Encoding Standard).

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use scraper::{Html, Selector};

/// How far into the page a `<meta>` declaration is looked for.
const PRESCAN_BYTES: usize = 1024;

/// `body` decoded; bytes that are not valid in the encoding become U+FFFD.
pub fn decode(body: &[u8], content_type: &str) -> String {
    let encoding = Encoding::for_bom(body)
        .map(|(encoding, _)| encoding)
        .or_else(|| charset(content_type).and_then(|l| Encoding::for_label(l.as_bytes())))
        .or_else(|| declared_in_meta(&body[..body.len().min(PRESCAN_BYTES)]))
        .unwrap_or(UTF_8);
    // `decode` honours a BOM again and drops it.
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// The `charset` parameter of a `Content-Type` value (RFC 9110 §8.3).
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The encoding a `<meta>` of the page's start declares. The start is read
/// as windows-1252 (every byte a character, ASCII where it matters) by a
/// real HTML parser. A declared UTF-16 means UTF-8: the bytes were read as
/// ASCII to find it, so they are not UTF-16.
fn declared_in_meta(start: &[u8]) -> Option<&'static Encoding> {
    let (text, _, _) = WINDOWS_1252.decode(start);
    let document = Html::parse_document(&text);
    let metas = Selector::parse("meta").expect("a valid selector");
    let label = document.select(&metas).find_map(|meta| {
        let meta = meta.value();
        if let Some(label) = meta.attr("charset") {
            return Some(label.trim().to_owned());
        }
        let is_content_type = meta
            .attr("http-equiv")
            .is_some_and(|h| h.trim().eq_ignore_ascii_case("content-type"));
        if is_content_type {
            return meta
                .attr("content")
                .and_then(|c| charset(&format!("x;{c}")));
        }
        None
    })?;
    let encoding = Encoding::for_label(label.as_bytes())?;
    Some(if encoding == UTF_16BE || encoding == UTF_16LE {
        UTF_8
    } else {
        encoding
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Café crème" in windows-1252.
    const LATIN: &[u8] = b"Caf\xe9 cr\xe8me";

    fn page(head: &[u8]) -> Vec<u8> {
        let mut page = b"<!doctype html><html><head>".to_vec();
        page.extend_from_slice(head);
        page.extend_from_slice(b"<title>");
        page.extend_from_slice(LATIN);
        page.extend_from_slice(b"</title></head></html>");
        page
    }

    #[test]
    fn the_encoding_is_taken_from_a_meta_declaration_in_any_of_its_forms() {
        for head in [
            &b"<meta charset=\"windows-1252\">"[..],
            b"<meta charset=windows-1252>",
            b"<META CHARSET='ISO-8859-1'>",
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">",
            b"<meta content='text/html;charset=latin1' http-equiv='content-type'>",
        ] {
            let text = decode(&page(head), "text/html");
            assert!(
                text.contains("Café crème"),
                "{}: {text}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn the_header_speaks_before_the_page_and_a_bom_before_both() {
        let latin = page(b"");
        assert!(decode(&latin, "text/html; charset=windows-1252").contains("Café crème"));
        assert!(decode(&latin, "text/html; Charset=\"ISO-8859-1\"").contains("Café crème"));
        // The header wins over a wrong declaration in the page.
        let lying = page(b"<meta charset=utf-8>");
        assert!(decode(&lying, "text/html; charset=windows-1252").contains("Café crème"));
        // A byte order mark wins over everything.
        let mut utf16: Vec<u8> = vec![0xff, 0xfe];
        for unit in "<title>Ça va</title>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(decode(&utf16, "text/html; charset=windows-1252").contains("Ça va"));
        let mut utf8 = b"\xef\xbb\xbf".to_vec();
        utf8.extend_from_slice("<title>naïve</title>".as_bytes());
        assert_eq!(
            decode(&utf8, "text/html; charset=windows-1252"),
            "<title>naïve</title>"
        );
    }

    #[test]
    fn other_scripts_decode_and_utf8_is_the_default() {
        // "日本語" in Shift_JIS and in EUC-KR's cousin set: the declared encoding decides.
        let mut sjis = b"<meta charset=shift_jis><title>".to_vec();
        sjis.extend_from_slice(b"\x93\xfa\x96\x7b\x8c\xea");
        sjis.extend_from_slice(b"</title>");
        assert!(decode(&sjis, "text/html").contains("日本語"));
        assert!(decode("<title>Ünïcödé</title>".as_bytes(), "text/html").contains("Ünïcödé"));
        // Undeclared bytes that are not UTF-8 become U+FFFD, never a panic.
        assert!(decode(LATIN, "text/html").contains('\u{fffd}'));
        // A meta declaring UTF-16 in an ASCII page means UTF-8.
        assert!(decode(
            "<meta charset=utf-16><title>é</title>".as_bytes(),
            "text/html"
        )
        .contains('é'));
    }
}
