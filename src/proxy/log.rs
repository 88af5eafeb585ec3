//! The proxy's log on stderr: one line when a connection opens and one when
//! it closes, plus start, drain and stop. `text` is for people
//! (`rdsiam: proxy: key=value …`), `json` one object per line for machines.
//! Fields are built by the caller from names and counts; a token never
//! reaches here (it lives only in `token::Redacted`).

use std::io::Write as _;

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
        // A closed stderr must not take the proxy down.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
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
