//! When the broker's TCP acknowledgement of what a client sent goes out.
//!
//! Linux acknowledges a one-way stream's small segments in the `recv` that
//! empties the socket: on loopback that runs the client's side of the ACK
//! inline, about 2.6 µs of a QoS 0 PUBLISH's read against 2.1 for a QoS 1
//! one (whose ACK rides on its PUBACK), before the broker has routed
//! anything. So the broker asks for delayed ACKs (`TCP_QUICKACK` 0) and,
//! once a turn's deliveries are written, sends the ACK itself: the same
//! ACK, microseconds later, after the delivery rather than before it. A
//! client whose writes wait for our ACK (Nagle's algorithm on) gets it at
//! the end of the turn, as before at the end of the read.
//!
//! Only for clients that publish to idle subscribers, over plain TCP
//! (`server/connection.rs`): a subscriber's ACKs ride on the deliveries
//! that follow, and under TLS or WebSocket a read can take bytes from the
//! socket and give the connection none, whose ACK would then wait for the
//! kernel's timer. Every other plain TCP connection has the ACK of its
//! session's first unanswered read sent the same way, once, and is then
//! left to the kernel (`NextAcks::Kernels`).
//!
//! `TCP_QUICKACK` 1 ends the kernel's delayed ACKs whether or not an ACK
//! is owed, and sends one that is (`__tcp_sock_set_quickack` in
//! net/ipv4/tcp.c); 0 begins them.

use std::os::fd::AsFd;

use super::NextAcks;

/// Sends the ACK of what was read if one is owed, and has the next reads
/// do as `next` says. A turn that writes a reply of its own needs
/// neither: the reply carries the ACK, and the kernel keeps delayed ACKs
/// on for a connection that answers what it reads. Errors are ignored: at
/// worst the ACK goes as it did before, from the read or the timer.
pub(super) fn acknowledge(socket: &impl AsFd, next: NextAcks) {
    let socket = socket2::SockRef::from(socket);
    // On sends an owed ACK and ends delayed ACKs; off turns them on again
    // (the kernel's 2 would do both in one call, but only when an ACK was
    // owed, and would leave them off when none was).
    let _ = socket.set_tcp_quickack(true);
    if next == NextAcks::Delayed {
        let _ = socket.set_tcp_quickack(false);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use std::os::fd::AsRawFd;

    use super::*;

    /// Segments `socket` has sent that its peer has not acknowledged.
    fn unacked(socket: &impl AsRawFd) -> u32 {
        // SAFETY: all zeros is a valid tcp_info.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` and `len` describe a buffer of tcp_info's size.
        let got = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast(),
                &raw mut len,
            )
        };
        assert_eq!(got, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
        info.tcpi_unacked
    }

    /// The broker's read of a client's bytes leaves the client's segment
    /// unacknowledged, and `acknowledge` acknowledges it at once. The
    /// kernel's own delayed ACK comes after 40 ms at the earliest, so a
    /// try counts only if the ACK came within 10 ms of `acknowledge`; a
    /// few tries allow for a busy host that put off the loopback's
    /// delivery of it. Without the delayed ACKs asked for, every read
    /// acknowledges what it took, and no try counts.
    #[tokio::test]
    async fn a_read_leaves_its_ack_to_acknowledge() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        client.set_nodelay(true).unwrap();
        let (mut ours, _) = listener.accept().await.unwrap();
        // As after a connection's first turn.
        acknowledge(&ours, NextAcks::Delayed);
        let mut buf = [0; 16];
        let mut tries = Vec::new();
        for _ in 0..10 {
            client.write_all(b"publish").await.unwrap();
            assert_eq!(ours.read(&mut buf).await.unwrap(), 7);
            let after_read = unacked(&client);
            acknowledge(&ours, NextAcks::Delayed);
            let sent = Instant::now();
            while unacked(&client) != 0 && sent.elapsed() < Duration::from_millis(10) {
                std::thread::yield_now();
            }
            let after_ack = unacked(&client);
            if (after_read, after_ack) == (1, 0) {
                return;
            }
            tries.push((after_read, after_ack));
        }
        panic!("unacked segments after the read and after acknowledge: {tries:?}");
    }
}
