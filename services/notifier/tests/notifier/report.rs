//! `notifier report`: the period's counts, e-mailed, as a one-off admin process.

use std::time::Duration;

use dozen_events::{CardCreated, MessageSent, UserSignedUp};
use dozen_testing::ChildServer;

use crate::helpers::{maildir, smtp_url, spawn_notifier, wait_for_mails};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_process_mails_the_counts_of_the_period_and_prints_them() {
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    for n in 0..3 {
        notifier
            .publish(&UserSignedUp {
                user_id: format!("u-{n}"),
                username: format!("user{n}"),
                email: format!("user{n}@example.com"),
                signed_up_at: "2026-11-26T10:00:00Z".into(),
            })
            .await;
    }
    wait_for_mails(&maildir(&smtp), 3, Duration::from_secs(30)).await;
    notifier
        .publish(&MessageSent {
            message_id: "m-1".into(),
            room_id: "r-1".into(),
            author_id: "u-0".into(),
            author_username: "user0".into(),
            text: "hi @user1".into(),
            mentions: vec!["user1".into()],
            urls: vec![],
            sent_at: "2026-11-26T10:05:00Z".into(),
        })
        .await;
    notifier
        .publish(&CardCreated {
            message_id: "m-1".into(),
            room_id: "r-1".into(),
            url: "https://example.com/".into(),
            title: "Example".into(),
            description: None,
            image: None,
            created_at: "2026-11-26T10:05:01Z".into(),
        })
        .await;
    wait_for_mails(&maildir(&smtp), 4, Duration::from_secs(30)).await;
    // The card has no mail to wait for: wait for its count.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let cards: Option<i64> =
            sqlx::query_scalar("SELECT count FROM daily_counts WHERE name = 'cards'")
                .fetch_optional(&notifier.db)
                .await
                .unwrap();
        if cards == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the card was counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_notifier"))
        .args(["report", "--period", "24h"])
        .env_clear()
        .env("REPORT_TO", "boss@example.com")
        .env("DATABASE_URL", &notifier.database.url)
        .env("SMTP_URL", smtp_url(&smtp))
        .env("LOG_FORMAT", "json")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in ["signups: 3", "messages: 1", "mentions: 1", "cards: 1"] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    let mails = wait_for_mails(&maildir(&smtp), 5, Duration::from_secs(30)).await;
    let report = mails
        .iter()
        .find(|m| m.header("To").as_deref() == Some("boss@example.com"))
        .expect("the report was mailed");
    assert!(report
        .header("Subject")
        .unwrap()
        .starts_with("Dozen report"));
    assert!(report.body().contains("signups: 3"), "{}", report.raw);
}

#[tokio::test]
async fn a_bad_smtp_url_stops_the_worker_with_the_variable_named() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_notifier"))
        .arg("work")
        .env_clear()
        .env("PORT", "0")
        .env("DATABASE_URL", "sqlite://unused.db")
        .env("BUS_URL", "sqlite://unused-bus.db")
        .env("SMTP_URL", "mailto:someone")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SMTP_URL"), "{stderr}");
}
