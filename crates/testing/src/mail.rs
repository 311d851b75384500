//! Mail that a test's SMTP server (or a `file://` mailer) kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ChildServer;

/// A mail the SMTP server kept: its headers and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.raw
            .lines()
            .take_while(|line| !line.is_empty())
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
    }

    pub fn body(&self) -> String {
        self.raw
            .split_once("\r\n\r\n")
            .or_else(|| self.raw.split_once("\n\n"))
            .map(|(_, body)| body.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
}

/// Every mail in a Maildir (or a folder of `.eml` files).
pub fn mails_in(folder: &Path) -> Vec<Received> {
    let mut files: Vec<PathBuf> = ["new", "cur", ""]
        .iter()
        .filter_map(|sub| std::fs::read_dir(folder.join(sub)).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|raw| Received { raw })
        .collect()
}

/// The Maildir of an SMTP server started by the test.
pub fn maildir(smtp: &ChildServer) -> PathBuf {
    smtp.folder().join("mail")
}

/// Waits until `count` mails are in `folder`; fails after `within`.
pub async fn wait_for_mails(folder: &Path, count: usize, within: Duration) -> Vec<Received> {
    let deadline = Instant::now() + within;
    loop {
        let mails = mails_in(folder);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} mails arrived",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
