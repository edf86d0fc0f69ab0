//! The simulated network (our copy of turmoil, sim/vendor/turmoil) must
//! deliver a FIN that reaches a reader whose receive queue is full: it was
//! parked until a later segment came, and none follows a FIN. A client
//! that had stopped reading then read what was queued and never saw the
//! broker's close (slow_subscriber seed 9500097: c17, closed by keepalive
//! at 8.07 s, read its queue at 9.71 s and saw no close before it crashed
//! at 13.89 s).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

#[test]
fn a_fin_behind_a_full_receive_queue_reaches_the_reader() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(30))
        .build();
    sim.host("server", || async {
        let listener = TcpListener::bind("0.0.0.0:1883").await?;
        let (mut stream, _) = listener.accept().await?;
        // One segment a write, until the reader's queue has no room.
        let mut written = 0;
        while tokio::time::timeout(Duration::from_millis(100), stream.write_all(b"x"))
            .await
            .is_ok()
        {
            written += 1;
        }
        assert!(written > 0);
        stream.shutdown().await?;
        // Open until the client is done: a dropped socket ends the run's
        // host, not the point here.
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    sim.client("client", async {
        let mut stream = TcpStream::connect("server:1883").await?;
        // Not reading while the server fills the queue and closes.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut read = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut read)).await;
        assert!(eof.is_ok(), "no EOF after {} bytes", read.len());
        assert!(!read.is_empty());
        Ok(())
    });
    sim.run().unwrap();
}
