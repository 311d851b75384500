//! The admin process `notifier report`: the counts of a period, e-mailed.

use std::time::Duration;

use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::mail::{Mail, Mailer};
use crate::store::{self, Count};

/// The report of the days that `period`, ending now, touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub totals: Vec<(Count, i64)>,
}

impl Report {
    pub async fn gather(
        db: &AnyPool,
        period: Duration,
        now: OffsetDateTime,
    ) -> Result<Self, sqlx::Error> {
        let start = now - period;
        let day = |t: OffsetDateTime| t.date().to_string();
        let (from, to) = (day(start), day(now));
        let totals = store::totals(db, &from, &to).await?;
        Ok(Self { from, to, totals })
    }

    pub fn text(&self) -> String {
        let mut text = format!("Dozen, {} to {} (UTC days):\n\n", self.from, self.to);
        for (counter, total) in &self.totals {
            text.push_str(&format!("{:>10}: {total}\n", counter.name()));
        }
        text
    }

    pub async fn send(&self, mailer: &Mailer, to: &str) -> Result<(), crate::mail::MailError> {
        let mail = Mail {
            id: format!("report.{}.{}.{}", self.from, self.to, uuid_like()),
            to: to.to_owned(),
            subject: format!("Dozen report, {} to {}", self.from, self.to),
            body: self.text(),
        };
        mailer.send(&mail).await
    }
}

/// A report may be sent more than once for one period on purpose: each gets its own id.
fn uuid_like() -> String {
    format!("{:x}", OffsetDateTime::now_utc().unix_timestamp_nanos())
}
