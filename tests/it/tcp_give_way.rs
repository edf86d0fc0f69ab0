//! A turn that writes a delivery straight to an idle subscriber's socket
//! gives way to the client that write woke before it writes its own
//! replies (`Arrivals::give_way`): on this 2-core machine the QoS 1
//! latency scenario's median went from level with mosquitto's to about
//! two thirds of it. What the yield does to the kernel's scheduling is
//! the benchmark's to show; here, that the broker asks for it when, and
//! only when, a turn wrote to a subscriber, and before its PUBACK.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tern::codec::{Packet, QoS};
use tern::net::{Arrivals, Listener, NextAcks, StampedTcp};
use tern::{Endpoint, Server};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::common::raw::{self, Raw};
use crate::common::{config, within};

/// A real socket that keeps, for each time the broker gave way on it,
/// how many bytes the broker had written to it by then.
struct Counting {
    stream: StampedTcp,
    ways: Arc<Ways>,
}

#[derive(Default)]
struct Ways {
    written_at_each: Mutex<Vec<usize>>,
    written: AtomicUsize,
}

impl Ways {
    fn written_at_each(&self) -> Vec<usize> {
        self.written_at_each.lock().unwrap().clone()
    }
}

impl Arrivals for Counting {
    fn last_arrival(&self) -> u64 {
        self.stream.last_arrival()
    }

    fn acknowledge(&self, next: NextAcks) {
        self.stream.acknowledge(next);
    }

    fn give_way(&self) {
        let written = self.ways.written.load(Ordering::Relaxed);
        self.ways.written_at_each.lock().unwrap().push(written);
        self.stream.give_way();
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.ways.written.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A real listener whose connections count, in the order accepted.
struct CountingListener {
    listener: TcpListener,
    counts: Vec<Arc<Ways>>,
}

impl Listener for CountingListener {
    type Stream = Counting;

    async fn accept(&mut self) -> io::Result<(Counting, SocketAddr)> {
        let (stream, peer) = Listener::accept(&mut self.listener).await?;
        let ways = self.counts.remove(0);
        Ok((Counting { stream, ways }, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn prepare(&self) {
        self.listener.prepare();
    }
}

const MESSAGES: usize = 10;

#[tokio::test]
async fn a_turn_gives_way_after_each_delivery_it_writes_and_only_then() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("a bound address");
    let (subscriber_ways, publisher_ways) = (Arc::default(), Arc::default());
    let listener = CountingListener {
        listener,
        counts: vec![Arc::clone(&subscriber_ways), Arc::clone(&publisher_ways)],
    };
    let config = config();
    let endpoint = Endpoint::plain(&config);
    let server = Server::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        server.serve(vec![(listener, endpoint)], stopped).await
    });
    let mut subscriber = Raw::connected(addr, "sub").await;
    subscriber
        .send(&raw::subscribe(1, "t", QoS::AtLeastOnce))
        .await;
    assert!(matches!(subscriber.recv().await, Packet::SubAck(_)));
    // Connected after the SUBACK: by then the subscriber's task waits
    // with its stream lent, and each PUBLISH's turn writes to it.
    let mut publisher = Raw::connected(addr, "pub").await;
    // What the broker had written to the publisher before each PUBLISH:
    // all of it read by then, the PUBACK of that PUBLISH not yet.
    let mut before_each = Vec::new();
    for id in 1..=MESSAGES as u16 {
        before_each.push(publisher_ways.written.load(Ordering::Relaxed));
        publisher
            .send(&raw::publish("t", QoS::AtLeastOnce, id, b"m"))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        let delivered = subscriber.recv_publish().await;
        let delivered_id = delivered.packet_id.expect("QoS 1 has an id");
        subscriber
            .send(&Packet::PubAck(tern::codec::Ack::success(delivered_id)))
            .await;
    }
    // To nobody: routed nowhere, written nowhere.
    publisher
        .send(&raw::publish("nobody", QoS::AtLeastOnce, 100, b"m"))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    // Once a message, each before the message's PUBACK was written.
    assert_eq!(publisher_ways.written_at_each(), before_each);
    // Its PUBACKs released nothing to write.
    assert_eq!(subscriber_ways.written_at_each(), Vec::<usize>::new());
    stop.send(()).expect("the server runs");
    let report = within("the server to stop", run)
        .await
        .expect("serve returns");
    assert!(report.lingering.is_empty(), "{:?}", report.lingering);
}
