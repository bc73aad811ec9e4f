//! A socket whose writes fail once they have made no progress for a while.
//!
//! hyper bounds how long a client may take to send a request's head (and
//! [`super::body`] its body), but nothing bounds how long a client may take
//! to *read* the answers: one that pipelines requests and never reads
//! parks its connection task on a full send buffer forever, holding a
//! connection slot and the buffered answers. With enough such sockets the
//! cap is reached and nobody else is served. Here a write (or flush) that
//! stays blocked for `limit` fails with `TimedOut`, and hyper closes the
//! connection. A slow reader that keeps draining is not affected: every
//! byte written restarts the clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An I/O stream whose blocked writes time out after `limit`.
#[derive(Debug)]
pub(super) struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first blocks, disarmed by progress. Allocated on
    /// the first block only and reused: answers that fit the send buffer
    /// (nearly all) never touch a timer.
    stalled: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> StallGuard<S> {
    pub(super) fn new(inner: S, limit: Duration) -> Self {
        StallGuard { inner, limit, stalled: None, armed: false }
    }

    /// What a write's poll result means under the guard: progress disarms,
    /// a block arms the timer (or fails once it has fired).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        let at = Instant::now() + self.limit;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !self.armed {
            sleep.as_mut().reset(at);
            self.armed = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing of the answer for {:?}", self.limit),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A duplex pipe whose reader never reads: writes block once its
    /// buffer is full, like a socket whose peer stopped reading.
    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_limit_fails() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(ours, Duration::from_secs(30));
        let started = Instant::now();
        let err = guarded.write_all(&[0u8; 1024]).await.expect_err("the peer reads nothing");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    /// Progress restarts the clock: a reader that drains slowly, but more
    /// often than the limit, is never cut off.
    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_served() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 64];
            while got.len() < 1024 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let n = theirs.read(&mut chunk).await.expect("read");
                got.extend_from_slice(&chunk[..n]);
            }
            got.len()
        });
        let mut guarded = StallGuard::new(ours, Duration::from_secs(30));
        guarded.write_all(&[7u8; 1024]).await.expect("each block ends within the limit");
        guarded.flush().await.expect("flush");
        assert_eq!(reader.await.expect("reader"), 1024);
    }
}
