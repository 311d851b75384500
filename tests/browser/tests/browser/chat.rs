//! Two people, alice and bob, chat in their browsers: everything the UI
//! promises, on the embedded stack and on PostgreSQL + NATS + Redis.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::page::{ENTER, RELEASE, SHIFT, WAIT};
use crate::{axe_source, screenshots, Browser, ChromeDriver, Stack, System};

/// Pages for cards to preview, on a port of the test's own: an honest
/// one, and one whose title, description and image try to inject.
async fn serve_pages() -> String {
    let app = Router::new()
        .route(
            "/article",
            get(|| async {
                Html(
                    r#"<!doctype html><html><head>
                    <meta property="og:title" content="Twelve factors, one browser">
                    <meta property="og:description" content="A page the test serves.">
                    <meta property="og:image" content="/cover.svg">
                    </head><body>hello</body></html>"#,
                )
            }),
        )
        .route(
            "/trap",
            get(|| async {
                Html(
                    r#"<!doctype html><html><head>
                    <title>&lt;img src=x onerror=alert(3)&gt;&lt;b&gt;bold&lt;/b&gt;</title>
                    <meta name="description" content="<script>alert(4)</script>">
                    <meta property="og:image" content="javascript:alert(5)">
                    </head><body>trap</body></html>"#,
                )
            }),
        )
        .route(
            "/cover.svg",
            get(|| async {
                (
                    [("content-type", "image/svg+xml")],
                    r##"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#1d4ed8"/></svg>"##,
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_their_browsers_on_the_embedded_stack() {
    two_people_chat_in_their_browsers(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_their_browsers_on_postgres_nats_and_redis() {
    two_people_chat_in_their_browsers(Stack::PostgresNatsRedis).await;
}

/// One system and two browsers at a time: two cores run one of them well.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn two_people_chat_in_their_browsers(stack: Stack) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(axe) = axe_source() else { return };
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let Some(system) = System::start(stack).await else {
        return;
    };
    let shots = screenshots(stack);
    let pages = serve_pages().await;
    let base = system.url("");
    let alice = Browser::open(&driver, &base, "alice").await;
    let bob = Browser::open(&driver, &base, "bob").await;

    step("the login page is accessible");
    alice.find("#login").await;
    alice.screenshot(&shots, "login").await;
    assert_accessible(&alice, &axe, "the login page").await;

    step("both sign up; alice creates a room and bob joins it");
    alice.sign_up("alice").await;
    bob.sign_up("bob").await;
    alice.screenshot(&shots, "rooms").await;
    assert_accessible(&alice, &axe, "the room list").await;
    alice.create_room("general").await;
    bob.join_room("general").await;

    step("presence: both online, in each window");
    for browser in [&alice, &bob] {
        browser
            .until(
                "2 online",
                "return document.querySelector('.presence').textContent.startsWith('2 online')",
                vec![],
            )
            .await;
    }

    step("alice's message shows at once for her, and live for bob within a second");
    alice.say("hello bob").await;
    let mine = alice
        .js(
            "return document.querySelector('.messages > li:last-child .text').textContent",
            vec![],
        )
        .await;
    assert_eq!(
        mine, "hello bob",
        "shown at once, before the server answered or not"
    );
    let took = bob.until_message("hello bob").await;
    eprintln!("[{stack:?}] alice → bob: {took:?}");
    assert!(took < Duration::from_secs(1), "bob saw it after {took:?}");
    alice.until_message("hello bob").await;
    assert_eq!(
        alice
            .messages()
            .await
            .iter()
            .filter(|t| *t == "hello bob")
            .count(),
        1,
        "her own copy and the server's are one"
    );

    step("keyboard: Shift+Enter makes a new line, Enter sends");
    bob.type_into(
        "#composer-text",
        &format!("line one{SHIFT}{ENTER}{RELEASE}line two{ENTER}"),
    )
    .await;
    alice.until_message("line one\nline two").await;

    step("a link gets its card, live");
    alice.say(&format!("read {pages}/article please")).await;
    let card = bob
        .until(
            "the card",
            "return document.querySelector('.card .card-title')?.textContent",
            vec![],
        )
        .await;
    assert_eq!(card, "Twelve factors, one browser");
    let image = bob
        .js(
            "const img = document.querySelector('.card img'); return img && [img.getAttribute('loading'), img.src]",
            vec![],
        )
        .await;
    assert_eq!(image, json!(["lazy", format!("{pages}/cover.svg")]));

    step("@mentions of the reader are highlighted");
    alice.say("@bob have a look").await;
    bob.until_message("@bob have a look").await;
    let marked = bob
        .js(
            "return [...document.querySelectorAll('.messages mark.mention-me')].map(m => m.textContent)",
            vec![],
        )
        .await;
    assert_eq!(marked, json!(["@bob"]));
    bob.screenshot(&shots, "room").await;

    step("bob's typing shows in alice's window, then expires");
    bob.type_into("#composer-text", "thinking about it").await;
    alice
        .until(
            "bob typing",
            "return document.querySelector('.typing').textContent === 'bob is typing…'",
            vec![],
        )
        .await;
    alice.screenshot(&shots, "typing").await;
    alice
        .until_within(
            "the typing line to clear",
            "return document.querySelector('.typing').textContent === ''",
            vec![],
            Duration::from_secs(12),
        )
        .await;
    bob.js(
        "document.querySelector('#composer-text').value = ''",
        vec![],
    )
    .await;
    assert_accessible(&alice, &axe, "a room").await;

    step("alice edits and deletes her message, and bob's window follows");
    edit_last_own_message(&alice, "hello bob", "hello bob, edited").await;
    bob.until_message("hello bob, edited").await;
    bob.until(
        "(edited)",
        "return [...document.querySelectorAll('.messages > li')]\
         .some(li => li.querySelector('.text')?.textContent === 'hello bob, edited' && li.querySelector('.edited'))",
        vec![],
    )
    .await;
    alice.say("this one goes").await;
    bob.until_message("this one goes").await;
    delete_own_message(&alice, "this one goes").await;
    bob.until(
        "the deletion",
        "return ![...document.querySelectorAll('.messages .text')].some(e => e.textContent === 'this one goes')",
        vec![],
    )
    .await;

    step("XSS: markup in messages and cards is text, nothing else");
    let attacks = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script><b>bold</b>",
        "[click](javascript:alert(6)) javascript:alert(7)",
    ];
    for attack in attacks {
        alice.say(attack).await;
    }
    alice.say(&format!("{pages}/trap")).await;
    for attack in attacks {
        bob.until_message(attack).await;
    }
    let title = bob
        .until(
            "the trap's card",
            "return [...document.querySelectorAll('.card .card-title')].map(e => e.textContent)\
             .find(t => t.startsWith('<img'))",
            vec![],
        )
        .await;
    assert_eq!(title, "<img src=x onerror=alert(3)><b>bold</b>");
    for browser in [&alice, &bob] {
        let injected = browser
            .js(
                "return {\
                   images: document.querySelectorAll('.messages .text img, .card-title img').length,\
                   scripts: document.querySelectorAll('main script').length,\
                   bold: document.querySelectorAll('.messages b').length,\
                   javascript: [...document.querySelectorAll('a[href], img[src]')]\
                     .filter(e => /^javascript:/i.test(e.getAttribute('href') ?? e.getAttribute('src'))).length,\
                   trapImages: [...document.querySelectorAll('.card')]\
                     .filter(c => c.textContent.includes('bold') && c.querySelector('img')).length }",
                vec![],
            )
            .await;
        assert_eq!(
            injected,
            json!({"images": 0, "scripts": 0, "bold": 0, "javascript": 0, "trapImages": 0}),
            "{}",
            browser.name
        );
        assert!(
            !browser.has_dialog().await,
            "{}: a dialog opened",
            browser.name
        );
    }

    step("a message in another room raises bob's unread count, which opening the room clears for good");
    alice.create_room("random").await;
    bob.join_room("random").await;
    bob.open_room("general").await;
    alice.say("anyone in random?").await;
    bob.until(
        "an unread count for random",
        "return document.querySelector('.room-link .badge')?.textContent === '1'",
        vec![],
    )
    .await;
    assert_eq!(bob.unread("random").await, 1);
    assert_eq!(bob.unread("general").await, 0);
    bob.open_room("random").await;
    bob.until_message("anyone in random?").await;
    bob.until(
        "no badge",
        "return document.querySelector('.room-link .badge') === null",
        vec![],
    )
    .await;
    // The marker is on the server: a reload (or another browser) sees it cleared.
    tokio::time::sleep(Duration::from_millis(700)).await;
    bob.goto("/#/").await;
    bob.reload().await;
    bob.find("#your-rooms").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.unread("random").await, 0);

    step("older messages load when scrolling up");
    let token = alice
        .js(
            "return JSON.parse(localStorage.getItem('dozen.session')).token",
            vec![],
        )
        .await;
    let token = token.as_str().unwrap();
    let client = reqwest::Client::new();
    let long_name = format!("history-{}", "of-everything-".repeat(4));
    let history: Value = client
        .post(system.url("/api/chat/v1/rooms"))
        .bearer_auth(token)
        .json(&json!({ "name": long_name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history = history["id"].as_str().unwrap();
    for n in 1..=60 {
        let posted = client
            .post(system.url(&format!("/api/chat/v1/rooms/{history}/messages")))
            .bearer_auth(token)
            .json(&json!({ "text": format!("history {n}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 201);
    }
    alice.goto(&format!("/#/rooms/{history}")).await;
    alice.until_in_room(&long_name).await;
    alice.until_message("history 60").await;
    let fits = alice
        .until(
            "the room listed",
            "const bar = document.querySelector('#sidebar');\
             return [...bar.querySelectorAll('.room-name')].some(n => n.textContent.includes('of-everything'))\
               && bar.scrollWidth <= bar.clientWidth",
            vec![],
        )
        .await;
    assert_eq!(fits, true, "a long name is cut, not spilled");
    let first: Vec<String> = (11..=60).map(|n| format!("history {n}")).collect();
    assert_eq!(
        alice.messages().await,
        first,
        "the newest 50, oldest first, at the bottom"
    );
    alice
        .js("document.querySelector('.scroller').scrollTop = 0", vec![])
        .await;
    alice.until_message("history 1").await;
    let all: Vec<String> = (1..=60).map(|n| format!("history {n}")).collect();
    assert_eq!(
        alice.messages().await,
        all,
        "the older ten above, in order, once"
    );

    step("bob closes his window: alice sees 1 online");
    bob.open_room("general").await;
    alice.open_room("general").await;
    alice
        .until(
            "2 online",
            "return document.querySelector('.presence').textContent.startsWith('2 online')",
            vec![],
        )
        .await;
    bob.close().await;
    alice
        .until(
            "1 online",
            "return document.querySelector('.presence').textContent.startsWith('1 online')",
            vec![],
        )
        .await;

    step("bob comes back in a new window and logs in");
    let bob = Browser::open(&driver, &base, "bob").await;
    bob.log_in("bob").await;
    bob.open_room("general").await;
    alice
        .until(
            "2 online",
            "return document.querySelector('.presence').textContent.startsWith('2 online')",
            vec![],
        )
        .await;

    step("kill -9 the chat instance serving bob's stream while alice posts 20 messages");
    alice.goto("/#/").await;
    let serving = instance_serving_one_stream(&system).await;
    bob.until_message("hello bob, edited").await;
    // What the connection line says meanwhile, however briefly.
    bob.js(
        "window.seen = []; const line = document.querySelector('.connection');\
         new MutationObserver(() => window.seen.push(line.hidden ? '' : line.textContent))\
           .observe(line, { attributes: true, childList: true, characterData: true, subtree: true });",
        vec![],
    )
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serving.1),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    alice.open_room("general").await;
    for n in 1..=20 {
        alice.say(&format!("burst {n}")).await;
    }
    alice.until_message("burst 20").await;
    bob.until_within(
        "all 20",
        "return [...document.querySelectorAll('.messages > li[data-id] .text')]\
         .filter(e => e.textContent.startsWith('burst ')).length >= 20",
        vec![],
        Duration::from_secs(30),
    )
    .await;
    let bursts: Vec<String> = bob
        .messages()
        .await
        .into_iter()
        .filter(|t| t.starts_with("burst "))
        .collect();
    let expected: Vec<String> = (1..=20).map(|n| format!("burst {n}")).collect();
    assert_eq!(bursts, expected, "all 20, in order, once");
    let failed = alice
        .js(
            "return document.querySelectorAll('.message.pending').length",
            vec![],
        )
        .await;
    assert_eq!(failed, 0, "every post of alice's was stored");
    bob.until(
        "the stream live again",
        "return document.querySelector('.connection').hidden",
        vec![],
    )
    .await;
    let seen = bob.js("return window.seen", vec![]).await;
    assert!(
        seen.as_array().unwrap().contains(&json!("Reconnecting…")),
        "bob was shown that the stream was reconnecting: {seen}"
    );

    step("on a phone's width the room fills the screen, with a way back");
    alice.client.set_window_size(390, 844).await.unwrap();
    let layout = alice
        .js(
            "const shown = (css) => { const e = document.querySelector(css); return !!e && e.offsetParent !== null; };\
             return { sidebar: shown('#sidebar'), composer: shown('#composer-text'), back: shown('.back'),\
               overflow: document.documentElement.scrollWidth > window.innerWidth }",
            vec![],
        )
        .await;
    assert_eq!(
        layout,
        json!({"sidebar": false, "composer": true, "back": true, "overflow": false})
    );
    alice.screenshot(&shots, "phone").await;
    alice.client.set_window_size(1280, 860).await.unwrap();

    step("a reload keeps alice logged in and in her room; an expired or refused token sends her to the login form");
    alice.reload().await;
    alice.until_in_room("general").await;
    alice
        .js(
            "const s = JSON.parse(localStorage.getItem('dozen.session'));\
             s.expiresAt = Date.now() - 1000; localStorage.setItem('dozen.session', JSON.stringify(s));",
            vec![],
        )
        .await;
    alice.reload().await;
    assert_login_with_notice(&alice).await;
    alice.log_in("alice@example.com").await;
    // A token accounts never signed (but not yet expired): refused by the API.
    alice
        .js(
            "const s = JSON.parse(localStorage.getItem('dozen.session'));\
             s.token = s.token.slice(0, -4) + 'AAAA'; localStorage.setItem('dozen.session', JSON.stringify(s));",
            vec![],
        )
        .await;
    alice.reload().await;
    assert_login_with_notice(&alice).await;
    alice.log_in("alice").await;
    alice.click_text("Log out").await;
    alice.find("#login").await;
    alice.reload().await;
    alice.find("#login").await;
    let notice = alice
        .js("return document.querySelector('.problem').hidden", vec![])
        .await;
    assert_eq!(notice, true, "logging out is no expiry");
    alice.close().await;
}

fn step(what: &str) {
    eprintln!("--- {what}");
}

async fn assert_login_with_notice(browser: &Browser) {
    browser.find("#login").await;
    let notice = browser
        .until(
            "the expiry notice",
            "const p = document.querySelector('.problem'); return !p.hidden && p.textContent",
            vec![],
        )
        .await;
    assert_eq!(notice, "Your session has expired. Please log in again.");
}

/// The message of the browser's own whose text is `text`, as a CSS selector.
async fn own_message(browser: &Browser, text: &str) -> String {
    let id = browser
        .until(
            "the message",
            "const li = [...document.querySelectorAll('.messages > li.mine[data-id]')]\
               .find(li => li.querySelector('.text')?.textContent === arguments[0]);\
             return li?.dataset.id",
            vec![json!(text)],
        )
        .await;
    format!("li[data-id='{}']", id.as_str().unwrap())
}

async fn edit_last_own_message(browser: &Browser, text: &str, new_text: &str) {
    let message = own_message(browser, text).await;
    browser
        .click(&format!("{message} button[aria-label='Edit message']"))
        .await;
    let area = format!("{message} textarea.edit-text");
    browser.find(&area).await.clear().await.unwrap();
    browser
        .type_into(&area, &format!("{new_text}{ENTER}"))
        .await;
    browser.until_message(new_text).await;
}

async fn delete_own_message(browser: &Browser, text: &str) {
    let message = own_message(browser, text).await;
    browser
        .click(&format!("{message} button[aria-label='Delete message']"))
        .await;
    browser.click_text("Delete it").await;
}

/// The chat instance with exactly one room stream open (bob's), as
/// (name, pid, port), read from each instance's `/metrics`.
async fn instance_serving_one_stream(system: &System) -> (String, i32, u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut open = Vec::new();
        for (name, pid, port) in system.chat_instances() {
            let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let streams: f64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("chat_live_streams "))
                .map_or(0.0, |v| v.trim().parse().unwrap());
            open.push(((name, pid, port), streams));
        }
        let total: f64 = open.iter().map(|(_, s)| s).sum();
        if total == 1.0 {
            return open.into_iter().find(|(_, s)| *s == 1.0).unwrap().0;
        }
        assert!(Instant::now() < deadline, "streams open: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// axe-core finds no serious or critical violation on the page as it is.
async fn assert_accessible(browser: &Browser, axe: &str, what: &str) {
    browser.js(&format!("{axe}\n;return true"), vec![]).await;
    let violations: Value = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { resultTypes: ['violations'] })\
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,\
                 nodes: v.nodes.map(n => n.target.join(' ')) }))))\
               .catch(e => done([{ id: 'axe-failed', impact: 'critical', help: String(e), nodes: [] }]));",
            vec![],
        )
        .await
        .unwrap();
    let serious: Vec<&Value> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "{what}: {serious:#?}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("axe.json");
    let _ = std::fs::write(path, serde_json::to_string_pretty(&violations).unwrap());
}
