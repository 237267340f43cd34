//! Bounds on what a WebSocket client can make the server hold, below the frame codec.
//!
//! - [`FrameGuard`] sits between the socket's byte stream and actix-ws's codec and reads each frame's
//!   header as it passes. A header that declares a payload over the limit ends the stream *at the
//!   header*, before a byte of that payload is read (the connection then closes with 1009). The codec
//!   itself (actix-http 3) only checks a frame's size once the whole payload has arrived, so without
//!   this guard a header declaring 2^63 bytes makes it buffer whatever the client sends.
//! - [`Reassembler`] joins a fragmented text message (a first frame, continuations, a last frame, as
//!   browsers send large messages) up to the message limit. A message that grows past the limit is
//!   dropped as it arrives (nothing more of it is kept) and answered once, when it ends.
//!
//! Together with the codec's own frame limit this bounds the bytes buffered per connection to about
//! one frame of at most the frame limit, plus one message of at most the message limit.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_ws::Item;
use bytes::{Bytes, BytesMut};
use futures::Stream;

/// Largest WebSocket frame header: 2 bytes, an 8-byte extended length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Reading a header: `have` of its bytes so far.
    Header { buf: [u8; MAX_HEADER], have: usize },
    /// Inside a payload, `left` bytes to go.
    Payload { left: u64 },
}

/// Reads frame headers as bytes pass and stops the stream at a header declaring more than the limit.
/// The guard only observes: bytes pass through unchanged.
pub struct FrameGuard<S> {
    inner: S,
    limit: u64,
    at: At,
    /// Set to the declared length when a header was refused.
    tripped: Rc<Cell<Option<u64>>>,
    done: bool,
}

impl<S> FrameGuard<S> {
    /// A guard over `inner` refusing frames over `limit` bytes; `tripped` is set when it does.
    pub fn new(inner: S, limit: usize, tripped: Rc<Cell<Option<u64>>>) -> Self {
        FrameGuard {
            inner,
            limit: limit as u64,
            at: At::Header {
                buf: [0; MAX_HEADER],
                have: 0,
            },
            tripped,
            done: false,
        }
    }
}

/// The total header length once the first two bytes are known.
fn header_len(b0_b1: [u8; 2]) -> usize {
    let ext = match b0_b1[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b0_b1[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// The payload length a complete header declares.
fn declared_len(h: &[u8]) -> u64 {
    match h[1] & 0x7F {
        126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        n => u64::from(n),
    }
}

/// Scans `chunk` from the current position; returns the offset of the header that declares too
/// much (its first byte), if one does.
fn scan(at: &mut At, limit: u64, chunk: &[u8]) -> Option<(usize, u64)> {
    let mut i = 0;
    // Where the header being read started in this chunk (0 when it began in an earlier chunk).
    let mut header_start = 0;
    while i < chunk.len() {
        match at {
            At::Payload { left } => {
                let take = (*left).min((chunk.len() - i) as u64);
                i += take as usize;
                *left -= take;
                if *left == 0 {
                    *at = At::Header {
                        buf: [0; MAX_HEADER],
                        have: 0,
                    };
                    header_start = i;
                }
            }
            At::Header { buf, have } => {
                let need = if *have < 2 {
                    2
                } else {
                    header_len([buf[0], buf[1]])
                };
                let take = (need - *have).min(chunk.len() - i);
                buf[*have..*have + take].copy_from_slice(&chunk[i..i + take]);
                *have += take;
                i += take;
                if *have < need {
                    continue;
                }
                if *have == 2 && header_len([buf[0], buf[1]]) > 2 {
                    continue; // the extended length and mask follow
                }
                let len = declared_len(&buf[..*have]);
                if len > limit {
                    return Some((header_start, len));
                }
                *at = if len == 0 {
                    header_start = i;
                    At::Header {
                        buf: [0; MAX_HEADER],
                        have: 0,
                    }
                } else {
                    At::Payload { left: len }
                };
            }
        }
    }
    None
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match scan(&mut this.at, this.limit, &chunk) {
                None => Poll::Ready(Some(Ok(chunk))),
                Some((offset, declared)) => {
                    // What came before the refused header is passed on; nothing after it is read.
                    this.done = true;
                    this.tripped.set(Some(declared));
                    if offset > 0 {
                        Poll::Ready(Some(Ok(chunk.slice(..offset))))
                    } else {
                        Poll::Ready(None)
                    }
                }
            },
            other => other,
        }
    }
}

/// A complete client message out of the reassembler.
#[derive(Debug, PartialEq)]
pub enum Assembled {
    /// A text message within the limit.
    Text(String),
    /// A text message over the limit (its declared or reached size): dropped.
    TooLarge(usize),
    /// A binary message (dropped: audio is not read yet).
    Binary,
    /// A text message that is not UTF-8.
    NotUtf8,
}

/// Joins fragmented messages up to `limit` bytes.
#[derive(Debug)]
pub struct Reassembler {
    limit: usize,
    state: Assembly,
}

#[derive(Debug)]
enum Assembly {
    Idle,
    Text(BytesMut),
    /// Over the limit: the rest of the message is dropped as it comes; `seen` bytes so far.
    DroppingText {
        seen: usize,
    },
    Binary,
}

impl Reassembler {
    /// A reassembler for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Reassembler {
            limit,
            state: Assembly::Idle,
        }
    }

    /// Bytes held for the message being reassembled.
    pub fn buffered(&self) -> usize {
        match &self.state {
            Assembly::Text(b) => b.len(),
            _ => 0,
        }
    }

    fn grow(&mut self, data: &[u8]) {
        let limit = self.limit;
        self.state = match std::mem::replace(&mut self.state, Assembly::Idle) {
            Assembly::Text(mut buf) if buf.len() + data.len() <= limit => {
                buf.extend_from_slice(data);
                Assembly::Text(buf)
            }
            Assembly::Text(buf) => Assembly::DroppingText {
                seen: buf.len() + data.len(),
            },
            Assembly::DroppingText { seen } => Assembly::DroppingText {
                seen: seen.saturating_add(data.len()),
            },
            other => other,
        };
    }

    /// Takes one fragment; returns the message when its last fragment arrived.
    pub fn push(&mut self, item: Item) -> Option<Assembled> {
        match item {
            Item::FirstText(data) => {
                self.state = Assembly::Text(BytesMut::new());
                self.grow(&data);
                None
            }
            Item::FirstBinary(_) => {
                self.state = Assembly::Binary;
                None
            }
            Item::Continue(data) => {
                self.grow(&data);
                None
            }
            Item::Last(data) => {
                self.grow(&data);
                Some(match std::mem::replace(&mut self.state, Assembly::Idle) {
                    Assembly::Text(buf) => match String::from_utf8(buf.to_vec()) {
                        Ok(s) => Assembled::Text(s),
                        Err(_) => Assembled::NotUtf8,
                    },
                    Assembly::DroppingText { seen } => Assembled::TooLarge(seen),
                    Assembly::Binary => Assembled::Binary,
                    // The codec refuses a last fragment without a first one.
                    Assembly::Idle => Assembled::Binary,
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A masked client frame header declaring `len`.
    fn header(opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![0x80 | opcode];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(opcode: u8, len: usize) -> Vec<u8> {
        let mut f = header(opcode, len as u64);
        f.extend(std::iter::repeat_n(b'a', len));
        f
    }

    async fn run(chunks: Vec<Vec<u8>>, limit: usize) -> (Vec<u8>, Option<u64>) {
        let tripped = Rc::new(Cell::new(None));
        let inner = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, PayloadError>(Bytes::from(c))),
        );
        let mut g = FrameGuard::new(inner, limit, tripped.clone());
        let mut out = Vec::new();
        while let Some(Ok(b)) = g.next().await {
            out.extend_from_slice(&b);
        }
        (out, tripped.get())
    }

    #[tokio::test]
    async fn frames_within_the_limit_pass_unchanged_however_they_are_cut() {
        let mut bytes = frame(1, 10);
        bytes.extend(frame(1, 300));
        bytes.extend(frame(9, 0));
        bytes.extend(frame(1, 70_000));
        for cut in [1, 2, 3, 7, 13, 64, 4096, bytes.len()] {
            let chunks: Vec<Vec<u8>> = bytes.chunks(cut).map(<[u8]>::to_vec).collect();
            let (out, tripped) = run(chunks, 70_000).await;
            assert_eq!(tripped, None, "cut {cut}");
            assert_eq!(out, bytes, "cut {cut}");
        }
    }

    #[tokio::test]
    async fn a_huge_header_stops_the_stream_before_its_payload() {
        let mut bytes = frame(1, 5);
        let before = bytes.len();
        bytes.extend(header(1, 1 << 40)); // 1 TB declared
        bytes.extend(vec![b'a'; 1000]);
        for cut in [1, 3, 5, 1000, bytes.len()] {
            let chunks: Vec<Vec<u8>> = bytes.chunks(cut).map(<[u8]>::to_vec).collect();
            let (out, tripped) = run(chunks, 65_536).await;
            assert_eq!(tripped, Some(1 << 40), "cut {cut}");
            // At most the first frame and the part of the refused header that came with it.
            assert!(
                out.len() <= before + 14,
                "cut {cut}: {} bytes passed",
                out.len()
            );
            assert_eq!(&out[..before], &bytes[..before]);
        }
    }

    #[test]
    fn fragments_join_up_to_the_limit_and_an_oversized_message_is_dropped_once() {
        let mut r = Reassembler::new(10);
        assert_eq!(r.push(Item::FirstText(Bytes::from_static(b"{\"a\""))), None);
        assert_eq!(r.push(Item::Continue(Bytes::from_static(b":1"))), None);
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"}"))),
            Some(Assembled::Text("{\"a\":1}".into()))
        );
        assert_eq!(
            r.push(Item::FirstText(Bytes::from_static(b"0123456"))),
            None
        );
        assert_eq!(r.push(Item::Continue(Bytes::from_static(b"789ab"))), None);
        assert_eq!(r.buffered(), 0, "nothing of an oversized message is kept");
        for _ in 0..100 {
            assert_eq!(r.push(Item::Continue(Bytes::from_static(b"more"))), None);
        }
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"!"))),
            Some(Assembled::TooLarge(413))
        );
        // The next message is read normally.
        assert_eq!(r.push(Item::FirstText(Bytes::from_static(b"ok"))), None);
        assert_eq!(
            r.push(Item::Last(Bytes::new())),
            Some(Assembled::Text("ok".into()))
        );
        assert_eq!(r.push(Item::FirstBinary(Bytes::from_static(b"x"))), None);
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"y"))),
            Some(Assembled::Binary)
        );
        assert_eq!(r.push(Item::FirstText(Bytes::from_static(&[0xff]))), None);
        assert_eq!(r.push(Item::Last(Bytes::new())), Some(Assembled::NotUtf8));
    }
}
