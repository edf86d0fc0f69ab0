//! MQTT over WebSocket (MQTT 5.0 and 3.1.1, section 6): an HTTP upgrade on
//! one path with the `mqtt` subprotocol, then MQTT's bytes in binary
//! messages, split anywhere. `WebSocketBytes` turns the messages back into
//! a byte stream, so the connection reads and writes it as it does a
//! socket. It is generic over what carries it, so WebSocket over TLS is
//! this layer over the TLS one.
//!
//! The frames are read as they stream in (`frames`), never buffered
//! whole: tungstenite reserved a frame's announced length from its header,
//! so a client could make the broker count 16 MB of heap for 14 bytes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod frames;
mod upgrade;

use frames::{Event, FrameReader, Violation};

/// The most we put in one outgoing frame: a batch larger than this goes
/// in several (MQTT bytes may split anywhere), so that what we hold for
/// the socket stays small.
const WRITE_FRAME_MAX_BYTES: usize = 16 * 1024;

/// What we read from the socket at a time, allocated for every connection
/// at once: an idle client needs little, and a payload passes through.
const READ_BUFFER_BYTES: usize = 4 * 1024;
// A header, or a control frame, is decoded once it is all in the buffer.
const _: () = assert!(READ_BUFFER_BYTES >= frames::CONTROL_MAX_BYTES);

/// Output waiting for the socket beyond which we read no more of the
/// client's frames (a ping's pong would add to it) until it drains.
const OUTPUT_MAX_BYTES: usize = WRITE_FRAME_MAX_BYTES + 512;

/// A WebSocket listener's upgrade: its path and its limit.
#[derive(Debug)]
pub struct Upgrade {
    path: String,
    message_max_bytes: usize,
}

impl Upgrade {
    /// Upgrades on `path`; a client's frame, or message, may not be longer
    /// than the largest packet it may send: the limit is read from the
    /// frame's header, before its payload arrives.
    pub fn new(path: &str, message_max_bytes: usize) -> Upgrade {
        Upgrade {
            path: path.to_owned(),
            message_max_bytes,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Answers the client's HTTP upgrade request, or refuses it.
    pub async fn accept<T>(&self, stream: T) -> io::Result<WebSocketBytes<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let upgraded = upgrade::accept(stream, &self.path).await?;
        Ok(WebSocketBytes::new(
            upgraded.stream,
            self.message_max_bytes,
            &upgraded.leftover,
        ))
    }
}

/// A WebSocket connection as a byte stream: reads hand out the payload of
/// the binary frames received, in order; each write sends one binary
/// frame.
pub struct WebSocketBytes<T> {
    stream: T,
    frames: FrameReader,
    /// Bytes read from the socket, `start..end` not yet decoded.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// Whole frames for the socket, `sent..` not yet written. The
    /// connection's session loop does not flush, so reads and the next
    /// write drive them out.
    output: Vec<u8>,
    sent: usize,
    /// Our close frame has been queued.
    closing: bool,
    /// The client closed, or the socket ended: reads return the end.
    ended: bool,
}

impl<T> std::fmt::Debug for WebSocketBytes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketBytes")
            .field("frames", &self.frames)
            .field("unsent", &(self.output.len() - self.sent))
            .finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocketBytes<T> {
    /// Frames on `stream`, after the upgrade; `leftover` is what the
    /// client sent past its request, at most the request's size limit.
    fn new(stream: T, message_max_bytes: usize, leftover: &[u8]) -> WebSocketBytes<T> {
        let mut input = vec![0u8; READ_BUFFER_BYTES.max(leftover.len())].into_boxed_slice();
        input[..leftover.len()].copy_from_slice(leftover);
        WebSocketBytes {
            stream,
            frames: FrameReader::new(message_max_bytes),
            input,
            start: 0,
            end: leftover.len(),
            output: Vec::new(),
            sent: 0,
            closing: false,
            ended: false,
        }
    }

    fn unsent(&self) -> usize {
        self.output.len() - self.sent
    }

    /// Writes out what is queued for the socket, and flushes it (TLS
    /// holds bytes until then).
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.output.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.output[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.output.clear();
        self.sent = 0;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Queues our close frame, once, and tries to send it; the
    /// connection is ending, so a client too slow to take it is not
    /// waited for here.
    fn close(&mut self, cx: &mut Context<'_>, code: u16, reason: &str) {
        if !self.closing {
            self.closing = true;
            frames::close(code, reason, &mut self.output);
        }
        let _ = self.poll_output(cx);
    }

    /// Tells the client why its connection ends; the error for the
    /// connection's log.
    fn fail(&mut self, cx: &mut Context<'_>, violation: Violation) -> io::Error {
        self.close(cx, violation.code, violation.why);
        self.ended = true;
        let why = match violation.code {
            frames::CLOSE_TOO_BIG => "WebSocket frame or message over the packet size limit",
            frames::CLOSE_UNSUPPORTED => "text WebSocket frame: MQTT goes in binary frames",
            _ => violation.why,
        };
        io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {why}"))
    }

    /// More bytes from the socket into `input`; false at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.input.len() {
            // What is kept is part of a header or a control frame, at most
            // 139 bytes; the buffer holds four KiB.
            self.input.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let mut buf = ReadBuf::new(&mut self.input[self.end..]);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        self.end += n;
        Poll::Ready(Ok(n > 0))
    }
}

impl<T: crate::net::Arrivals> crate::net::Arrivals for WebSocketBytes<T> {
    fn last_arrival(&self) -> u64 {
        self.stream.last_arrival()
    }

    /// Left to the kernel, as under TLS: a read of part of a frame's
    /// header gives the connection no bytes.
    fn acknowledge(&self, _: crate::net::NextAcks) {}

    fn give_way(&self) {
        self.stream.give_way();
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocketBytes<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Our last frames go out while we wait for the client: nothing
            // else may write again for a while. A client that takes none
            // of them is read no further, as a pong would add to them.
            match this.poll_output(cx) {
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending if this.unsent() > OUTPUT_MAX_BYTES => return Poll::Pending,
                _ => {}
            }
            if this.ended || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let input = &this.input[this.start..this.end];
            let (taken, event) = match this.frames.decode(input, buf.initialize_unfilled()) {
                Ok(decoded) => decoded,
                Err(violation) => return Poll::Ready(Err(this.fail(cx, violation))),
            };
            this.start += taken;
            match event {
                Event::Data(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Event::Header | Event::Pong => {}
                Event::Ping(payload) if !this.closing => frames::pong(&payload, &mut this.output),
                Event::Ping(_) => {}
                // The stream ends; our reply goes with it (or, if we had
                // closed first, this was the client's reply).
                Event::Close(code) => {
                    this.close(cx, code.unwrap_or(frames::CLOSE_NORMAL), "");
                    this.ended = true;
                }
                // A client gone without a close is gone all the same, as
                // over TCP: the end of the stream.
                Event::More => {
                    if !ready!(this.poll_fill(cx))? {
                        this.ended = true;
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocketBytes<T> {
    /// Sends up to `WRITE_FRAME_MAX_BYTES` of `buf` as one binary frame
    /// once the previous one is out, so a client that does not read holds
    /// up our writes as a socket would.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_output(cx))?;
        if this.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "WebSocket closed",
            )));
        }
        let n = buf.len().min(WRITE_FRAME_MAX_BYTES);
        frames::binary(&buf[..n], &mut this.output);
        // Sent now if the socket takes it; if not, the next read or write
        // finishes it. Either way the bytes are ours to deliver.
        if let Poll::Ready(Err(error)) = this.poll_output(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_output(cx)
    }

    /// The closing handshake: our close frame (the client's reply is for
    /// reads to see), then the end of the stream below. The code says a
    /// normal closure: why MQTT ended the connection, a 5.0 client has
    /// been told in its DISCONNECT.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            frames::close(frames::CLOSE_NORMAL, "", &mut this.output);
        }
        ready!(this.poll_output(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
