//! A WebSocket client's frame header costs the broker nothing until its
//! payload arrives, against the real binary: only it counts its heap.
//! tungstenite reserved a frame's announced length from its header, so 50
//! connections of 14 bytes each took `$SYS/broker/heap/current` from
//! 150 kB to 800 MB, and about 790 would have tripped `memory_max_bytes`
//! (new sessions refused broker-wide).

use tern::codec::{Packet, QoS};
use tokio::io::AsyncWriteExt;

use crate::common::binary::{free_addr, Binary};
use crate::common::raw::{self, Raw};
use crate::common::ws;

const CONNECTIONS: usize = 20;
/// Far under the 320 MB the headers below announce between them.
const HEAP_MAX_BYTES: u64 = 50_000_000;

#[tokio::test]
async fn frame_headers_announcing_16_mb_reserve_nothing() {
    let (tcp, web) = (free_addr(), free_addr());
    let config = format!(
        "sys_interval_secs = 1\n\
         [[listener]]\naddress = \"{tcp}\"\n\
         [[listener]]\naddress = \"{web}\"\nprotocol = \"websockets\"\n"
    );
    let tern = Binary::start_on(&config, tcp).await;
    let mut watcher = Raw::connected(tern.addr, "watcher").await;
    watcher
        .send(&raw::subscribe(
            1,
            "$SYS/broker/heap/current",
            QoS::AtMostOnce,
        ))
        .await;
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        let (socket, _) = ws::open(web, "/mqtt", "mqtt").await.unwrap();
        let mut socket = socket.into_inner();
        // A binary frame announcing 16,000,000 bytes, masked, and 4 of them.
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend(16_000_000u64.to_be_bytes());
        frame.extend([1, 2, 3, 4, 9, 9, 9, 9]);
        socket.write_all(&frame).await.unwrap();
        sockets.push(socket);
    }
    // The census is published each second: three after the last header
    // went out cover the broker having read them all.
    let mut heaps = Vec::new();
    while heaps.len() < 4 {
        if let Ok(publish) =
            tokio::time::timeout(std::time::Duration::from_secs(5), watcher.recv_publish()).await
        {
            let text = String::from_utf8(publish.payload.to_vec()).unwrap();
            heaps.push(text.parse::<u64>().expect("a number of bytes"));
        } else {
            panic!("no heap census within 5 s");
        }
    }
    let most = *heaps[1..].iter().max().unwrap();
    assert!(
        most < HEAP_MAX_BYTES,
        "heap {most} bytes with {CONNECTIONS} frame headers in: {heaps:?}"
    );
    drop(sockets);
}
