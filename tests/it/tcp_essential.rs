//! One of the server's own tasks that panics stops the whole server, which
//! says which task it was (`server/essential.rs`). Before 2026-12-04 the
//! server served on without it: here, with an acceptor gone, a broker that
//! held its clients and took no new one, and never said so.

use std::io;
use std::net::SocketAddr;

use tern::net::{Listener, StampedTcp};
use tern::{Endpoint, Server};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::common::raw::Raw;
use crate::common::{config, within};

/// A real listener that takes one client, then panics when told to.
struct PanicsAfterOne {
    listener: TcpListener,
    accepted: bool,
    panic: Option<oneshot::Receiver<()>>,
}

impl Listener for PanicsAfterOne {
    type Stream = StampedTcp;

    async fn accept(&mut self) -> io::Result<(StampedTcp, SocketAddr)> {
        if self.accepted {
            if let Some(told) = self.panic.take() {
                let _ = told.await;
            }
            panic!("planted: the acceptor panics");
        }
        self.accepted = true;
        Listener::accept(&mut self.listener).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn prepare(&self) {
        self.listener.prepare();
    }
}

#[tokio::test]
async fn a_panicking_acceptor_stops_the_server_and_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("a bound address");
    let config = config();
    let endpoint = Endpoint::plain(&config);
    let server = Server::new(config);
    let running = server.clone();
    let (panic, told) = oneshot::channel();
    let listener = PanicsAfterOne {
        listener,
        accepted: false,
        panic: Some(told),
    };
    let listeners = vec![(listener, endpoint)];
    let run = tokio::spawn(async move { running.serve(listeners, std::future::pending()).await });
    let client = Raw::connected(addr, "first").await;
    panic.send(()).expect("the acceptor waits to be told");
    // No shutdown is asked for: the server stops by itself.
    let report = within("the server to stop by itself", run)
        .await
        .expect("serve returns, not panics");
    assert_eq!(
        report.failed.as_deref(),
        Some(format!("the acceptor {addr} task panicked").as_str())
    );
    assert!(report.lingering.is_empty(), "{:?}", report.lingering);
    assert_eq!(report.census.connections, 0, "{:#?}", report.census);
    let (_, closed) = client.read_to_close().await;
    closed.expect("the client's connection closed in order");
}
