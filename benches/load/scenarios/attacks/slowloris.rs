//! Connections that hold a slot without finishing a packet (row 8): clients
//! dribbling a large PUBLISH a byte a second, sockets that never send
//! CONNECT, and clients asking for no keepalive at all. What counts is how
//! many the broker still holds open at the end.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tern::codec::ProtocolVersion;
use tokio::runtime::Runtime;

use super::{put_varint, run_id};
use crate::client::{self, Conn, Hello};
use crate::stats::{Better, Outcome};

/// Clients dribbling one byte a second of a packet this large...
const SLOW_CLIENTS: usize = 200;
const SLOW_DECLARED_BYTES: usize = 8 << 20;
/// ...under a keepalive that a partial packet must not renew.
const SLOW_KEEPALIVE_SECS: u16 = 5;
/// Sockets that never send CONNECT, and clients with keepalive 0.
const IDLE_SOCKETS: usize = 100;
const KEEPALIVE_0: usize = 100;
/// Longer than tern's connect timeout (10 s) and 1.5 keepalives.
const SLOWLORIS_RUN: Duration = Duration::from_secs(12);

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not connected, or its CONNECT was refused.
    Refused,
    /// Closed by the broker during the run.
    Closed,
    /// Still open when the run ended.
    Open,
}

pub fn run(rt: &Runtime, addr: SocketAddr, outcome: &mut Outcome) {
    let end = tokio::time::Instant::now() + SLOWLORIS_RUN;
    let run = run_id();
    let groups: [(&'static str, usize); 3] = [
        ("slow senders still open", SLOW_CLIENTS),
        ("idle sockets still open", IDLE_SOCKETS),
        ("keepalive-0 still open", KEEPALIVE_0),
    ];
    let fates: Vec<Vec<Fate>> = rt.block_on(async {
        let mut tasks: Vec<Vec<_>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for i in 0..SLOW_CLIENTS {
            tasks[0].push(tokio::spawn(slow_sender(
                addr,
                format!("slow-{run}-{i}"),
                end,
            )));
        }
        for _ in 0..IDLE_SOCKETS {
            tasks[1].push(tokio::spawn(idle_socket(addr, end)));
        }
        for i in 0..KEEPALIVE_0 {
            tasks[2].push(tokio::spawn(keepalive_0(
                addr,
                format!("ka0-{run}-{i}"),
                end,
            )));
        }
        let mut fates = Vec::new();
        for group in tasks {
            let mut fate = Vec::new();
            for task in group {
                fate.push(task.await.expect("slowloris task"));
            }
            fates.push(fate);
        }
        fates
    });
    for ((name, total), fate) in groups.into_iter().zip(fates) {
        let of = |f: Fate| fate.iter().filter(|&&x| x == f).count();
        outcome.push(name, "count", of(Fate::Open) as f64, Better::Lower);
        if of(Fate::Refused) > 0 {
            let refused = of(Fate::Refused);
            let who = name.trim_end_matches(" still open");
            outcome
                .notes
                .push(format!("{who}: {refused} of {total} refused at connect"));
        }
    }
}

/// Connects, starts a PUBLISH of [`SLOW_DECLARED_BYTES`] and sends one more
/// byte of it each second until `end` or until the broker closes.
async fn slow_sender(addr: SocketAddr, id: String, end: tokio::time::Instant) -> Fate {
    let hello = Hello {
        keep_alive: SLOW_KEEPALIVE_SECS,
        ..Hello::default()
    };
    let Ok(mut conn) = client::connect_as(addr, &id, hello).await else {
        return Fate::Refused;
    };
    let mut header = BytesMut::new();
    header.put_u8(0x30);
    put_varint(&mut header, SLOW_DECLARED_BYTES);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next: &[u8] = &header;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return Fate::Open,
            read = conn.reader.fill() => if matches!(read, Ok(0) | Err(_)) { return Fate::Closed },
            _ = tick.tick() => {
                // The fixed header first, then a byte of topic and payload.
                let byte = next.first().copied().unwrap_or(b'a');
                next = next.get(1..).unwrap_or_default();
                if conn.writer.write_all(&[byte]).await.is_err() {
                    return Fate::Closed;
                }
            }
        }
    }
}

/// A TCP connection that never sends a byte.
async fn idle_socket(addr: SocketAddr, end: tokio::time::Instant) -> Fate {
    let Ok(conn) = client::open(addr, ProtocolVersion::V311).await else {
        return Fate::Refused;
    };
    silent(conn, end).await
}

/// A client that connects with keepalive 0 (none), then says nothing.
async fn keepalive_0(addr: SocketAddr, id: String, end: tokio::time::Instant) -> Fate {
    let hello = Hello {
        keep_alive: 0,
        ..Hello::default()
    };
    match client::connect_as(addr, &id, hello).await {
        Ok(conn) => silent(conn, end).await,
        Err(_) => Fate::Refused,
    }
}

/// Waits for the broker to close `conn`, or for `end`.
async fn silent(mut conn: Conn, end: tokio::time::Instant) -> Fate {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return Fate::Open,
            read = conn.reader.fill() => if matches!(read, Ok(0) | Err(_)) { return Fate::Closed },
        }
    }
}
