//! Message boundaries in PostgreSQL's protocol, the one framer (issue 18):
//! [`messages`] walks whole messages in a buffer (a login's greeting),
//! [`Frames`] follows a byte stream cut anywhere (the REPL's tap, the
//! pool's relay) without buffering whole messages. Headers are read with
//! `postgres-protocol`'s [`Header`]; the tag bytes are its message tags.

use std::ops::ControlFlow;

use postgres_protocol::message::backend::Header;

/// Bytes in a message header: the tag and the length.
const HEADER: usize = 5;

/// The body length a header announces (its length counts itself). A
/// length below 4 is malformed: read as an empty body, so the stream goes on.
fn body_len(header: &[u8]) -> usize {
    match Header::parse(header) {
        Ok(Some(h)) => usize::try_from(h.len()).unwrap_or(4).saturating_sub(4),
        _ => 0,
    }
}

/// The whole messages at the start of `bytes`, as (tag, body); a message
/// cut short or a malformed length ends the walk.
pub fn messages(bytes: &[u8]) -> Messages<'_> {
    Messages { rest: bytes }
}

pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let header = Header::parse(self.rest).ok()??;
        let end = usize::try_from(header.len()).ok()?.checked_add(1)?;
        if end < HEADER || end > self.rest.len() {
            return None;
        }
        let message = (header.tag(), &self.rest[HEADER..end]);
        self.rest = &self.rest[end..];
        Some(message)
    }
}

/// What [`Frames::feed`] sees, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The first byte of a message: its tag.
    Begin(u8),
    /// Some of the current message's body (it may come in many pieces).
    Body(&'a [u8]),
    /// The current message is complete.
    End(u8),
}

/// Where a stream of messages is, across reads.
#[derive(Default)]
pub struct Frames {
    header: [u8; HEADER],
    /// Header bytes seen of the current message (0 between messages).
    have: usize,
    /// Body bytes of the current message still to come.
    remaining: usize,
}

impl Frames {
    /// Walk `data`, telling `on` what it holds. `on` may stop the walk at a
    /// message's first byte ([`Frame::Begin`] → `Break`); the result is how
    /// many bytes were walked before that message (all of them otherwise).
    pub fn feed(&mut self, data: &[u8], mut on: impl FnMut(Frame<'_>) -> ControlFlow<()>) -> usize {
        let mut at = 0;
        while at < data.len() {
            if self.have < HEADER {
                if self.have == 0 && on(Frame::Begin(data[at])).is_break() {
                    return at;
                }
                let take = (HEADER - self.have).min(data.len() - at);
                self.header[self.have..self.have + take].copy_from_slice(&data[at..at + take]);
                self.have += take;
                at += take;
                if self.have == HEADER {
                    self.remaining = body_len(&self.header);
                    if self.remaining == 0 {
                        self.end(&mut on);
                    }
                }
                continue;
            }
            let take = self.remaining.min(data.len() - at);
            let _ = on(Frame::Body(&data[at..at + take]));
            self.remaining -= take;
            at += take;
            if self.remaining == 0 {
                self.end(&mut on);
            }
        }
        data.len()
    }

    fn end(&mut self, on: &mut impl FnMut(Frame<'_>) -> ControlFlow<()>) {
        let _ = on(Frame::End(self.header[0]));
        self.have = 0;
    }

    /// Body bytes of the current message not yet seen (0 between messages
    /// or inside a header).
    pub fn unread(&self) -> usize {
        if self.have == HEADER {
            self.remaining
        } else {
            0
        }
    }

    /// Whether the stream stopped inside a message's header: the rest of
    /// that message can't be skipped by count.
    pub fn mid_header(&self) -> bool {
        self.have != 0 && self.have != HEADER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Every event of `stream` fed in pieces of `size`, bodies joined.
    fn walk(stream: &[u8], size: usize) -> Vec<(char, Vec<u8>)> {
        let mut frames = Frames::default();
        let mut out: Vec<(char, Vec<u8>)> = Vec::new();
        for chunk in stream.chunks(size) {
            frames.feed(chunk, |frame| {
                match frame {
                    Frame::Begin(tag) => out.push(('<', vec![tag])),
                    Frame::Body(b) => match out.last_mut() {
                        Some(('.', body)) => body.extend_from_slice(b),
                        _ => out.push(('.', b.to_vec())),
                    },
                    Frame::End(tag) => out.push(('>', vec![tag])),
                }
                ControlFlow::Continue(())
            });
        }
        out
    }

    #[test]
    fn the_same_messages_however_the_stream_is_cut() {
        let mut stream = msg(b'S', b"a\0b\0");
        stream.extend(msg(b'1', b""));
        stream.extend(msg(b'Z', b"I"));
        let whole = walk(&stream, stream.len());
        assert_eq!(
            whole,
            [
                ('<', b"S".to_vec()),
                ('.', b"a\0b\0".to_vec()),
                ('>', b"S".to_vec()),
                ('<', b"1".to_vec()),
                ('>', b"1".to_vec()),
                ('<', b"Z".to_vec()),
                ('.', b"I".to_vec()),
                ('>', b"Z".to_vec()),
            ]
        );
        for size in 1..stream.len() {
            assert_eq!(walk(&stream, size), whole, "pieces of {size}");
        }
    }

    #[test]
    fn a_walk_stops_before_the_message_asked_for() {
        let mut stream = msg(b'Q', b"select 1\0");
        let terminate = stream.len();
        stream.extend(msg(b'X', b""));
        let mut frames = Frames::default();
        let walked = frames.feed(&stream, |frame| match frame {
            Frame::Begin(b'X') => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        });
        assert_eq!(walked, terminate);
    }

    #[test]
    fn where_a_cut_stream_stopped() {
        let stream = msg(b'D', b"0123456789");
        let mut frames = Frames::default();
        frames.feed(&stream[..3], |_| ControlFlow::Continue(()));
        assert!(frames.mid_header());
        assert_eq!(frames.unread(), 0);
        frames.feed(&stream[3..8], |_| ControlFlow::Continue(()));
        assert!(!frames.mid_header());
        assert_eq!(frames.unread(), 7);
    }

    #[test]
    fn whole_messages_in_a_buffer_stop_at_a_cut_or_a_bad_length() {
        let mut bytes = msg(b'K', b"12345678");
        bytes.extend(msg(b'Z', b"I"));
        let found: Vec<_> = messages(&bytes).collect();
        assert_eq!(found, [(b'K', &b"12345678"[..]), (b'Z', &b"I"[..])]);
        assert_eq!(messages(&bytes[..bytes.len() - 1]).count(), 1);
        assert_eq!(messages(&[b'Z', 0, 0, 0, 2, b'I']).count(), 0);
    }
}
