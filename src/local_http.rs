//! A minimal HTTP/1.1 server on a local port for the simulated markets of
//! `bench daemon` and `demo`: the provider clients talk to it exactly as
//! to the real APIs (real sockets, real status codes and headers), while a
//! [`Handler`] decides each answer from the request's path and query.
//!
//! Only GET is spoken (every provider call is one): a request ends at its
//! blank line, and keep-alive connections are served until the client
//! closes them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer. `delay` is waited before it is sent (simulated latency).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

pub trait Handler: Send + Sync + 'static {
    /// The answer to `GET path?query`.
    fn answer(&self, path: &str, query: &str) -> Response;
}

/// Serves `handler` on `127.0.0.1` at a free port until the runtime ends;
/// returns the base URL.
pub async fn serve(handler: Arc<dyn Handler>) -> std::io::Result<url::Url> {
    serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), handler).await
}

/// Serves `handler` on `addr` (port 0: any free one) until the runtime
/// ends; returns the base URL, with the port bound.
pub async fn serve_on(addr: SocketAddr, handler: Arc<dyn Handler>) -> std::io::Result<url::Url> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(connection(socket, handler.clone()));
        }
    });
    Ok(url::Url::parse(&format!("http://{addr}")).expect("local URL"))
}

async fn connection(mut socket: tokio::net::TcpStream, handler: Arc<dyn Handler>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        match socket.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        // GET requests carry no body: a blank line ends each one.
        while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let answer = handler.answer(path, query);
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            let mut response = format!(
                "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                answer.status,
                reason(answer.status),
                answer.body.len()
            );
            for (name, value) in answer.headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&answer.body);
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            buf.copy_within(end + 4..filled, 0);
            filled -= end + 4;
        }
        if filled == buf.len() {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
