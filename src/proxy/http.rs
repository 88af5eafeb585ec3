//! The health and metrics endpoints (`--http-address`): `GET /startup`,
//! `/liveness`, `/readiness` and `/metrics`, as cloud-sql-proxy serves them.
//! Readiness never dials the database (their issue #2207): it says the
//! listeners accept and the AWS credentials are still valid.
//!
//! Hand-rolled on tokio rather than a web framework: four GET routes, one
//! request per connection, requests capped at 8 KiB and 5 seconds, at most
//! 16 at once. That is less code than wiring hyper, and no new dependency.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Shared;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(16));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shared.hard_stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // Dropping the stream closes it: too busy.
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shared)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return respond(&mut stream, 431, "text/plain", "request too large\n").await;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path == "/quitquitquit" {
        return quitquitquit(&mut stream, shared, method).await;
    }
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", "only GET\n").await;
    }
    let (status, body) = match path {
        "/startup" if shared.started() => (200, "ok\n".to_owned()),
        "/startup" => (503, "starting\n".to_owned()),
        "/liveness" => (200, "ok\n".to_owned()),
        "/readiness" => match shared.readiness() {
            Ok(()) => (200, "ok\n".to_owned()),
            Err(why) => (503, format!("{why}\n")),
        },
        "/metrics" => {
            return respond(
                &mut stream,
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &shared.metrics.render(),
            )
            .await;
        }
        _ => (
            404,
            "not found: try /startup, /liveness, /readiness or /metrics\n".to_owned(),
        ),
    };
    respond(&mut stream, status, "text/plain; charset=utf-8", &body).await
}

/// `POST /quitquitquit`: stop the proxy (drain, exit 0) when started with
/// `--quitquitquit`; otherwise the path does not exist.
async fn quitquitquit(
    stream: &mut TcpStream,
    shared: &Shared,
    method: &str,
) -> std::io::Result<()> {
    if !shared.quitquitquit() {
        return respond(
            stream,
            404,
            "text/plain",
            "not found: /quitquitquit is off (start the proxy with --quitquitquit)\n",
        )
        .await;
    }
    if method != "POST" {
        return respond(stream, 405, "text/plain", "only POST\n").await;
    }
    shared.quit.cancel();
    respond(stream, 200, "text/plain; charset=utf-8", "stopping\n").await
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
