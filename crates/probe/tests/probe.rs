//! The probe against a real listener: 200 passes, anything else fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

/// Answers one request with `status` and returns the port and the request line it saw.
fn serve_once(status: &'static str) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0_u8; 256];
        let read = stream.read(&mut request).unwrap();
        // The status line in two pieces, as a server may send it; the probe may
        // hang up as soon as it has the line.
        let _ = stream.write_all(b"HTTP/1.1 ");
        let _ = stream.flush();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = stream.write_all(format!("{status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        String::from_utf8_lossy(&request[..read])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    (port, handle)
}

fn probe(port: u16, path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_probe"))
        .arg(path)
        .env("PORT", port.to_string())
        .output()
        .unwrap()
}

#[test]
fn a_200_passes_and_the_path_asked_is_the_one_given() {
    let (port, request) = serve_once("200 OK");
    let output = probe(port, "/readyz");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(request.join().unwrap(), "GET /readyz HTTP/1.0");
}

#[test]
fn a_503_fails_and_says_so() {
    let (port, request) = serve_once("503 Service Unavailable");
    let output = probe(port, "/readyz");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("answered 503"));
    request.join().unwrap();
}

#[test]
fn nothing_listening_fails() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = probe(port, "/healthz");
    assert!(!output.status.success());
}
