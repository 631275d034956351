//! Reading client frames (RFC 6455 §5), with no buffer held while a socket is idle.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per connection for its whole life; with
//! tens of thousands of mostly idle sockets that buffer is most of what a socket costs.
//! This reader reads through a short-lived stack buffer and keeps bytes only while a
//! frame is incomplete: an idle socket holds no read buffer at all. (fastwebsockets
//! still performs the upgrade, and formats the frames the server writes.)
//!
//! The parser is sans-IO ([`parse_header`]); [`FrameReader`] drives it over any
//! `AsyncRead`. The rules are fastwebsockets': reserved bits must be zero, control frames
//! are final and at most 125 bytes, every client frame is masked (§5.1), a frame larger
//! than the limit is refused before it is read, a final text frame must be UTF-8, and a
//! close frame carries nothing, or an allowed code and a UTF-8 reason.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use fastwebsockets::OpCode;
use tokio::io::{AsyncRead, ReadBuf};

use super::{CLOSE_INVALID_UTF8, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG};

/// Bytes read in one go while no frame is pending (on the stack, never kept).
const READ_CHUNK: usize = 4096;

/// One client frame, unmasked.
#[derive(Debug)]
pub(crate) struct ClientFrame {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    pub(crate) payload: Bytes,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection or it failed.
    Gone,
    /// The peer broke the protocol: close with this code.
    Close(u16),
}

/// A frame header, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    pub(crate) mask: [u8; 4],
    /// Bytes of header, mask included.
    pub(crate) header_len: usize,
    pub(crate) payload_len: usize,
}

/// Parses the header at the start of `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn parse_header(buf: &[u8], limit: usize) -> Result<Option<Header>, u16> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(CLOSE_PROTOCOL_ERROR); // reserved bits: no extension is negotiated
    }
    let opcode = OpCode::try_from(b0 & 0x0f).map_err(|_| CLOSE_PROTOCOL_ERROR)?;
    if b1 & 0x80 == 0 {
        return Err(CLOSE_PROTOCOL_ERROR); // §5.1: a client masks every frame
    }
    let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
    let (len, at) = match b1 & 0x7f {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(CLOSE_PROTOCOL_ERROR); // §5.2: the most significant bit is 0
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    if control && (!fin || len > 125) {
        return Err(CLOSE_PROTOCOL_ERROR); // §5.5
    }
    if len > limit as u64 {
        return Err(CLOSE_TOO_BIG);
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        header_len: at + 4,
        // `len` ≤ limit, a usize.
        payload_len: len as usize,
    }))
}

/// Unmasks a payload in place (§5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Close codes a client may send (RFC 6455 §7.4).
fn allowed_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Checks a whole frame's payload; `Err(code)` when it breaks the protocol.
fn check_payload(frame: &ClientFrame) -> Result<(), u16> {
    match frame.opcode {
        OpCode::Text if frame.fin && std::str::from_utf8(&frame.payload).is_err() => {
            Err(CLOSE_INVALID_UTF8)
        }
        OpCode::Close => match frame.payload.len() {
            0 => Ok(()),
            1 => Err(CLOSE_PROTOCOL_ERROR),
            _ => {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                if !allowed_close_code(code) {
                    Err(CLOSE_PROTOCOL_ERROR)
                } else if std::str::from_utf8(&frame.payload[2..]).is_err() {
                    Err(CLOSE_INVALID_UTF8)
                } else {
                    Ok(())
                }
            }
        },
        _ => Ok(()),
    }
}

/// Reads client frames from `io`, holding bytes only while a frame is incomplete.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    io: R,
    /// Bytes read but not yet a whole frame; empty (no allocation) between frames.
    pending: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames of at most `limit` payload bytes; `leftover` is what the HTTP layer had
    /// already read past the upgrade request.
    pub(crate) fn new(io: R, limit: usize, leftover: Bytes) -> Self {
        Self {
            io,
            pending: BytesMut::from(&leftover[..]),
            limit,
        }
    }

    /// The next frame.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: everything read is kept in `self`, so a dropped call loses nothing
    /// and the next call continues where it stopped.
    pub(crate) async fn next_frame(&mut self) -> Result<ClientFrame, ReadError> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Reads and drops whatever the client sends until it closes, after a protocol
    /// error: closing a TCP connection with unread data resets it, which could destroy
    /// the close frame on its way to the client.
    pub(crate) async fn discard(&mut self) {
        self.pending = BytesMut::new();
        loop {
            let read = poll_fn(|cx| {
                let mut chunk = [0u8; READ_CHUNK];
                let mut buf = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok::<usize, io::Error>(buf.filled().len()))
            })
            .await;
            if !matches!(read, Ok(n) if n > 0) {
                return;
            }
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<ClientFrame, ReadError>> {
        loop {
            match parse_header(&self.pending, self.limit) {
                Err(code) => return Poll::Ready(Err(ReadError::Close(code))),
                Ok(Some(header)) => {
                    let total = header.header_len + header.payload_len;
                    if self.pending.len() >= total {
                        return Poll::Ready(self.take_frame(header, total));
                    }
                    self.grow_toward(total);
                    ready!(self.poll_fill(cx, total))?;
                }
                Ok(None) => ready!(self.poll_fill(cx, 0))?,
            }
        }
    }

    /// Makes room in `pending` for the next read of a frame of `total` bytes (header
    /// included) that has only partly arrived.
    ///
    /// The buffer grows with what arrives, never with what the header declares: a client
    /// may declare a frame of the whole limit (8 MiB by default) and send it a byte at a
    /// time, and reserving the declared length at once made every such connection cost
    /// the limit, whatever it sent. Growth doubles what is already there (at least
    /// [`READ_CHUNK`], at most the rest of the frame), so a frame that does arrive whole
    /// costs a few reallocations, and the buffer never holds more than about twice the
    /// bytes received.
    fn grow_toward(&mut self, total: usize) {
        let have = self.pending.len();
        if self.pending.capacity() > have {
            return;
        }
        let step = have.max(READ_CHUNK).min(total.saturating_sub(have));
        self.pending.reserve(step);
    }

    /// Reads more: straight into `pending` toward `want` bytes when a frame is under
    /// way, else through a stack buffer so an idle socket allocates nothing.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<(), ReadError>> {
        let read = if want > self.pending.len() {
            let before = self.pending.len();
            ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.pending
            ))
            .map_err(gone)?;
            self.pending.len() - before
        } else {
            let mut chunk = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(gone)?;
            self.pending.extend_from_slice(buf.filled());
            buf.filled().len()
        };
        if read == 0 {
            return Poll::Ready(Err(ReadError::Gone));
        }
        Poll::Ready(Ok(()))
    }

    fn take_frame(&mut self, header: Header, total: usize) -> Result<ClientFrame, ReadError> {
        let mut frame = self.pending.split_to(total);
        frame.advance(header.header_len);
        unmask(&mut frame, header.mask);
        if self.pending.is_empty() {
            // Let go of the allocation the frame came from once the frame is gone.
            self.pending = BytesMut::new();
        }
        let frame = ClientFrame {
            fin: header.fin,
            opcode: header.opcode,
            payload: frame.freeze(),
        };
        check_payload(&frame).map_err(ReadError::Close)?;
        Ok(frame)
    }
}

fn gone(_: io::Error) -> ReadError {
    ReadError::Gone
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    async fn read_all(bytes: Vec<u8>, limit: usize) -> Vec<Result<(bool, u8, Vec<u8>), u16>> {
        let mut reader = FrameReader::new(&bytes[..], limit, Bytes::new());
        let mut out = Vec::new();
        loop {
            match reader.next_frame().await {
                Ok(f) => out.push(Ok((f.fin, f.opcode as u8, f.payload.to_vec()))),
                Err(ReadError::Close(code)) => {
                    out.push(Err(code));
                    return out;
                }
                Err(ReadError::Gone) => return out,
            }
        }
    }

    #[tokio::test]
    async fn frames_of_every_length_form_are_read_and_unmasked() {
        let mut bytes = frame(true, 1, b"hi");
        bytes.extend(frame(true, 2, &[7; 300]));
        bytes.extend(frame(true, 2, &[9; 70_000]));
        let frames = read_all(bytes, 1 << 20).await;
        assert_eq!(frames[0], Ok((true, 1, b"hi".to_vec())));
        assert_eq!(frames[1], Ok((true, 2, vec![7; 300])));
        assert_eq!(frames[2], Ok((true, 2, vec![9; 70_000])));
        assert_eq!(frames.len(), 3);
    }

    #[tokio::test]
    async fn protocol_errors_close_with_their_codes() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        assert_eq!(read_all(unmasked, 100).await, vec![Err(1002)]);
        let mut rsv = frame(true, 1, b"x");
        rsv[0] |= 0x40;
        assert_eq!(read_all(rsv, 100).await, vec![Err(1002)]);
        assert_eq!(read_all(frame(true, 3, b""), 100).await, vec![Err(1002)]);
        assert_eq!(read_all(frame(false, 9, b""), 100).await, vec![Err(1002)]);
        assert_eq!(
            read_all(frame(true, 9, &[0; 126]), 1000).await,
            vec![Err(1002)]
        );
        assert_eq!(
            read_all(frame(true, 2, &[0; 101]), 100).await,
            vec![Err(1009)]
        );
        assert_eq!(
            read_all(frame(true, 1, &[0xff]), 100).await,
            vec![Err(1007)]
        );
        assert_eq!(read_all(frame(true, 8, &[3]), 100).await, vec![Err(1002)]);
        assert_eq!(
            read_all(frame(true, 8, &[0x03, 0xed]), 100).await,
            vec![Err(1002)]
        );
        assert_eq!(
            read_all(frame(true, 8, &[0x03, 0xe8, 0xff]), 100).await,
            vec![Err(1007)]
        );
    }

    #[tokio::test]
    async fn a_frame_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
        assert_eq!(read_all(frame(true, 2, &[1; 100]), 100).await.len(), 1);
        assert_eq!(
            read_all(frame(true, 2, &[1; 101]), 100).await,
            vec![Err(1009)]
        );
    }

    #[tokio::test]
    async fn a_frame_split_across_reads_is_put_together() {
        // A reader that hands out one byte at a time.
        struct Trickle(Vec<u8>, usize);
        impl AsyncRead for Trickle {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                if let Some(byte) = self.0.get(self.1).copied() {
                    buf.put_slice(&[byte]);
                    self.1 += 1;
                }
                Poll::Ready(Ok(()))
            }
        }
        let bytes = frame(true, 1, &[b'a'; 200]);
        let mut reader = FrameReader::new(Trickle(bytes, 0), 1000, Bytes::new());
        let frame = reader.next_frame().await.unwrap();
        assert_eq!(&frame.payload[..], &[b'a'; 200][..]);
        assert!(
            reader.pending.capacity() == 0,
            "nothing kept between frames"
        );
    }

    #[tokio::test]
    async fn a_declared_frame_costs_what_arrived_not_what_it_declares() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        // The header of an 8 MiB text frame, then 10 000 of its bytes.
        let mut head = vec![0x81, 0x80 | 127];
        head.extend_from_slice(&(8u64 << 20).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        tokio::io::AsyncWriteExt::write_all(&mut client, &head)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, &[b' '; 10_000])
            .await
            .unwrap();
        let mut reader = FrameReader::new(server, 8 << 20, Bytes::new());
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(200), reader.next_frame()).await;
        assert!(waited.is_err(), "the frame is not complete");
        assert_eq!(
            reader.pending.len(),
            14 + 10_000,
            "everything sent was read"
        );
        assert!(
            reader.pending.capacity() <= 2 * (14 + 10_000) + READ_CHUNK,
            "buffer of {} bytes for 10 014 received",
            reader.pending.capacity()
        );
    }

    #[tokio::test]
    async fn bytes_read_with_the_upgrade_come_first() {
        let first = frame(true, 1, b"one");
        let second = frame(true, 1, b"two");
        let mut reader = FrameReader::new(&second[..], 100, Bytes::from(first));
        assert_eq!(&reader.next_frame().await.unwrap().payload[..], b"one");
        assert_eq!(&reader.next_frame().await.unwrap().payload[..], b"two");
    }
}
