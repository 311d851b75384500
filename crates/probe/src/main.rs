//! `probe /readyz`: the container health check of images that have no shell
//! and no curl (`FROM distroless`). It asks the process in the same container,
//! on `127.0.0.1:$PORT`, and exits 0 on `200`, 1 otherwise, saying why.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/healthz".to_owned());
    match check(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("probe {path}: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("the path must start with /".into());
    }
    let port: u16 = std::env::var("PORT")
        .map_err(|_| "PORT is not set".to_owned())?
        .trim()
        .parse()
        .map_err(|e| format!("PORT is not a port: {e}"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // The status line is all that matters; it may come in pieces.
    let mut head = Vec::with_capacity(64);
    let mut chunk = [0_u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let status_line = String::from_utf8_lossy(&head);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("answered {status}")),
        None => Err("no HTTP answer".into()),
    }
}
