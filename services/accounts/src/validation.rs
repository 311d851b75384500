//! Checking what callers send, field by field.

pub use dozen_runtime::http::FieldErrors;

/// A username is [`USERNAME_PATTERN`]; each part of the rule broken is said.
pub fn check_username(errors: &mut FieldErrors, username: &str) {
    let length = username.chars().count();
    if !(3..=32).contains(&length) {
        errors.add("username", "must be 3 to 32 characters long");
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errors.add(
            "username",
            "may contain only lowercase letters a-z, digits and underscores",
        );
    }
}

/// How many characters (Unicode code points, as JSON Schema counts them) a
/// password has.
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 10..=128;

pub fn check_password(errors: &mut FieldErrors, password: &str) {
    let length = password.chars().count();
    if !PASSWORD_LENGTH.contains(&length) {
        errors.add("password", "must be 10 to 128 characters long");
    }
}

/// What an e-mail address must match, in the dialect Rust's `regex`, ECMA-262
/// and Python share, so that the OpenAPI document states the very rule this
/// code applies: a local part of RFC 5322 `atext` in dot-separated runs, `@`,
/// then dot-separated labels of letters, digits and inner hyphens, the last
/// one two or more letters. Case is free (the address is kept in lower case).
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$";
/// RFC 5321 §4.5.3.1.3: a path holds at most 256 octets, the address 254.
pub const EMAIL_MAX_LENGTH: usize = 254;
/// What a username must match (also in the OpenAPI document).
pub const USERNAME_PATTERN: &str = "^[a-z0-9_]{3,32}$";

/// The e-mail address in lower case, when it matches [`EMAIL_PATTERN`] and
/// is at most [`EMAIL_MAX_LENGTH`] characters.
pub fn check_email(errors: &mut FieldErrors, email: &str) -> String {
    if !looks_like_email(email) {
        errors.add(
            "email",
            "must be an e-mail address such as name@example.com",
        );
    }
    email.to_ascii_lowercase()
}

fn looks_like_email(email: &str) -> bool {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern =
        PATTERN.get_or_init(|| regex::Regex::new(EMAIL_PATTERN).expect("a valid pattern"));
    email.chars().count() <= EMAIL_MAX_LENGTH && pattern.is_match(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_looking_addresses_pass_and_others_fail() {
        for good in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x_y@sub-domain.example.io",
            "Alice@Example.COM",
        ] {
            assert!(looks_like_email(good), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a b@example.com",
            "a@@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example.123",
            "a@exa_mple.com",
            " a@example.com",
            "a@example.com\n",
            "a.@example.com",
            "a@example.com.",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }

    #[test]
    fn usernames_follow_the_documented_rule() {
        for (name, ok) in [
            ("bob", true),
            ("ab", false),
            ("Bob", false),
            ("bob_42", true),
            ("bob-42", false),
        ] {
            let mut errors = FieldErrors::default();
            check_username(&mut errors, name);
            assert_eq!(errors.is_empty(), ok, "{name}");
        }
        let mut errors = FieldErrors::default();
        check_username(&mut errors, &"a".repeat(33));
        assert!(!errors.is_empty());
    }

    #[test]
    fn passwords_are_counted_in_characters_not_bytes() {
        let mut errors = FieldErrors::default();
        check_password(&mut errors, &"é".repeat(10));
        assert!(errors.is_empty());
        check_password(&mut errors, &"x".repeat(129));
        assert!(!errors.is_empty());
    }
}
