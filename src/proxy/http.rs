//! The health and metrics endpoints (`--http-address`): `GET /startup`,
//! `/liveness`, `/readiness` and `/metrics`, as cloud-sql-proxy serves them.
//! Readiness never dials the database (their issue #2207): it says the
//! listeners accept and the AWS credentials are still valid.
//!
//! Hand-rolled on tokio rather than a web framework: four GET routes, one
//! request per connection, requests capped at 8 KiB and 5 seconds, at most
//! 32 at once (the oldest gives way to a new one). That is less code than wiring hyper, and no new dependency.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests in progress at once. A new one past this closes the oldest,
/// so idle connections can never keep a kubelet's probe from an answer.
const MAX_OPEN: usize = 32;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut open: VecDeque<tokio::task::AbortHandle> = VecDeque::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shared.hard_stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        open.retain(|task| !task.is_finished());
        if open.len() >= MAX_OPEN
            && let Some(oldest) = open.pop_front()
        {
            oldest.abort();
        }
        let shared = shared.clone();
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shared)).await;
        });
        open.push_back(task.abort_handle());
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
            return respond(&mut stream, 431, "text/plain", "request too large\n", true).await;
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
        return respond(&mut stream, 405, "text/plain", "only GET\n", true).await;
    }
    // HEAD: the same head, no body.
    let body_too = method == "GET";
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
                body_too,
            )
            .await;
        }
        _ => (
            404,
            "not found: try /startup, /liveness, /readiness or /metrics\n".to_owned(),
        ),
    };
    respond(
        &mut stream,
        status,
        "text/plain; charset=utf-8",
        &body,
        body_too,
    )
    .await
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
            true,
        )
        .await;
    }
    if method != "POST" {
        return respond(stream, 405, "text/plain", "only POST\n", true).await;
    }
    shared.quit.cancel();
    respond(stream, 200, "text/plain; charset=utf-8", "stopping\n", true).await
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    body: &str,
    body_too: bool,
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
    if body_too {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
