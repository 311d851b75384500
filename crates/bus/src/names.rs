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

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_keep_letters_digits_dashes_and_underscores_only() {
        assert_eq!(super::token("user.signed_up"), "user_signed_up");
        assert_eq!(super::token("chat-cards_2"), "chat-cards_2");
        assert_eq!(super::token("a b/c>*"), "a_b_c__");
    }
}
