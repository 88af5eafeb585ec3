//! What the server says about a session besides the answers to queries,
//! read off the wire as it passes (issue 14): the transaction status of
//! each ReadyForQuery (psql's `*` and `!` prompt marks), ParameterStatus
//! changes (`standard_conforming_strings`, which decides how the next
//! statement splits) and NOTICE/WARNING messages, printed on stderr as psql
//! prints them.
//!
//! tokio-postgres keeps all three to itself, so [`Tap`] wraps the TLS
//! stream it reads from: the bytes go through untouched, while the one
//! framer ([`crate::frames`]) follows message boundaries and keeps only the few small message
//! kinds above (decoded with `postgres-protocol`); data rows are skipped
//! without a copy.

use std::io;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use crate::frames::{Frame, Frames};

/// The largest message body kept for decoding; a bigger notice is skipped.
const MAX_KEPT: usize = 1 << 20;

/// Where a session stands, as the server last said.
#[derive(Debug)]
pub struct Watch {
    /// The last ReadyForQuery's status: `I` idle, `T` in a transaction
    /// block, `E` in a failed one; 0 before the first.
    status: AtomicU8,
    std_strings: AtomicBool,
    print_notices: AtomicBool,
    /// An ErrorResponse came and the ReadyForQuery that always follows it
    /// has not yet: the status above is stale until it does.
    error_pending: AtomicBool,
    /// Woken at each ReadyForQuery and when the server's side ends, so a
    /// waiter for "settled" sleeps instead of polling.
    changed: tokio::sync::Notify,
    /// The server's side of the stream ended (EOF or an error).
    ended: AtomicBool,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            status: AtomicU8::new(0),
            // The default since PostgreSQL 9.1; the login's ParameterStatus
            // says for sure.
            std_strings: AtomicBool::new(true),
            print_notices: AtomicBool::new(false),
            error_pending: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            ended: AtomicBool::new(false),
        }
    }
}

/// Transaction status, as in ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
    Unknown,
}

impl Watch {
    pub fn tx_status(&self) -> TxStatus {
        match self.status.load(Ordering::Relaxed) {
            b'I' => TxStatus::Idle,
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Unknown,
        }
    }

    /// Whether `standard_conforming_strings` is on (backslashes are plain
    /// characters in `'…'`).
    pub fn std_strings(&self) -> bool {
        self.std_strings.load(Ordering::Relaxed)
    }

    /// Whether the status is current: no ErrorResponse is still waiting
    /// for its ReadyForQuery. tokio-postgres returns a statement's error
    /// as soon as the ErrorResponse arrives, before that ReadyForQuery.
    pub fn settled(&self) -> bool {
        !self.error_pending.load(Ordering::Relaxed)
    }

    /// Wait until [`Watch::settled`] or the connection's reading side
    /// ended (`closed` says which), at most until `deadline`.
    pub async fn wait_settled(&self, closed: impl Fn() -> bool, deadline: tokio::time::Instant) {
        loop {
            // Registered before the check, so a wake in between is not lost.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.settled() || self.ended.load(Ordering::Relaxed) || closed() {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Print NOTICE, WARNING and the like on stderr from now on.
    pub fn print_notices(&self, on: bool) {
        self.print_notices.store(on, Ordering::Relaxed);
    }

    fn message(&self, kind: u8, body: &[u8]) {
        let mut buf = BytesMut::with_capacity(body.len() + 5);
        buf.extend_from_slice(&[kind]);
        buf.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        buf.extend_from_slice(body);
        match Message::parse(&mut buf) {
            Ok(Some(Message::ReadyForQuery(ready))) => {
                self.status.store(ready.status(), Ordering::Relaxed);
                self.error_pending.store(false, Ordering::Relaxed);
                self.changed.notify_waiters();
            }
            Ok(Some(Message::ParameterStatus(param)))
                if param.name().ok() == Some("standard_conforming_strings") =>
            {
                let on = param.value().is_ok_and(|v| v == "on");
                self.std_strings.store(on, Ordering::Relaxed);
            }
            Ok(Some(Message::NoticeResponse(notice)))
                if self.print_notices.load(Ordering::Relaxed) =>
            {
                let mut fields = notice.fields();
                let mut parts: Vec<(u8, String)> = Vec::new();
                while let Ok(Some(field)) = fields.next() {
                    parts.push((
                        field.type_(),
                        String::from_utf8_lossy(field.value_bytes()).into_owned(),
                    ));
                }
                eprint!("{}", crate::output::escape_controls(&notice_text(&parts)));
            }
            _ => {}
        }
    }
}

/// A notice the way psql shows it: `NOTICE:  message`, then DETAIL and HINT
/// lines.
pub fn notice_text(fields: &[(u8, String)]) -> String {
    let get = |t: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_str())
    };
    let severity = get(b'S').or(get(b'V')).unwrap_or("NOTICE");
    let mut out = format!("{severity}:  {}\n", get(b'M').unwrap_or(""));
    if let Some(detail) = get(b'D') {
        out.push_str(&format!("DETAIL:  {detail}\n"));
    }
    if let Some(hint) = get(b'H') {
        out.push_str(&format!("HINT:  {hint}\n"));
    }
    out
}

/// Follows message boundaries in the server's byte stream ([`Frames`])
/// and keeps the bodies of the few small messages [`Watch`] reads.
#[derive(Default)]
struct Framer {
    frames: Frames,
    keep: bool,
    body: Vec<u8>,
}

impl Framer {
    fn feed(&mut self, data: &[u8], watch: &Watch) {
        let Framer { frames, keep, body } = self;
        frames.feed(data, |frame| {
            match frame {
                Frame::Begin(tag) => {
                    if tag == b'E' {
                        watch.error_pending.store(true, Ordering::Relaxed);
                    }
                    *keep = matches!(tag, b'Z' | b'S' | b'N');
                    body.clear();
                }
                Frame::Body(part) if *keep => {
                    if body.len() + part.len() > MAX_KEPT {
                        *keep = false;
                        *body = Vec::new();
                    } else {
                        body.extend_from_slice(part);
                    }
                }
                Frame::Body(_) => {}
                Frame::End(tag) if *keep => watch.message(tag, body),
                Frame::End(_) => {}
            }
            ControlFlow::Continue(())
        });
    }
}

/// A [`TlsConnect`] whose stream reports to a [`Watch`].
pub struct Tap<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T> Tap<T> {
    pub fn new(inner: T, watch: Arc<Watch>) -> Tap<T> {
        Tap { inner, watch }
    }
}

impl<S, T> TlsConnect<S> for Tap<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: 'static,
    T::Error: 'static,
{
    type Stream = Tapped<T::Stream>;
    type Error = T::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Tapped<T::Stream>, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let watch = self.watch;
        let connecting = self.inner.connect(stream);
        Box::pin(async move {
            let inner = connecting.await?;
            Ok(Tapped {
                inner,
                watch,
                framer: Framer::default(),
            })
        })
    }
}

/// The TLS stream, read through a `Framer`.
pub struct Tapped<S> {
    inner: S,
    watch: Arc<Watch>,
    framer: Framer,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if room == 0 => {}
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let this = &mut *self;
                this.framer.feed(&buf.filled()[before..], &this.watch);
            }
            // End of stream or an error: nothing more will settle it.
            Poll::Ready(_) => {
                self.watch.ended.store(true, Ordering::Relaxed);
                self.watch.changed.notify_waiters();
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tapped<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn follows_messages_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend(msg(b'S', b"standard_conforming_strings\0off\0"));
        stream.extend(msg(b'D', &[0u8; 300]));
        stream.extend(msg(b'Z', b"T"));
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let watch = Watch::default();
            let mut framer = Framer::default();
            for piece in stream.chunks(chunk) {
                framer.feed(piece, &watch);
            }
            assert!(!watch.std_strings(), "chunk {chunk}");
            assert_eq!(watch.tx_status(), TxStatus::InTransaction, "chunk {chunk}");
        }
    }

    #[test]
    fn an_error_is_unsettled_until_its_ready_for_query() {
        let watch = Watch::default();
        let mut framer = Framer::default();
        assert!(watch.settled());
        framer.feed(&msg(b'E', b"SERROR\0C42703\0\0"), &watch);
        assert!(!watch.settled());
        framer.feed(&msg(b'Z', b"E"), &watch);
        assert!(watch.settled());
        assert_eq!(watch.tx_status(), TxStatus::Failed);
    }

    #[test]
    fn notices_read_like_psql() {
        let fields = [
            (b'S', "NOTICE".to_owned()),
            (b'M', "table \"x\" does not exist, skipping".to_owned()),
            (b'H', "a hint".to_owned()),
        ];
        assert_eq!(
            notice_text(&fields),
            "NOTICE:  table \"x\" does not exist, skipping\nHINT:  a hint\n"
        );
    }
}
