//! `[[listener]]` tables, read by the real binary from its configuration
//! file: each listener with its own `allow_anonymous` and
//! `connections_max`, beside the broker's settings.

use std::time::Duration;

use bytes::BytesMut;
use tern::codec::{self, ConnectCode, Packet, ProtocolVersion};

use crate::common::binary::{free_addr, Binary};
use crate::common::http;
use crate::common::prometheus::Scrape;
use crate::common::raw::{self, Raw, Read};
use crate::common::within;

#[tokio::test]
async fn each_listener_keeps_its_own_anonymous_rule_and_connection_limit() {
    let (closed, open, http) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        "sys_interval_secs = 0\nconnect_timeout_ms = 60000\nhttp_listen = \"{http}\"\n\
         [[listener]]\naddress = \"{closed}\"\nallow_anonymous = false\n\
         [[listener]]\naddress = \"{open}\"\nconnections_max = 1\n"
    );
    let tern = Binary::start_on(&config, closed).await;
    let (_, refused) = Raw::connect(closed, raw::connect_packet("a")).await;
    assert_eq!(refused.code, ConnectCode::NotAuthorized);
    let (_, refused) = Raw::connect(closed, raw::connect_v5("a5")).await;
    assert_eq!(refused.code, ConnectCode::NotAuthorized);

    let (first, accepted) = Raw::connect(open, raw::connect_packet("b")).await;
    assert_eq!(accepted.code, ConnectCode::Accepted);
    // `open` is full: a second connection is closed unanswered, while
    // `closed`, with no limit of its own, still takes connections.
    Raw::open(open).await.expect_closed().await;
    let metrics = Scrape::parse(&http::get(http, "/metrics").await.body);
    let refused = |reason| metrics.value("tern_connections_refused_total", &[("reason", reason)]);
    assert_eq!(refused("listener_connections_max"), 1.0);
    assert_eq!(refused("connections_max"), 0.0);
    let (_, refused) = Raw::connect(closed, raw::connect_packet("d")).await;
    assert_eq!(refused.code, ConnectCode::NotAuthorized);
    // Its place is freed with its connection.
    drop(first);
    let mut connect = BytesMut::new();
    let connect_e = Packet::Connect(Box::new(raw::connect_packet("e")));
    codec::encode(&connect_e, ProtocolVersion::V311, &mut connect);
    let accepted = within("a place on the full listener", async {
        loop {
            let mut third = Raw::open(open).await;
            if third.try_send_bytes(&connect).await.is_ok() {
                if let Read::Packet(Packet::ConnAck(connack)) = third.read().await {
                    return connack;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(accepted.code, ConnectCode::Accepted);
    drop(tern);
}
