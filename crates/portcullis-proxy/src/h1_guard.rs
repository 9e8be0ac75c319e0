//! A byte-level guard in front of hyper's HTTP/1 parser, for the smuggling shapes hyper
//! tolerates and then hides: a request with both `Content-Length` and `Transfer-Encoding` (hyper
//! drops the `Content-Length` and reads chunked) and repeated `Content-Length` lines (hyper keeps
//! one). Once hyper has parsed the head, no later stage can see that they were there.
//!
//! The guard holds each request head until it is complete, parses it with httparse (the parser
//! hyper uses), and renames the offending `Content-Length` lines in place to a marker of the
//! same length (`x-pc-cl-and-te`, `x-pc-cl-repeat`), which [`crate::hygiene`] refuses with a 400
//! problem. It follows the body framing (fixed length or chunked) to find the next head on a
//! kept-alive connection; if it ever loses track it fails the connection rather than guess.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Header name standing in for a `Content-Length` sent alongside `Transfer-Encoding`.
pub(crate) const MARK_CL_AND_TE: &str = "x-pc-cl-and-te";
/// Header name standing in for a repeated `Content-Length`.
pub(crate) const MARK_CL_REPEAT: &str = "x-pc-cl-repeat";

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a request head.
    Head,
    /// Passing `n` more body bytes.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Passing `n` more chunk bytes, then the CRLF after them.
    ChunkData(u64),
    /// Expecting the CRLF that ends a chunk; the number is how many of its bytes were seen.
    ChunkEnd(u8),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// After an upgrade request: passthrough if the handler switched protocols, else a new head.
    AwaitUpgrade,
    /// Not HTTP/1 any more (HTTP/2 preface, upgraded connection) or hyper is about to refuse and
    /// close: bytes pass untouched.
    Passthrough,
    /// Framing lost: every further read fails.
    Poisoned,
}

/// The guard around a connection's IO.
pub(crate) struct H1Guard<T> {
    inner: T,
    state: State,
    /// Bytes held back: an incomplete head.
    held: Vec<u8>,
    /// An incomplete chunk-size or trailer line, kept for parsing (its bytes are passed on).
    line: Vec<u8>,
    /// Bytes ready for hyper ahead of anything read next (a head that was completed across reads).
    out: Vec<u8>,
    out_pos: usize,
    max_head: usize,
    at_start: bool,
    after_body: State,
    upgraded: Arc<AtomicBool>,
    /// When the head being received started (ms, `server::now_ms`), 0 between requests: the
    /// connection task closes the connection when a head takes longer than `header_read`.
    head_started: Arc<AtomicU64>,
}

impl<T> H1Guard<T> {
    pub(crate) fn new(inner: T, max_head: usize, upgraded: Arc<AtomicBool>, head_started: Arc<AtomicU64>) -> Self {
        // A new connection owes us a head from the start.
        head_started.store(crate::server::now_ms().max(1), Ordering::Relaxed);
        Self {
            inner,
            state: State::Head,
            held: Vec::new(),
            line: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            max_head,
            at_start: true,
            after_body: State::Head,
            upgraded,
            head_started,
        }
    }

    /// Runs `data` through the framing state machine in place. Returns how many leading bytes
    /// hyper may read now; the rest (an incomplete head) has been moved to `held`. `scanned` is
    /// how many leading bytes of `data` were already searched for the end of a head.
    fn process(&mut self, data: &mut [u8], scanned: usize) -> usize {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Passthrough => return data.len(),
                State::Poisoned => return i,
                State::AwaitUpgrade => {
                    self.state = if self.upgraded.load(Ordering::Acquire) { State::Passthrough } else { State::Head };
                }
                State::Head => match self.head(&mut data[i..], scanned.saturating_sub(i)) {
                    Some(n) => i += n,
                    None => {
                        self.held.extend_from_slice(&data[i..]);
                        return i;
                    }
                },
                State::Fixed(n) | State::ChunkData(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len() - i);
                    i += k;
                    let left = n - k as u64;
                    self.state = match (self.state, left) {
                        (State::Fixed(_), 0) => self.after_body,
                        (State::Fixed(_), l) => State::Fixed(l),
                        (_, 0) => State::ChunkEnd(0),
                        (_, l) => State::ChunkData(l),
                    };
                }
                State::ChunkSize | State::Trailers => {
                    let rest = &data[i..];
                    let Some(pos) = rest.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(rest);
                        if self.line.len() > MAX_LINE {
                            self.state = State::Poisoned;
                        }
                        return data.len();
                    };
                    self.line.extend_from_slice(&rest[..=pos]);
                    i += pos + 1;
                    let line = std::mem::take(&mut self.line);
                    self.state = match (self.state, line.strip_suffix(b"\r\n")) {
                        (_, None) => State::Poisoned,
                        (State::Trailers, Some([])) => self.after_body,
                        (State::Trailers, Some(_)) => State::Trailers,
                        (_, Some(l)) => match chunk_size(l) {
                            Some(0) => State::Trailers,
                            Some(n) => State::ChunkData(n),
                            None => State::Poisoned,
                        },
                    };
                    self.line = line;
                    self.line.clear();
                }
                State::ChunkEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if data[i] != want {
                        self.state = State::Poisoned;
                        return i;
                    }
                    i += 1;
                    self.state = if seen == 0 { State::ChunkEnd(1) } else { State::ChunkSize };
                }
            }
        }
        data.len()
    }

    /// At the start of a head: if it is complete in `data`, checks and rewrites it in place,
    /// sets the body framing and returns its length; `None` if more bytes are needed.
    fn head(&mut self, data: &mut [u8], scanned: usize) -> Option<usize> {
        if self.head_started.load(Ordering::Relaxed) == 0 {
            self.head_started.store(crate::server::now_ms().max(1), Ordering::Relaxed);
        }
        if self.at_start && data.starts_with(&H2_PREFACE[..data.len().min(H2_PREFACE.len())]) {
            if data.len() < H2_PREFACE.len() {
                return None;
            }
            self.state = State::Passthrough;
            self.head_started.store(0, Ordering::Relaxed);
            return Some(data.len());
        }
        let from = scanned.saturating_sub(3);
        let Some(end) = find_head_end(&data[from..]).map(|e| e + from) else {
            if data.len() > self.max_head {
                // hyper will answer 431 and close; pass the bytes on and stop looking.
                self.state = State::Passthrough;
                return Some(data.len());
            }
            return None;
        };
        self.at_start = false;
        self.head_started.store(0, Ordering::Relaxed);
        let framing = inspect_and_mark(&mut data[..end]);
        self.after_body = if framing.upgrade { State::AwaitUpgrade } else { State::Head };
        self.state = match framing.body {
            Body::None | Body::Fixed(0) => self.after_body,
            Body::Fixed(n) => State::Fixed(n),
            Body::Chunked => State::ChunkSize,
            // hyper refuses this head (and answers 400/431); should it ever accept it, nothing
            // after the head is passed on: the guard fails closed rather than stop checking.
            Body::Unparsable => State::Poisoned,
        };
        Some(end)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next()?;
    let size = size.trim_ascii();
    if size.is_empty() || size.len() > 15 {
        return None;
    }
    let s = std::str::from_utf8(size).ok()?;
    u64::from_str_radix(s, 16).ok()
}

enum Body {
    None,
    Fixed(u64),
    Chunked,
    Unparsable,
}

struct Framing {
    body: Body,
    upgrade: bool,
}

/// Parses a complete head; renames `Content-Length` lines that must not be there; returns the
/// body framing hyper will use.
fn inspect_and_mark(head: &mut [u8]) -> Framing {
    let mut marks: Vec<(usize, &'static str)> = Vec::new();
    let framing = {
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Framing { body: Body::Unparsable, upgrade: false },
        }
        let base = head.as_ptr() as usize;
        let mut cls = Vec::new();
        let mut te_chunked = None;
        let mut upgrade = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                cls.push((h.name.as_ptr() as usize - base, h.value));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
                te_chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if te_chunked.is_some() {
            marks.extend(cls.iter().map(|(off, _)| (*off, MARK_CL_AND_TE)));
        } else if cls.len() > 1 {
            marks.extend(cls.iter().skip(1).map(|(off, _)| (*off, MARK_CL_REPEAT)));
        }
        let body = match (te_chunked, cls.first()) {
            (Some(true), _) => Body::Chunked,
            (Some(false), _) => Body::Unparsable,
            (None, Some((_, v))) => match std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) => Body::Fixed(n),
                None => Body::Unparsable,
            },
            (None, None) => Body::None,
        };
        Framing { body, upgrade }
    };
    for (off, mark) in marks {
        if let Some(slot) = head.get_mut(off..off + mark.len()) {
            slot.copy_from_slice(mark.as_bytes());
        }
    }
    framing
}

impl<T: AsyncRead + Unpin> AsyncRead for H1Guard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            match this.state {
                State::Poisoned => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP/1 framing lost")));
                }
                // Nothing to inspect: read straight into hyper's buffer.
                State::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                _ => {}
            }
            // Read straight into hyper's buffer and inspect the new bytes where they landed.
            let start = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let end = buf.filled().len();
            if end == start {
                // EOF: hand over whatever was held so hyper sees the truncated message.
                if this.held.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.out.append(&mut this.held);
                continue;
            }
            if this.held.is_empty() {
                let n = this.process(&mut buf.filled_mut()[start..end], 0);
                buf.set_filled(start + n);
                if n > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // The rest of a head that began in an earlier read: join them, then go on in
                // place in the joined buffer; what is ready goes out ahead of the next read.
                let mut joined = std::mem::take(&mut this.held);
                let scanned = joined.len();
                joined.extend_from_slice(&buf.filled()[start..end]);
                buf.set_filled(start);
                let n = this.process(&mut joined, scanned);
                this.out.extend_from_slice(&joined[..n]);
            }
            // Everything read so far is held back: read again (Pending if nothing is there).
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for H1Guard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds the chunks as successive reads and returns what hyper would have read.
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, State) {
        let mut g = H1Guard::new((), 8192, Arc::new(AtomicBool::new(false)), Arc::default());
        let mut delivered = Vec::new();
        for c in chunks {
            feed(&mut g, c, &mut delivered);
        }
        (delivered, g.state)
    }

    /// One read of `c`, as poll_read handles it.
    fn feed(g: &mut H1Guard<()>, c: &[u8], delivered: &mut Vec<u8>) {
        if g.held.is_empty() {
            let mut data = c.to_vec();
            let n = g.process(&mut data, 0);
            delivered.extend_from_slice(&g.out);
            g.out.clear();
            delivered.extend_from_slice(&data[..n]);
        } else {
            let mut joined = std::mem::take(&mut g.held);
            let scanned = joined.len();
            joined.extend_from_slice(c);
            let n = g.process(&mut joined, scanned);
            delivered.extend_from_slice(&joined[..n]);
        }
    }

    #[test]
    fn plain_requests_pass_unchanged_in_any_split() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 0..stream.len() {
            let (out, state) = run(&[&stream[..split], &stream[split..]]);
            assert_eq!(out, stream, "split at {split}");
            assert_eq!(state, State::Head, "split at {split}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytewise).0, stream);
    }

    #[test]
    fn cl_with_te_is_marked_in_either_order() {
        let (out, _) = run(&[b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]);
        assert!(out.windows(14).any(|w| w == MARK_CL_AND_TE.as_bytes()), "{}", String::from_utf8_lossy(&out));
        let (out, _) = run(&[b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n"]);
        assert!(out.windows(14).any(|w| w == MARK_CL_AND_TE.as_bytes()));
        assert!(!out.windows(14).any(|w| w.eq_ignore_ascii_case(b"content-length")));
    }

    #[test]
    fn repeated_cl_is_marked() {
        let (out, state) = run(&[b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"]);
        assert!(out.windows(14).any(|w| w == MARK_CL_REPEAT.as_bytes()));
        assert_eq!(state, State::Head);
    }

    #[test]
    fn broken_chunk_framing_poisons() {
        let (_, state) = run(&[b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert_eq!(state, State::Poisoned);
        let (_, state) = run(&[b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX"]);
        assert_eq!(state, State::Poisoned);
    }

    #[test]
    fn an_unparsable_head_is_passed_on_and_nothing_after_it() {
        let head: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n";
        let (out, state) = run(&[head, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"]);
        assert_eq!(out, head, "hyper gets the bad head (to answer it), not the request behind it");
        assert_eq!(state, State::Poisoned);
        let (_, state) = run(&[b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"]);
        assert_eq!(state, State::Poisoned);
    }

    #[test]
    fn h2_preface_and_upgrades_pass_through() {
        let (out, state) = run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"]);
        assert_eq!(state, State::Passthrough);
        assert_eq!(out.len(), 26);
        let mut g = H1Guard::new((), 8192, Arc::new(AtomicBool::new(true)), Arc::default());
        let mut sink = Vec::new();
        feed(&mut g, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", &mut sink);
        assert_eq!(g.state, State::AwaitUpgrade);
        feed(&mut g, b"\x81\x05hello", &mut sink);
        assert_eq!(g.state, State::Passthrough);
    }

    fn request(body: &[u8], chunked: Option<usize>) -> Vec<u8> {
        let mut r = b"POST /p HTTP/1.1\r\nHost: x\r\n".to_vec();
        match chunked {
            None => {
                r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                r.extend_from_slice(body);
            }
            Some(size) => {
                r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for c in body.chunks(size.max(1)) {
                    r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    r.extend_from_slice(c);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
            }
        }
        r
    }

    proptest::proptest! {
        #[test]
        fn valid_streams_pass_unchanged_whatever_the_reads(
            reqs in proptest::collection::vec((proptest::collection::vec(proptest::num::u8::ANY, 0..300), proptest::option::of(1usize..64)), 1..5),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let stream: Vec<u8> = reqs.iter().flat_map(|(b, c)| request(b, *c)).collect();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points {
                pieces.push(&stream[last..p]);
                last = p;
            }
            pieces.push(&stream[last..]);
            let (out, state) = run(&pieces);
            proptest::prop_assert_eq!(out, stream);
            proptest::prop_assert_eq!(state, State::Head);
        }
    }
}
