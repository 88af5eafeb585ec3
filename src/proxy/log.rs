//! The proxy's log on stderr: one line when a connection opens and one when
//! it closes, plus start, drain and stop. `text` is for people
//! (`rdsiam: proxy: key=value …`), `json` one object per line for machines.
//! Fields are built by the caller from names and counts; a token never
//! reaches here (it lives only in `token::Redacted`).

use crate::output::LogFormat;

#[derive(Clone, Copy, Debug)]
pub struct Log {
    pub format: LogFormat,
    /// Only failures (`rdsiam run`, where COMMAND's stderr is the user's).
    pub quiet: bool,
}

/// One field's value.
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Secs(f64),
}

impl Log {
    /// Write `event` with `fields` as one line.
    pub fn line(&self, event: &str, fields: &[(&str, Value<'_>)]) {
        if self.quiet && !is_failure(event, fields) {
            return;
        }
        let text = self.format(event, fields);
        writer::send(text);
    }

    /// Wait (up to `limit`) for queued lines to reach stderr: at exit.
    pub fn flush(limit: std::time::Duration) {
        writer::flush(limit);
    }

    /// Lines dropped because stderr was not being read.
    pub fn dropped() -> u64 {
        writer::DROPPED.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn format(&self, event: &str, fields: &[(&str, Value<'_>)]) -> String {
        match self.format {
            LogFormat::Text => {
                let mut out = format!("rdsiam: proxy: {event}");
                for (key, value) in fields {
                    let value = match value {
                        // Client-supplied names: quoted and escaped, so no line can be forged.
                        Value::Str(s)
                            if s.is_empty()
                                || s.chars()
                                    .any(|c| c.is_control() || matches!(c, ' ' | '"' | '=')) =>
                        {
                            format!("{s:?}")
                        }
                        Value::Str(s) => (*s).to_owned(),
                        Value::Num(n) => n.to_string(),
                        Value::Secs(s) => format!("{s:.3}s"),
                    };
                    out.push_str(&format!(" {key}={value}"));
                }
                out
            }
            LogFormat::Json => {
                let mut map = serde_json::Map::new();
                map.insert("ts".into(), now_rfc3339().into());
                map.insert("event".into(), event.into());
                for (key, value) in fields {
                    let value: serde_json::Value = match value {
                        Value::Str(s) => (*s).into(),
                        Value::Num(n) => (*n).into(),
                        Value::Secs(s) => {
                            serde_json::Number::from_f64((s * 1000.0).round() / 1000.0)
                                .map_or(serde_json::Value::Null, Into::into)
                        }
                    };
                    map.insert((*key).to_owned(), value);
                }
                serde_json::Value::Object(map).to_string()
            }
        }
    }
}

/// The lines go to stderr from a thread of their own through a bounded
/// queue: a stderr nobody reads (a full pipe) must not stop the runtime,
/// so when the queue is full a line is dropped and counted.
mod writer {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// Lines waiting for stderr, at most.
    const QUEUE: usize = 1024;

    pub static DROPPED: AtomicU64 = AtomicU64::new(0);
    /// Lines queued and not yet written.
    static PENDING: AtomicU64 = AtomicU64::new(0);
    static QUEUE_TX: OnceLock<Mutex<SyncSender<String>>> = OnceLock::new();

    fn queue() -> &'static Mutex<SyncSender<String>> {
        QUEUE_TX.get_or_init(|| {
            let (tx, rx) = sync_channel::<String>(QUEUE);
            let _ = std::thread::Builder::new()
                .name("rdsiam-log".into())
                .spawn(move || {
                    for line in rx {
                        // A closed stderr must not take the proxy down.
                        let _ = writeln!(std::io::stderr().lock(), "{line}");
                        PENDING.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            Mutex::new(tx)
        })
    }

    pub fn send(line: String) {
        let Ok(tx) = queue().lock() else {
            return;
        };
        PENDING.fetch_add(1, Ordering::SeqCst);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            PENDING.fetch_sub(1, Ordering::SeqCst);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn flush(limit: Duration) {
        let deadline = Instant::now() + limit;
        while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A login that failed, a cancel that could not be sent, an accept error.
fn is_failure(event: &str, fields: &[(&str, Value<'_>)]) -> bool {
    let field = |name: &str| {
        fields.iter().find_map(|(k, v)| match v {
            Value::Str(s) if *k == name => Some(*s),
            _ => None,
        })
    };
    match event {
        "close" => matches!(
            field("outcome"),
            Some("refused" | "failed" | "rejected" | "broken")
        ),
        "cancel" => field("error").is_some(),
        "accept-error" => true,
        _ => false,
    }
}

fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_cannot_forge_a_line() {
        let fields = [
            ("user", Value::Str("x\nrdsiam: proxy: close outcome=ok")),
            ("database", Value::Str("app")),
            ("bytes", Value::Num(3)),
        ];
        let text = Log {
            format: LogFormat::Text,
            quiet: false,
        }
        .format("open", &fields);
        assert_eq!(
            text,
            "rdsiam: proxy: open user=\"x\\nrdsiam: proxy: close outcome=ok\" database=app bytes=3"
        );
        let json = Log {
            format: LogFormat::Json,
            quiet: false,
        }
        .format("open", &fields);
        assert_eq!(json.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["user"], "x\nrdsiam: proxy: close outcome=ok");
        assert_eq!(v["bytes"], 3);
    }
}
