//! `FrameGuard`: the inbound bytes of one WebSocket, watched frame header by
//! frame header on their way to the actix codec, so that a frame (or a
//! fragmented message) larger than `max_frame_bytes` is refused the moment
//! its header arrives, not after it has been buffered whole.
//!
//! Why: actix-http's `ws::Parser` compares a frame's length with its limit
//! only once the whole frame is in its buffer, and `actix-web-actors` keeps
//! reading into that buffer meanwhile, so a header declaring 2^40 bytes
//! followed by streamed data grows the server without bound. The guard also
//! refuses, as protocol errors, what the codec would let through only to log
//! an ERROR about (a fragmented control frame) or buffer first (a control
//! frame over 125 bytes, RFC 6455 §5.5).
//!
//! It owns the framing position of the connection's inbound bytes and
//! nothing else. It never copies or holds a payload: per chunk it does header
//! arithmetic and hands the chunk on, whole or as zero-copy slices. Only a
//! header split across two reads (at most 14 bytes) is copied. Every other
//! protocol rule (masking, opcodes, UTF-8, continuation order) stays with the
//! codec.
//!
//! A refusal travels in-band, so frames read before the refused one are still
//! handled, in order: the guard forwards everything up to the refused header,
//! records the [`Violation`] in the [`Refusals`] cell it shares with the
//! session, and forwards an empty close frame in place of the refused one;
//! the session, reading a close while a refusal is recorded, closes the
//! connection with the refusal's code. From then on the guard forwards only
//! the client's close frames (its answer to the server's close) and drops
//! everything else as it arrives, the rest of the refused frame included,
//! until the session ends the connection.
//!
//! It also turns the end of the connection, which actix-http reports as an
//! error, into the end of the stream, so the frames read before it are handled
//! rather than dropped with the codec's buffer.

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_core::Stream;

/// Why the guard refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A frame, or a fragmented message so far, over the size limit (1009).
    TooBig,
    /// A fragmented control frame, or one over 125 bytes (1002).
    Protocol,
}

/// The guard's refusal, waiting for its session to act on it. The guard and
/// the session run on the same worker thread, in the same task.
#[derive(Clone, Debug, Default)]
pub struct Refusals(Rc<Cell<Option<Violation>>>);

impl Refusals {
    /// The refusal recorded since the last call, if any.
    pub fn take(&self) -> Option<Violation> {
        self.0.take()
    }

    fn record(&self, violation: Violation) {
        self.0.set(Some(violation));
    }
}

/// A masked close frame with no payload (mask key 0): what the codec reads
/// in place of a refused frame.
const REFUSAL_MARKER: &[u8] = &[0x88, 0x80, 0, 0, 0, 0];

/// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask key.
const MAX_HEADER: usize = 14;

const OPCODE_CONTINUATION: u8 = 0x0;
const OPCODE_CLOSE: u8 = 0x8;
/// Control frames (close, ping, pong, reserved) have the high opcode bit set.
const CONTROL_BIT: u8 = 0x8;
/// RFC 6455 §5.5.
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// The part of a frame header the guard needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    /// Bytes of the header itself.
    size: usize,
}

/// The header's size, known from its second byte.
fn header_size(second: u8) -> usize {
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// Reads a header from the start of `bytes`; `None` while it is incomplete.
fn parse_header(bytes: &[u8]) -> Option<Header> {
    let (first, second) = (*bytes.first()?, *bytes.get(1)?);
    let size = header_size(second);
    if bytes.len() < size {
        return None;
    }
    let len = match second & 0x7f {
        126 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&bytes[2..10]);
            u64::from_be_bytes(be)
        }
        n => u64::from(n),
    };
    Some(Header {
        fin: first & 0x80 != 0,
        opcode: first & 0x0f,
        len,
        size,
    })
}

/// What the guard hands on, in order.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Forward(Bytes),
    Refuse(Violation),
}

/// What becomes of one frame.
enum Verdict {
    Forward,
    Drop,
    Refuse(Violation),
}

/// The framing position: pure, fed chunk by chunk.
#[derive(Debug)]
struct Tracker {
    limit: u64,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Whether they are forwarded (false: dropped).
    forwarding: bool,
    /// The start of a header split across reads.
    partial: [u8; MAX_HEADER],
    partial_len: usize,
    /// Payload bytes of the fragmented data message in progress, if any.
    message: Option<u64>,
    /// A frame was refused: only close frames pass from now on.
    refused: bool,
}

impl Tracker {
    fn new(limit: usize) -> Tracker {
        Tracker {
            limit: u64::try_from(limit).unwrap_or(u64::MAX),
            remaining: 0,
            forwarding: true,
            partial: [0; MAX_HEADER],
            partial_len: 0,
            message: None,
            refused: false,
        }
    }

    fn judge(&mut self, header: &Header) -> Verdict {
        let control = header.opcode & CONTROL_BIT != 0;
        if self.refused {
            let answer =
                header.opcode == OPCODE_CLOSE && header.fin && header.len <= MAX_CONTROL_PAYLOAD;
            return if answer {
                Verdict::Forward
            } else {
                Verdict::Drop
            };
        }
        if control {
            if !header.fin || header.len > MAX_CONTROL_PAYLOAD {
                return Verdict::Refuse(Violation::Protocol);
            }
            return Verdict::Forward;
        }
        let total = match header.opcode {
            OPCODE_CONTINUATION => self.message.unwrap_or(0).saturating_add(header.len),
            _ => header.len,
        };
        if total > self.limit {
            return Verdict::Refuse(Violation::TooBig);
        }
        self.message = (!header.fin).then_some(total);
        Verdict::Forward
    }

    /// Moves through `chunk`, queueing what to hand on into `out`.
    fn feed(&mut self, chunk: Bytes, out: &mut VecDeque<Step>) {
        let len = chunk.len();
        // Bytes `run..pos` of the chunk are to be forwarded as one slice.
        let mut run = 0;
        let mut pos = 0;
        while pos < len {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining).map_or(len - pos, |r| r.min(len - pos));
                if !self.forwarding {
                    forward(&chunk, run, pos, out);
                    run = pos + n;
                }
                pos += n;
                self.remaining -= n as u64;
                continue;
            }
            let header_start = pos;
            let (header, held) = if self.partial_len == 0 {
                match parse_header(&chunk[pos..]) {
                    Some(header) => {
                        pos += header.size;
                        (header, None)
                    }
                    None => {
                        // Hold the header back until it is whole: a refusal
                        // must not leave half a header in the codec.
                        forward(&chunk, run, pos, out);
                        self.partial_len = len - pos;
                        self.partial[..self.partial_len].copy_from_slice(&chunk[pos..]);
                        return;
                    }
                }
            } else {
                loop {
                    let needed = match self.partial_len {
                        0 | 1 => 2,
                        _ => header_size(self.partial[1]),
                    };
                    if self.partial_len == needed || pos == len {
                        break;
                    }
                    self.partial[self.partial_len] = chunk[pos];
                    self.partial_len += 1;
                    pos += 1;
                }
                run = pos;
                match parse_header(&self.partial[..self.partial_len]) {
                    Some(header) => {
                        let held = Bytes::copy_from_slice(&self.partial[..self.partial_len]);
                        self.partial_len = 0;
                        (header, Some(held))
                    }
                    None => return,
                }
            };
            self.remaining = header.len;
            match self.judge(&header) {
                Verdict::Forward => {
                    self.forwarding = true;
                    if let Some(held) = held {
                        out.push_back(Step::Forward(held));
                    }
                }
                Verdict::Drop => {
                    self.forwarding = false;
                    forward(&chunk, run, header_start.max(run), out);
                    run = pos;
                }
                Verdict::Refuse(violation) => {
                    self.forwarding = false;
                    self.refused = true;
                    forward(&chunk, run, header_start.max(run), out);
                    out.push_back(Step::Refuse(violation));
                    run = pos;
                }
            }
        }
        if run == 0 && pos == len && len > 0 {
            // The common case: the whole chunk passes, not even sliced.
            out.push_back(Step::Forward(chunk));
        } else {
            forward(&chunk, run, pos, out);
        }
    }
}

/// Queues bytes `from..to` of `chunk`, if any.
fn forward(chunk: &Bytes, from: usize, to: usize, out: &mut VecDeque<Step>) {
    if from < to {
        out.push_back(Step::Forward(chunk.slice(from..to)));
    }
}

/// The guarded inbound stream of one WebSocket (see the module docs).
pub struct FrameGuard<S> {
    inner: S,
    tracker: Tracker,
    queue: VecDeque<Step>,
    refusals: Refusals,
}

impl<S> FrameGuard<S> {
    /// Guards `inner` with `limit` bytes per frame and per message; a refusal
    /// is recorded in `refusals` for the session.
    pub fn new(inner: S, limit: usize, refusals: Refusals) -> FrameGuard<S> {
        FrameGuard {
            inner,
            tracker: Tracker::new(limit),
            queue: VecDeque::new(),
            refusals,
        }
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.queue.pop_front() {
                Some(Step::Forward(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Some(Step::Refuse(violation)) => {
                    this.refusals.record(violation);
                    return Poll::Ready(Some(Ok(Bytes::from_static(REFUSAL_MARKER))));
                }
                None => {}
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.tracker.feed(chunk, &mut this.queue),
                // The connection ended (actix-http reports a peer's FIN or reset as
                // an error on the body): end the stream instead. The codec reading
                // it returns an error at once, dropping the frames already in its
                // buffer, while at the end of a stream it hands them on first; the
                // last message a client wrote before it dropped is still handled.
                Poll::Ready(Some(Err(error))) => {
                    tracing::debug!(%error, "connection ended");
                    return Poll::Ready(None);
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 100;

    /// A masked client frame with `len` payload bytes of `fill`.
    fn frame(fin: bool, opcode: u8, len: usize, fill: u8) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(std::iter::repeat_n(fill, len));
        out
    }

    /// A header declaring `len` bytes, without its payload.
    fn header_only(opcode: u8, len: u64) -> Vec<u8> {
        let mut out = vec![0x80 | opcode, 0x80 | 127];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    /// What the codec would read, with each refusal as `None`.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Bytes(Vec<u8>),
        Refused(Violation),
    }

    /// Feeds `input` cut at `cuts`, and merges adjacent forwarded bytes.
    fn run(input: &[u8], cuts: &[usize]) -> Vec<Seen> {
        let mut tracker = Tracker::new(LIMIT);
        let mut out = VecDeque::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            tracker.feed(Bytes::copy_from_slice(&input[from..cut]), &mut out);
            from = cut;
        }
        let mut seen: Vec<Seen> = Vec::new();
        for step in out {
            match step {
                Step::Forward(bytes) => {
                    assert!(!bytes.is_empty(), "an empty chunk was forwarded");
                    match seen.last_mut() {
                        Some(Seen::Bytes(last)) => last.extend_from_slice(&bytes),
                        _ => seen.push(Seen::Bytes(bytes.to_vec())),
                    }
                }
                Step::Refuse(violation) => seen.push(Seen::Refused(violation)),
            }
        }
        seen
    }

    /// The same outcome whole, and cut at every one and every two places.
    fn check_every_split(input: &[u8], expected: &[Seen]) {
        assert_eq!(run(input, &[]), expected, "whole");
        for a in 0..=input.len() {
            assert_eq!(run(input, &[a]), expected, "cut at {a}");
            for b in a..=input.len() {
                assert_eq!(run(input, &[a, b]), expected, "cut at {a} and {b}");
            }
        }
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn frames_within_the_limit_pass_untouched() {
        let input = concat(&[
            &frame(true, 0x1, 5, b'a'),
            &frame(true, 0x1, 0, 0),
            &frame(true, 0x9, 3, b'p'),
            &frame(true, 0x1, LIMIT, b'b'),
            &frame(false, 0x1, 60, b'c'),
            &frame(true, 0xA, 0, 0),
            &frame(true, 0x0, 40, b'd'),
            &frame(true, 0x8, 2, 0),
        ]);
        check_every_split(&input, &[Seen::Bytes(input.clone())]);
    }

    #[test]
    fn the_16_bit_length_form_is_read() {
        let mut tracker = Tracker::new(200);
        let mut out = VecDeque::new();
        let input = frame(true, 0x1, 130, b'x');
        tracker.feed(Bytes::from(input.clone()), &mut out);
        assert_eq!(out, [Step::Forward(Bytes::from(input))]);
        let mut out = VecDeque::new();
        tracker.feed(Bytes::from(frame(true, 0x1, 201, b'x')), &mut out);
        assert_eq!(out, [Step::Refuse(Violation::TooBig)]);
    }

    #[test]
    fn a_whole_chunk_is_handed_on_as_is() {
        let mut tracker = Tracker::new(LIMIT);
        let mut out = VecDeque::new();
        let chunk = Bytes::from(frame(true, 0x1, 10, b'a'));
        let address = chunk.as_ptr();
        tracker.feed(chunk, &mut out);
        match out.pop_front() {
            Some(Step::Forward(bytes)) => assert_eq!(bytes.as_ptr(), address),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_huge_declared_length_is_refused_at_its_header() {
        let before = frame(true, 0x1, 7, b'a');
        let input = concat(&[&before, &header_only(0x1, 1 << 40), &[b'z'; 50]]);
        check_every_split(
            &input,
            &[Seen::Bytes(before), Seen::Refused(Violation::TooBig)],
        );
    }

    #[test]
    fn one_byte_over_the_limit_is_refused() {
        let input = concat(&[
            &frame(true, 0x1, LIMIT + 1, b'a'),
            &frame(true, 0x1, 3, b'b'),
        ]);
        // After a refusal, data frames are dropped too.
        check_every_split(&input, &[Seen::Refused(Violation::TooBig)]);
    }

    #[test]
    fn a_fragmented_message_is_refused_when_its_total_passes_the_limit() {
        let first = frame(false, 0x1, 60, b'a');
        let middle = frame(false, 0x0, 40, b'b');
        let input = concat(&[&first, &middle, &frame(true, 0x0, 1, b'c')]);
        check_every_split(
            &input,
            &[
                Seen::Bytes(concat(&[&first, &middle])),
                Seen::Refused(Violation::TooBig),
            ],
        );
    }

    #[test]
    fn a_finished_message_starts_the_count_again() {
        let input = concat(&[
            &frame(false, 0x1, 60, b'a'),
            &frame(true, 0x0, 40, b'b'),
            &frame(false, 0x1, 60, b'c'),
            &frame(true, 0x0, 40, b'd'),
        ]);
        check_every_split(&input, &[Seen::Bytes(input.clone())]);
    }

    #[test]
    fn a_fragmented_ping_is_a_protocol_error() {
        let input = frame(false, 0x9, 4, b'p');
        check_every_split(&input, &[Seen::Refused(Violation::Protocol)]);
    }

    #[test]
    fn a_control_frame_over_125_bytes_is_a_protocol_error() {
        let input = frame(true, 0x9, 126, b'p');
        check_every_split(&input, &[Seen::Refused(Violation::Protocol)]);
    }

    #[test]
    fn after_a_refusal_only_the_clients_close_passes() {
        let close = frame(true, 0x8, 2, 0x03);
        let input = concat(&[
            &frame(true, 0x1, LIMIT + 1, b'a'),
            &frame(true, 0x9, 1, b'p'),
            &frame(true, 0x1, 5, b'b'),
            &close,
            &frame(true, 0x1, 5, b'c'),
        ]);
        check_every_split(
            &input,
            &[Seen::Refused(Violation::TooBig), Seen::Bytes(close)],
        );
    }

    #[test]
    fn the_refusal_marker_reads_as_an_empty_masked_close() {
        assert_eq!(
            parse_header(REFUSAL_MARKER),
            Some(Header {
                fin: true,
                opcode: OPCODE_CLOSE,
                len: 0,
                size: REFUSAL_MARKER.len(),
            })
        );
    }
}
