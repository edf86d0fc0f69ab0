//! When a read's bytes reached this host. MQTT does not order packets
//! across connections, but users expect arrival order: a SUBSCRIBE whose
//! bytes came before another client's PUBLISH should be in force for it.
//! Two worker threads may handle the two in either order (one `epoll_wait`
//! can wake both tasks, and the other worker steals one), so the order the
//! broker sees is not the order they came in. The kernel's receive
//! timestamp of each read (`SO_TIMESTAMPNS`) says which came first, and the
//! broker gives a subscription that lost the race the messages that came
//! after it (`broker/recent.rs`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::either::Either;

/// What the reads after `Arrivals::acknowledge` do with their ACKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAcks {
    /// Leave them to the next call: a publisher to idle subscribers.
    Delayed,
    /// Send them as the kernel does for a connection that does not answer
    /// what it reads, at once. The kernel puts off the ACKs of a socket
    /// whose data answered what it read (its "pingpong" mode), as ours
    /// has after the CONNACK: a client with Nagle's algorithm on whose
    /// next message got no answer then waited 40 ms for that ACK before it
    /// could send another. Asked for once a session, after the first read
    /// we did not answer: any later reply (a SUBACK, a PINGRESP, a PUBACK)
    /// puts the socket back in that mode, and a call after each one that
    /// a read leaves unanswered would cost a QoS 1 subscriber a call for
    /// nearly every PUBACK. So such a client can still wait 40 ms once
    /// after each reply that its next message does not get, as with
    /// mosquitto, which does not ask.
    Kernels,
}

/// A stream that can say when the bytes of its last read came.
pub trait Arrivals {
    /// When the bytes of the last read reached the host, in nanoseconds of
    /// the kernel's real-time clock, only ever compared with another
    /// read's; 0 where the stream cannot tell.
    fn last_arrival(&self) -> u64;

    /// Sends the TCP ACK owed for what was read, once what it brought is
    /// routed, and has the next reads do as `next` says (`net/acks.rs`);
    /// nothing where the stream is not a plain socket of ours. No default:
    /// a wrapper that forgot to pass it on would lose it unseen.
    fn acknowledge(&self, next: NextAcks);

    /// Lets a client's thread that this thread's writes just woke run
    /// before the broker goes on (`net/give_way.rs`); nothing where the
    /// stream is not a socket of this host's. No default, as above.
    fn give_way(&self);
}

impl<L: Arrivals, R: Arrivals> Arrivals for Either<L, R> {
    fn last_arrival(&self) -> u64 {
        match self {
            Either::Left(stream) => stream.last_arrival(),
            Either::Right(stream) => stream.last_arrival(),
        }
    }

    fn acknowledge(&self, next: NextAcks) {
        match self {
            Either::Left(stream) => stream.acknowledge(next),
            Either::Right(stream) => stream.acknowledge(next),
        }
    }

    fn give_way(&self) {
        match self {
            Either::Left(stream) => stream.give_way(),
            Either::Right(stream) => stream.give_way(),
        }
    }
}

impl<T: Arrivals> Arrivals for Box<T> {
    fn last_arrival(&self) -> u64 {
        (**self).last_arrival()
    }

    fn acknowledge(&self, next: NextAcks) {
        (**self).acknowledge(next)
    }

    fn give_way(&self) {
        (**self).give_way()
    }
}

/// In-memory streams (tests) and the simulation's: their reads have no
/// arrival of their own.
impl Arrivals for tokio::io::DuplexStream {
    fn last_arrival(&self) -> u64 {
        0
    }

    fn acknowledge(&self, _: NextAcks) {}

    fn give_way(&self) {}
}

/// A socket whose reads keep when their bytes came. Writes are the
/// socket's own.
#[derive(Debug)]
pub struct Stamped<S> {
    stream: S,
    last: u64,
}

/// A TCP socket whose reads keep the kernel's receive timestamp of their
/// bytes (of the last segment read).
pub type StampedTcp = Stamped<tokio::net::TcpStream>;

impl<S> Stamped<S> {
    /// Reads that keep whatever stamp the stream gives (a TCP socket's,
    /// if it asked: `StampedTcp::accepted`).
    pub fn new(stream: S) -> Stamped<S> {
        Stamped { stream, last: 0 }
    }
}

impl StampedTcp {
    /// A socket accepted from a listener, asked to stamp its reads. It
    /// would inherit the listener's option, but only if the kernel
    /// finished its handshake after the listener asked: one that connected
    /// between the listen and `stamp_accepted` (a client retrying while the
    /// broker starts) read with no stamp for good. What it received before
    /// it asked was stamped all the same, if the host was stamping then.
    /// One more call on the accept path, which makes several (`net.rs`).
    pub fn accepted(stream: tokio::net::TcpStream) -> StampedTcp {
        if let Err(error) = stamp::enable(&stream) {
            tracing::debug!(%error, "cannot set SO_TIMESTAMPNS on a connection");
        }
        Stamped::new(stream)
    }
}

impl<S: StampedRead> Arrivals for Stamped<S> {
    fn last_arrival(&self) -> u64 {
        self.last
    }

    fn acknowledge(&self, next: NextAcks) {
        self.stream.acknowledge(next);
    }

    fn give_way(&self) {
        self.stream.give_way();
    }
}

/// Asks the kernel to stamp what the host receives, from before the first
/// accept (`StampedTcp::accepted` asks for each connection too); where it
/// cannot, reads carry no stamp and work as before. The kernel stamps
/// every packet the host receives while any socket asks (a clock read
/// each), and turns that on a moment after the first asks: the first
/// reads after the broker starts may carry no stamp.
pub fn stamp_accepted(listener: &impl std::os::fd::AsRawFd) -> bool {
    match stamp::enable(listener) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot set SO_TIMESTAMPNS: no arrival order across workers");
            false
        }
    }
}

/// The socket, for its options (`socket2::SockRef`).
#[cfg(unix)]
impl std::os::fd::AsFd for StampedTcp {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// A socket's read that says when its bytes came (0: it cannot tell).
trait StampedRead {
    fn poll_read_stamped(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<u64>>;

    /// `Arrivals::acknowledge`.
    fn acknowledge(&self, next: NextAcks);

    /// `Arrivals::give_way`.
    fn give_way(&self);
}

impl<S: StampedRead + Unpin> AsyncRead for Stamped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stamp = std::task::ready!(this.stream.poll_read_stamped(cx, buf))?;
        if stamp != 0 {
            this.last = stamp;
        }
        Poll::Ready(Ok(()))
    }
}

impl StampedRead for tokio::net::TcpStream {
    fn acknowledge(&self, next: NextAcks) {
        #[cfg(target_os = "linux")]
        super::acks::acknowledge(self, next);
        #[cfg(not(target_os = "linux"))]
        let _ = next;
    }

    fn give_way(&self) {
        super::give_way::give_way();
    }

    fn poll_read_stamped(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<u64>> {
        loop {
            std::task::ready!(self.poll_read_ready(cx))?;
            let room = buf.remaining();
            let mut got = None;
            // A read that did not fill the room drained the socket: its
            // readiness is cleared (the closure says `WouldBlock` after
            // it read), as tokio's own read does, so that the next read
            // waits for the next edge rather than try, fail and wait.
            let tried = self.try_io(tokio::io::Interest::READABLE, || {
                let (n, stamp) = stamp::recv(self, buf)?;
                got = Some((n, stamp));
                match n > 0 && n < room {
                    true => Err(io::ErrorKind::WouldBlock.into()),
                    false => Ok(()),
                }
            });
            match (got, tried) {
                (Some((_, stamp)), _) => return Poll::Ready(Ok(stamp)),
                (None, Err(error)) if error.kind() == io::ErrorKind::WouldBlock => continue,
                (None, Err(error)) => return Poll::Ready(Err(error)),
                (None, Ok(())) => unreachable!("a read that succeeds says what it got"),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stamped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The simulation's sockets, whose bytes no kernel stamps: a read's
/// arrival is its place among the reads of its thread (a simulation runs
/// on one), so that the broker there compares arrivals as it does on real
/// sockets, and the harness judges what that does. Only reads of one run
/// are compared, so where the count starts does not matter.
#[cfg(feature = "sim")]
pub type SimStamped = Stamped<turmoil::net::TcpStream>;

#[cfg(feature = "sim")]
thread_local! {
    static READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(feature = "sim")]
impl StampedRead for turmoil::net::TcpStream {
    /// The simulated network has no ACKs.
    fn acknowledge(&self, _: NextAcks) {}

    /// The simulation's clients are tasks on its one thread.
    fn give_way(&self) {}

    fn poll_read_stamped(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<u64>> {
        let before = buf.filled().len();
        std::task::ready!(Pin::new(self).poll_read(cx, buf))?;
        if buf.filled().len() == before {
            return Poll::Ready(Ok(0));
        }
        Poll::Ready(Ok(READS.with(|reads| {
            reads.set(reads.get() + 1);
            reads.get()
        })))
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod stamp {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::io::ReadBuf;

    pub(super) fn enable(socket: &impl AsRawFd) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and an option whose value is an int.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of_val(&on) as libc::socklen_t,
            )
        };
        match set {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// One `recvmsg` into the unfilled part of `buf`: how many bytes it
    /// read, and their receive timestamp (0 if the kernel gave none).
    pub(super) fn recv(
        stream: &tokio::net::TcpStream,
        buf: &mut ReadBuf<'_>,
    ) -> io::Result<(usize, u64)> {
        // SAFETY: recvmsg only writes initialised bytes into the room it
        // is given, and says how many.
        let unfilled = unsafe { buf.unfilled_mut() };
        let mut iov = libc::iovec {
            iov_base: unfilled.as_mut_ptr().cast(),
            iov_len: unfilled.len(),
        };
        // Room for one control message holding a timespec, aligned as a
        // cmsghdr must be.
        let mut control = [0u64; 8];
        // SAFETY: all zeros is a valid msghdr (no name, no buffers).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at `iov` and `control`, both alive here.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Ok((n, timestamp(&msg)))
    }

    fn timestamp(msg: &libc::msghdr) -> u64 {
        let mut stamp = 0;
        // SAFETY: the control buffer as the kernel filled it, walked with
        // the kernel's own macros, read within each message's length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(msg);
            while !cmsg.is_null() {
                let header = &*cmsg;
                let room = libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32);
                if header.cmsg_level == libc::SOL_SOCKET
                    && header.cmsg_type == libc::SO_TIMESTAMPNS
                    && header.cmsg_len as usize >= room as usize
                {
                    let at: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    stamp = (at.tv_sec as u64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(at.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(msg, cmsg);
            }
        }
        stamp
    }
}

/// Elsewhere reads are plain and carry no stamp.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod stamp {
    use std::io;

    use tokio::io::ReadBuf;

    pub(super) fn enable<T>(_: &T) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn recv(
        stream: &tokio::net::TcpStream,
        buf: &mut ReadBuf<'_>,
    ) -> io::Result<(usize, u64)> {
        let before = buf.filled().len();
        stream.try_read_buf(buf)?;
        Ok((buf.filled().len() - before, 0))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whether `ours`, the accepted end of `peer`, reads with a stamp
    /// within a few seconds. The host stamps what it receives once the
    /// first socket asks, a moment later (the kernel turns it on from a
    /// work queue, which a busy host can hold up), and until then reads
    /// carry no stamp.
    pub(in crate::net) async fn stamped_soon(
        peer: &mut tokio::net::TcpStream,
        ours: &mut StampedTcp,
    ) -> bool {
        let mut byte = [0; 1];
        for _ in 0..500 {
            peer.write_all(b"w").await.unwrap();
            ours.read_exact(&mut byte).await.unwrap();
            if ours.last_arrival() != 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// A connection whose handshake the kernel finished before the
    /// listener asked for stamps (the broker sets the listener's option in
    /// its accept loop, after it listens) did not inherit the option, and
    /// none of its reads carried a stamp: a subscriber that connected in
    /// that moment lost the arrival order for good. It failed
    /// `tcp_arrival_order` in 1 of 8 runs of `cargo test --test it tcp_a`
    /// and in two fresh-clone CI runs, when the broker was slow to start
    /// beside other tests.
    #[tokio::test]
    async fn a_connection_made_before_the_listener_asked_is_stamped_too() {
        use crate::net::Listener;
        let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut early = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        listener.prepare();
        let (mut ours, _) = Listener::accept(&mut listener).await.unwrap();
        assert!(
            stamped_soon(&mut early, &mut ours).await,
            "the early connection's reads carry no stamp"
        );
    }

    /// Reads keep the order the bytes came in: the socket written first
    /// has the earlier stamp, though it is read last.
    #[tokio::test]
    async fn reads_carry_the_order_their_bytes_came_in() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(stamp_accepted(&listener));
        let addr = listener.local_addr().unwrap();
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut ours_first = StampedTcp::new(listener.accept().await.unwrap().0);
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut ours_second = StampedTcp::new(listener.accept().await.unwrap().0);
        assert_eq!(ours_first.last_arrival(), 0, "nothing read yet");
        assert!(
            stamped_soon(&mut first, &mut ours_first).await,
            "the host stamps nothing"
        );
        let mut buf = [0; 8];
        first.write_all(b"sub").await.unwrap();
        second.write_all(b"pub").await.unwrap();
        let n = ours_second.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pub");
        let n = ours_first.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"sub");
        let (a, b) = (ours_first.last_arrival(), ours_second.last_arrival());
        assert!(a != 0 && a < b, "stamps {a} and {b}");
        // Writes and the end of the stream go through as before.
        ours_first.write_all(b"ack").await.unwrap();
        let n = first.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ack");
        drop(first);
        assert_eq!(ours_first.read(&mut buf).await.unwrap(), 0);
    }
}
