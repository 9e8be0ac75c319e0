//! Body wrappers: a request body with a byte cap and a deadline, and a response body that reports
//! completion to the pipeline when it ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use tokio::time::{Instant, Sleep};

use crate::handler::CompletionGuard;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// What happened to a request body, shared between the body (read by hyper's client) and the
/// handler (which maps a failed upstream call back to 413 or 408).
#[derive(Debug, Default)]
pub(crate) struct BodyStatus {
    bytes: AtomicU64,
    state: AtomicU8,
}

pub(crate) const BODY_OK: u8 = 0;
pub(crate) const BODY_TOO_LARGE: u8 = 1;
pub(crate) const BODY_TIMEOUT: u8 = 2;

impl BodyStatus {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body over the limit")]
    TooLarge,
    #[error("request body not received in time")]
    Timeout,
}

/// A client body with a cap and a deadline. Going over either ends the stream with an error,
/// which aborts the upstream request.
pub(crate) struct LimitedBody<B> {
    inner: B,
    limit: u64,
    deadline: Pin<Box<Sleep>>,
    status: Arc<BodyStatus>,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, limit: u64, deadline: Instant, status: Arc<BodyStatus>) -> Self {
        Self { inner, limit, deadline: Box::pin(tokio::time::sleep_until(deadline)), status }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.status.state() != BODY_OK {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.status.bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                    if total > this.limit {
                        this.status.state.store(BODY_TOO_LARGE, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge.into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.status.state.store(BODY_TIMEOUT, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyError::Timeout.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body sent to the client. Counts bytes and runs the pipeline's completion phase exactly
/// once: when the body ends, fails, or is dropped (client gone).
pub(crate) struct ResponseBody {
    inner: ProxyBody,
    guard: Option<CompletionGuard>,
}

impl ResponseBody {
    pub(crate) fn new(inner: ProxyBody, guard: CompletionGuard) -> Self {
        Self { inner, guard: Some(guard) }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(g)) = (frame.data_ref(), this.guard.as_mut()) {
                    g.add_bytes_out(data.len() as u64);
                }
                if this.inner.is_end_stream()
                    && let Some(g) = this.guard.take()
                {
                    g.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(g) = this.guard.take() {
                    g.finish(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(g) = this.guard.take() {
                    g.finish(false);
                }
            }
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            // hyper never polls an empty body; that is a complete response, not an abort.
            let complete = self.inner.is_end_stream();
            g.finish(!complete);
        }
    }
}
