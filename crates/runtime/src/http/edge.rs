//! The connection's edge: every answer carries the JSON error body, even
//! those the HTTP parser gives by itself.
//!
//! hyper answers a request it cannot parse — a URI over 64 KiB (414), a
//! header block over its buffer (431), a malformed request line or header
//! (400) — before any middleware sees it, with an empty body. Each accepted
//! connection is wrapped so that such an answer, recognised by its shape (a
//! 4xx status line with `content-length: 0` and nothing but `date` and
//! `connection` beside it; every answer of the router is JSON), goes out as
//! the same status with the body every other 4xx has.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::error::code_for;

/// The other end of a request's connection, in its extensions as
/// `ConnectInfo<PeerAddress>` (a proxy in front, or the client itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddress(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, EdgeListener>>
    for PeerAddress
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, EdgeListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A TCP listener whose connections are [`EdgeStream`]s.
#[derive(Debug)]
pub(crate) struct EdgeListener(pub TcpListener);

impl axum::serve::Listener for EdgeListener {
    type Io = EdgeStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        EdgeStream {
                            inner: stream,
                            replacement: None,
                        },
                        address,
                    );
                }
                // Out of file descriptors and the like: wait, as axum does.
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that rewrites hyper's own empty error answers.
#[derive(Debug)]
pub(crate) struct EdgeStream {
    inner: TcpStream,
    /// An answer written in place of hyper's, and how much of it has gone.
    replacement: Option<(Vec<u8>, usize)>,
}

impl EdgeStream {
    /// Writes what is left of the replacement; ready once it has all gone.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EdgeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EdgeStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(answer) = parser_error_answer(buf) {
            self.replacement = Some((answer, 0));
            // Taken whole; what the socket has not taken yet goes on flush.
            let _ = self.poll_replacement(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// hyper then queues a body's chunks and frees each once sent, rather
    /// than copying them into one buffer that keeps its largest size for
    /// the connection's life (a live stream's memory). An answer's head is
    /// the first slice, whole: where its own error answers are recognised.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if let Some(answer) = parser_error_answer(first) {
                self.replacement = Some((answer, 0));
                let _ = self.poll_replacement(cx)?;
                return Poll::Ready(Ok(first.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// If `written` is hyper's own answer to a request it could not parse, the
/// answer to send instead: the same status, with the JSON error body.
fn parser_error_answer(written: &[u8]) -> Option<Vec<u8>> {
    let rest = written.strip_prefix(b"HTTP/1.1 4")?;
    let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != written.len() || rest.len() < 2 {
        return None;
    }
    let head = std::str::from_utf8(&written[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let code: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => empty = value.trim() == "0",
            "date" | "connection" => {}
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    let status = StatusCode::from_u16(code).ok()?;
    let message = match status {
        StatusCode::URI_TOO_LONG => "the request's URI is longer than 64 KiB",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request's headers are too large",
        _ => "the request is not well-formed HTTP",
    };
    let body = serde_json::json!({
        "error": { "code": code_for(status), "message": message }
    })
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_4xx_with_no_other_header_is_the_parsers_own() {
        let own = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 10:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(parser_error_answer(own).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );
        assert!(answer.contains("content-type: application/json"));
        assert!(answer.ends_with(
            r#"{"error":{"code":"request_header_fields_too_large","message":"the request's headers are too large"}}"#
        ));
        for not_own in [
            // The router's answers: JSON, with a length.
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
            // A head with a body after it, or a body that looks like a head.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"text\":\"HTTP/1.1 400\"}",
            b"HTTP/1.1 4",
        ] {
            assert!(
                parser_error_answer(not_own).is_none(),
                "{:?}",
                String::from_utf8_lossy(not_own)
            );
        }
    }
}
