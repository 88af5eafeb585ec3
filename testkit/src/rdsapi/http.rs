//! HTTP/1.1 by hand: reading a request (keep-alive, `Expect: 100-continue`, chunked bodies,
//! bounded sizes), writing the answer with its `Date` header, acting out the misbehaving faults,
//! and decoding the form-encoded Query parameters. One connection's loop lives here; what each
//! request gets is decided by the parent's `handle`, the only way from here to the actions.

use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

use super::xml::{RDS_XMLNS, error_xml};
use super::{Params, State, handle, lock};

// Bounds on what one request may make the server buffer; SDK requests are a few hundred bytes.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1024 * 1024;

pub(super) struct HttpRequest {
    pub(super) method: String,
    pub(super) target: String,
    version: String,
    /// Names lower-cased.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl HttpRequest {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

pub(super) struct HttpResponse {
    pub(super) status: u16,
    pub(super) request_id: String,
    pub(super) body: String,
    /// Set by the misbehaving faults: what to send instead of this answer.
    pub(super) misbehave: Option<Misbehave>,
    /// Unix seconds for the `Date` header.
    pub(super) date: i64,
}

#[derive(Clone, Copy)]
pub(super) enum Misbehave {
    Hang,
    StallAfterStatus,
    EndlessBody,
}

impl Misbehave {
    /// Act it out on `writer`; returns only when the client is gone.
    async fn act(self, writer: &mut (impl AsyncWrite + Unpin)) {
        match self {
            Misbehave::Hang => {}
            Misbehave::StallAfterStatus => {
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\n").await;
                let _ = writer.flush().await;
            }
            Misbehave::EndlessBody => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
                if writer.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while writer.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
        }
        // Hold the connection until the test ends; the server's runtime drops it.
        std::future::pending::<()>().await;
    }
}

impl HttpResponse {
    fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Unknown",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nx-amzn-RequestId: {}\r\nDate: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n",
            self.status,
            self.request_id,
            http_date(self.date),
            self.body.len()
        );
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

pub(super) async fn serve_connection(socket: TcpStream, state: Arc<Mutex<State>>) {
    let _ = socket.set_nodelay(true);
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    loop {
        let request = match read_request(&mut reader, &mut writer).await {
            Ok(Some(request)) => request,
            // The client closed between requests: the normal end of a keep-alive connection.
            Ok(None) => return,
            Err(e) => {
                let response = HttpResponse {
                    status: 400,
                    request_id: "malformed-request".to_string(),
                    body: error_xml(RDS_XMLNS, 400, "MalformedRequest", &e.to_string(), ""),
                    misbehave: None,
                    date: unix_now() + lock(&state).clock_offset,
                };
                let _ = writer.write_all(&response.to_bytes(false)).await;
                return;
            }
        };
        let keep_alive = request.keep_alive();
        let response = handle(&state, request).await;
        if let Some(misbehave) = response.misbehave {
            misbehave.act(&mut writer).await;
            return;
        }
        if writer
            .write_all(&response.to_bytes(keep_alive))
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one line (with its terminator) of at most [`MAX_LINE`] bytes; "" means EOF.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<String> {
    let mut line = String::new();
    (&mut *reader).take(MAX_LINE).read_line(&mut line).await?;
    if !line.is_empty() && !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
        return Err(bad("line too long"));
    }
    Ok(line)
}

async fn read_request<R, W>(reader: &mut R, writer: &mut W) -> io::Result<Option<HttpRequest>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // RFC 9112 §2.2: ignore empty lines before a request line.
    let request_line = loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break line;
        }
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("bad request line {request_line:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            return Err(bad("connection closed inside the headers"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("bad header line {line:?}")));
        };
        if headers.len() == MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader).await?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {length:?}")))?;
        if length > MAX_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        request.body = body;
    }
    Ok(Some(request))
}

async fn read_chunked<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line that ends the message.
            loop {
                let trailer = read_line(reader).await?;
                if trailer.is_empty() {
                    return Err(bad("connection closed inside the trailers"));
                }
                if trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, then %XX).
pub(super) fn parse_form(input: &str, into: &mut Params) {
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        into.insert(decode(name), decode(value));
    }
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 9110's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
