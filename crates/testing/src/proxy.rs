//! A TCP proxy on loopback that a test can cut and restore: a real network
//! outage between a client and its server, without touching the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:<port>` to a target until cut (or frozen).
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    frozen: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0_u64);
        let (frozen, _) = watch::channel(false);
        let target = target.to_owned();
        let task = tokio::spawn({
            let down = down.clone();
            let cut = cut.clone();
            let frozen = frozen.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused in effect
                    }
                    let target = target.clone();
                    let mut cuts = cut.subscribe();
                    let mut freezes = frozen.subscribe();
                    tokio::spawn(async move {
                        let frozen_now = *freezes.borrow();
                        if frozen_now {
                            // Accepted and never answered, until cut.
                            let _ = cuts.changed().await;
                            return;
                        }
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let froze = tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut server) => false,
                            _ = cuts.changed() => false,
                            frozen = freezes.wait_for(|frozen| *frozen) => frozen.is_ok(),
                        };
                        if froze {
                            // Both ends stay open and nothing goes through.
                            let _ = cuts.changed().await;
                        }
                        drop((client, server));
                    });
                }
            }
        });
        Self {
            address,
            down,
            cut,
            frozen,
            task,
        }
    }

    /// A proxy in front of the server a URL names, and the URL rewritten to
    /// go through it (`scheme://user:pass@host:port/path` keeps all but `host:port`).
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (format!("{userinfo}@"), host),
            None => (String::new(), authority),
        };
        let proxy = Self::start(host).await;
        let proxied = format!("{scheme}://{userinfo}{}{tail}", proxy.address());
        (proxy, proxied)
    }

    /// `host:port` to give the client instead of the real server's.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Stops forwarding without closing anything: open connections and new
    /// ones stay open and silent for good, as behind a dead link or a hung
    /// server. Connections made after [`TcpProxy::restore`] work.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Accepts and forwards new connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.frozen.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_modify(|n| *n += 1);
    }
}
