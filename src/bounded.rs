//! Bounds on every AWS call (issue 10): the SDK's timeouts for connect,
//! each attempt and the whole operation with its retries, and a cap on the
//! size of one answer, so an endpoint that accepts and never answers, stalls
//! mid-answer or streams forever fails in seconds with exit 3.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Connecting to an API endpoint never needs more than this.
const CONNECT: Duration = Duration::from_secs(3);

/// The SDK's timeouts for `total`: the whole call (retries included) within
/// `total`, each attempt within a third of it so a stalled attempt leaves
/// room for a retry, and the TCP/TLS connect within 3 s.
pub fn timeouts(total: Duration) -> TimeoutConfig {
    let attempt = (total / 3).max(Duration::from_secs(1)).min(total);
    TimeoutConfig::builder()
        .connect_timeout(CONNECT.min(total))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(total)
        .build()
}

/// Caps each answer's body at `max` bytes before the SDK reads it.
#[derive(Debug)]
pub struct CapResponse {
    pub max: u64,
}

impl Intercept for CapResponse {
    fn name(&self) -> &'static str {
        "rdsiam::CapResponse"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let body = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(Capped {
            inner: Box::pin(body),
            left: self.max,
            max: self.max,
        });
        Ok(())
    }
}

/// A body that fails once more than `max` bytes have come.
struct Capped {
    inner: Pin<Box<SdkBody>>,
    left: u64,
    max: u64,
}

/// The error a too-long answer ends with.
#[derive(Debug)]
pub struct TooLarge(pub u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the answer exceeded {} MiB, more than any AWS answer holds",
            self.0 / (1024 * 1024)
        )
    }
}

impl std::error::Error for TooLarge {}

impl Body for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.left {
                    self.left = 0;
                    return Poll::Ready(Some(Err(Box::new(TooLarge(self.max)))));
                }
                self.left -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fit_inside_the_whole_call() {
        let t = timeouts(Duration::from_secs(15));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(15)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(3)));
        let t = timeouts(Duration::from_secs(1));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(1)));
    }
}
