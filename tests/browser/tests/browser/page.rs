//! One person's browser: a Chromium window of its own (its own profile, so
//! its own login), and what a test does in it.

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::ChromeDriver;

/// How long anything may take to show.
pub const WAIT: Duration = Duration::from_secs(15);

/// WebDriver's Enter key, and Shift (pressed until the next NULL key).
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const RELEASE: &str = "\u{E000}";

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    pub name: &'static str,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A new window on `base` (the system's address), as `name`.
    pub async fn open(driver: &ChromeDriver, base: &str, name: &'static str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let browser = Self {
            client,
            name,
            base: base.to_owned(),
            _profile: profile,
        };
        browser.goto("/").await;
        browser
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: {script}: {e}", self.name))
    }

    /// Waits until `script` answers something truthy; that answer.
    pub async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.until_within(what, script, args, WAIT).await
    }

    pub async fn until_within(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.js(script, args.clone()).await;
            let truthy = !matches!(&answer, Value::Null | Value::Bool(false))
                && answer != json!("")
                && answer != json!(0);
            if truthy {
                return answer;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText", vec![]).await;
                panic!(
                    "{}: no {what} within {within:?}; the page says:\n{page}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The element `css`, waiting for it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText", vec![]).await;
                panic!(
                    "{}: no {css} within {WAIT:?}; the page says:\n{page}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Types into `css` (WebDriver keys: [`ENTER`], [`SHIFT`]…).
    pub async fn type_into(&self, css: &str, keys: &str) {
        loop {
            match self.find(css).await.send_keys(keys).await {
                Err(error) if is_stale(&error) => continue,
                done => return done.unwrap(),
            }
        }
    }

    pub async fn click(&self, css: &str) {
        loop {
            match self.find(css).await.click().await {
                Err(error) if is_stale(&error) => continue,
                done => return done.unwrap(),
            }
        }
    }

    /// Clicks the link or button whose text (or accessible name) is `text`.
    pub async fn click_text(&self, text: &str) {
        let text = xpath_literal(text);
        let xpath = format!(
            "//*[self::a or self::button][normalize-space(.)={text} or @aria-label={text}]"
        );
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::XPath(&xpath)).await {
                match element.click().await {
                    Err(error) if is_stale(&error) => continue,
                    done => return done.unwrap(),
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: nothing to click says {text:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The page as a PNG in `folder/name.png`.
    pub async fn screenshot(&self, folder: &std::path::Path, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
    }

    /// Whether a JavaScript dialog (alert, confirm) is open.
    pub async fn has_dialog(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    // --- what people do -----------------------------------------------------

    pub async fn sign_up(&self, username: &str) {
        self.click_text("Create an account").await;
        self.type_into("#username", username).await;
        self.type_into("#email", &format!("{username}@example.com"))
            .await;
        self.type_into("#password", "correct horse battery staple")
            .await;
        self.click_text("Sign up").await;
        self.until_signed_in(username).await;
    }

    pub async fn log_in(&self, login: &str) {
        self.type_into("#login", login).await;
        self.type_into("#password", &format!("correct horse battery staple{ENTER}"))
            .await;
        let username = login.split('@').next().unwrap();
        self.until_signed_in(username).await;
    }

    async fn until_signed_in(&self, username: &str) {
        self.until(
            "the signed-in page",
            "return document.querySelector('.who strong')?.textContent === arguments[0] \
             && document.querySelector('#your-rooms') !== null",
            vec![json!(username)],
        )
        .await;
    }

    pub async fn create_room(&self, name: &str) {
        self.type_into("#new-room-name", &format!("{name}{ENTER}"))
            .await;
        self.until_in_room(name).await;
    }

    /// Reloads (so the list is fresh), joins `name` from Discover, and opens it.
    pub async fn join_room(&self, name: &str) {
        self.reload().await;
        self.click_text(&format!("Join {name}")).await;
        self.until_in_room(name).await;
    }

    pub async fn open_room(&self, name: &str) {
        let xpath = format!(
            "//a[contains(@class, 'room-link')][span[@class='room-name' and normalize-space(.)={}]]",
            xpath_literal(&format!("# {name}"))
        );
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(link) = self.client.find(Locator::XPath(&xpath)).await {
                link.click().await.unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no room {name} listed",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.until_in_room(name).await;
    }

    pub async fn until_in_room(&self, name: &str) {
        self.until(
            &format!("room {name}"),
            "return document.querySelector('#room-title')?.textContent === '# ' + arguments[0] \
             && document.querySelector('.presence')?.textContent.includes('online')",
            vec![json!(name)],
        )
        .await;
    }

    /// Types `text` in the composer and presses Enter.
    pub async fn say(&self, text: &str) {
        self.type_into("#composer-text", &format!("{text}{ENTER}"))
            .await;
    }

    /// The texts of the messages shown, oldest first (pending ones included).
    pub async fn messages(&self) -> Vec<String> {
        let texts = self
            .js(
                "return [...document.querySelectorAll('.messages > li .text')].map(e => e.textContent)",
                vec![],
            )
            .await;
        serde_json::from_value(texts).unwrap()
    }

    /// Waits until a message whose text is `text` shows, confirmed by the server.
    pub async fn until_message(&self, text: &str) -> Duration {
        let started = Instant::now();
        self.until(
            &format!("message {text:?}"),
            "return [...document.querySelectorAll('.messages > li[data-id] .text')]\
             .some(e => e.textContent === arguments[0])",
            vec![json!(text)],
        )
        .await;
        started.elapsed()
    }

    /// The unread badge of room `name` in the sidebar (0 without one).
    pub async fn unread(&self, name: &str) -> u64 {
        let badge = self
            .js(
                "const link = [...document.querySelectorAll('.room-link')]\
                   .find(a => a.querySelector('.room-name').textContent === '# ' + arguments[0]);\
                 return link?.querySelector('.badge')?.textContent ?? '0'",
                vec![json!(name)],
            )
            .await;
        badge.as_str().unwrap().parse().unwrap()
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}

/// The element was found, then replaced before it was used: the page
/// renders a message again in place when the server's copy arrives (a live
/// edit, a card). Finding it again is right.
fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    matches!(
        error,
        fantoccini::error::CmdError::Standard(e)
            if e.error == fantoccini::error::ErrorStatus::StaleElementReference
    )
}
