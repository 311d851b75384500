//! A broker of the test's own, as a child process it can stop and start:
//! the shared servers on this machine must not be restarted under other tests.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// aiosmtpd's Maildir handler, made slow and particular on request.
const SMTP_HANDLER: &str = r#"
import asyncio
from aiosmtpd.handlers import Mailbox

class Handler(Mailbox):
    def __init__(self, maildir, delay, refused):
        super().__init__(maildir)
        self.delay = float(delay)
        self.refused = {address for address in refused.split(",") if address}

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)
"#;

/// A server process on a fixed loopback port, restartable with its data kept.
#[derive(Debug)]
pub struct ChildServer {
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    data: tempfile::TempDir,
}

impl ChildServer {
    /// A NATS server with JetStream on a free port, its storage in a temporary folder.
    /// `None` (with the reason printed, or a failure in CI) when `nats-server` is not installed.
    pub fn nats() -> Option<Self> {
        let program = find_program("nats-server")?;
        let data = tempfile::tempdir().expect("temporary folder");
        let port = free_port();
        let args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            data.path().display().to_string(),
        ];
        Some(Self::launch(program, args, Vec::new(), port, data))
    }

    /// A Redis server on a free port that keeps nothing on disk.
    /// `None` (with the reason printed, or a failure in CI) when `redis-server` is not installed.
    pub fn redis() -> Option<Self> {
        let program = find_program("redis-server")?;
        let data = tempfile::tempdir().expect("temporary folder");
        let port = free_port();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &data.path().display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        Some(Self::launch(program, args, Vec::new(), port, data))
    }

    /// A RabbitMQ node of its own (its own node name, ports and storage in a
    /// temporary folder, no plugins), with the default `guest` user.
    /// `None` (with the reason printed, or a failure in CI) when RabbitMQ is not installed.
    pub fn rabbitmq() -> Option<Self> {
        let program = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
        if !program.is_file() {
            return crate::skip_unless_ci("RabbitMQ is not installed");
        }
        let data = tempfile::tempdir().expect("temporary folder");
        let plugins = data.path().join("enabled_plugins");
        std::fs::write(&plugins, "[].").expect("write the plugins file");
        let (port, distribution) = (free_port(), free_port());
        let folder = |name: &str| data.path().join(name).display().to_string();
        let envs = [
            ("RABBITMQ_NODENAME", format!("dozen-test-{port}@localhost")),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", distribution.to_string()),
            ("RABBITMQ_MNESIA_BASE", folder("mnesia")),
            ("RABBITMQ_LOG_BASE", folder("log")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                plugins.display().to_string(),
            ),
            ("RABBITMQ_CONFIG_FILE", folder("none")),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        Some(Self::launch(program, Vec::new(), envs, port, data))
    }

    /// moto_server, the local AWS stand-in (SNS, SQS, S3…), from PyPI's `moto[server]`.
    /// `None` (with the reason printed, or a failure in CI) when it is not installed.
    pub fn moto() -> Option<Self> {
        python_module("moto.server", "moto[server]")?;
        let port = free_port();
        Some(Self::launch(
            PathBuf::from("python3"),
            [
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]
            .map(String::from)
            .to_vec(),
            Vec::new(),
            port,
            tempfile::tempdir().expect("temporary folder"),
        ))
    }

    /// A real SMTP server (Python's aiosmtpd, from PyPI) that keeps every mail
    /// it accepts in the Maildir [`ChildServer::folder`]`/mail`.
    /// `None` (with the reason printed, or a failure in CI) when aiosmtpd is not installed.
    pub fn smtp() -> Option<Self> {
        Self::smtp_with(Duration::ZERO, &[])
    }

    /// [`ChildServer::smtp`] that is slow and particular, like a real one:
    /// it takes `delay` to accept each mail, and refuses every mail to an
    /// address in `refused` for good (`550 5.1.1`, RFC 5321 §4.2.2).
    pub fn smtp_with(delay: Duration, refused: &[&str]) -> Option<Self> {
        python_module("aiosmtpd", "aiosmtpd")?;
        let data = tempfile::tempdir().expect("temporary folder");
        std::fs::write(data.path().join("dozen_smtp.py"), SMTP_HANDLER)
            .expect("write the SMTP handler");
        let port = free_port();
        let maildir = data.path().join("mail").display().to_string();
        Some(Self::launch(
            PathBuf::from("python3"),
            [
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "dozen_smtp.Handler",
                &maildir,
                &delay.as_secs_f64().to_string(),
                &refused.join(","),
            ]
            .map(String::from)
            .to_vec(),
            vec![("PYTHONPATH".into(), data.path().display().to_string())],
            port,
            data,
        ))
    }

    /// Starts `program` with `args` and `envs`, which is to listen on `port`.
    fn launch(
        program: PathBuf,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        port: u16,
        data: tempfile::TempDir,
    ) -> Self {
        let mut server = Self {
            program,
            args,
            envs,
            port,
            child: None,
            data,
        };
        server.start();
        server
    }

    /// The server's own folder (its storage, or an SMTP server's Maildir under `mail/`).
    pub fn folder(&self) -> &std::path::Path {
        self.data.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            // Its own process group, so stopping it stops every process it started.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                self.program.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server as an operator would: SIGTERM, then SIGKILL after 30 s.
    pub fn stop_gracefully(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.stop();
    }

    /// Stops the server, erases all it stored (a new node, a wiped volume),
    /// and starts it again on the same port.
    pub fn start_empty(&mut self) {
        self.stop();
        for entry in std::fs::read_dir(self.data.path()).expect("read the server's folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("erase the server's data");
            } else {
                std::fs::remove_file(&path).expect("erase the server's data");
            }
        }
        self.start();
    }

    /// Stops the server (as SIGKILL would: no goodbye to the clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Some` when Python can import `module`; else `None` with the reason
/// printed (a failure in CI).
fn python_module(module: &str, package: &str) -> Option<()> {
    let installed = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        Some(())
    } else {
        crate::skip_unless_ci(&format!(
            "{package} is not installed (pip install '{package}')"
        ))
    }
}

/// A port nothing listens on right now, for a server the test starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The program on PATH or in the sbin folders, where Debian puts servers.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        return crate::skip_unless_ci(&format!("{name} is not installed"));
    }
    found
}
