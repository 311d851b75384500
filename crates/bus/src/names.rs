//! Names the brokers accept.

/// `name` with every character but ASCII letters, digits, `-` and `_` made
/// `_`: safe as a NATS stream, consumer or subject token, and as an SNS topic
/// or SQS queue name. Infrastructure code names resources with it too.
pub fn token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What every name a broker bus gives begins with: `dozen`, or
/// `dozen-<namespace>` for a `namespace=` in `BUS_URL`. No root is a prefix
/// of another's names: a separator always follows it.
pub(crate) fn root(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("dozen-{namespace}"),
        None => "dozen".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_keep_letters_digits_dashes_and_underscores_only() {
        assert_eq!(super::token("user.signed_up"), "user_signed_up");
        assert_eq!(super::token("chat-cards_2"), "chat-cards_2");
        assert_eq!(super::token("a b/c>*"), "a_b_c__");
    }
}
