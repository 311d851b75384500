//! Checking what callers send, field by field.

pub use dozen_runtime::http::FieldErrors;

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

pub fn check_password(errors: &mut FieldErrors, password: &str) {
    let length = password.chars().count();
    if !(10..=128).contains(&length) {
        errors.add("password", "must be 10 to 128 characters long");
    }
}

/// The e-mail address, trimmed and lowercased, when it looks real:
/// one `@`, a plausible local part, and a domain of at least two dot-separated labels.
pub fn check_email(errors: &mut FieldErrors, email: &str) -> String {
    let email = email.trim().to_ascii_lowercase();
    if !looks_like_email(&email) {
        errors.add(
            "email",
            "must be an e-mail address such as name@example.com",
        );
    }
    email
}

fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    email.len() <= 254 && local_ok && domain_ok
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
