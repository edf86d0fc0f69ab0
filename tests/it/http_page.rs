//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/`, runs its script, which fetches `/status.json`,
//! and the test reads the numbers the page rendered, over DevTools.
//! Without Chromium the test says it was skipped and passes, unless
//! `TERN_REQUIRE_BROWSER=1` (as CI sets), when it fails.

use tern::codec::{Packet, QoS};

use crate::common::chromium::Page;
use crate::common::raw::{self, Raw};
use crate::common::{config, runs, TestBroker};

#[tokio::test]
async fn the_status_page_shows_the_census_in_a_real_browser() {
    let (broker, http_addr) = TestBroker::start_with_http(config()).await;
    let mut subscriber = Raw::connected(broker.addr, "sub").await;
    subscriber
        .send(&raw::subscribe(1, "t/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(subscriber.recv().await, Packet::SubAck(_)));
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let _idle = Raw::connected(broker.addr, "idle").await;
    for id in 1..=5 {
        publisher
            .send(&raw::publish("t/x", QoS::AtLeastOnce, id, b"hello"))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        subscriber.recv_publish().await;
    }
    broker.wait_connections(3).await;

    if !runs("chromium").await {
        let required = std::env::var("TERN_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "TERN_REQUIRE_BROWSER=1 and no `chromium` on PATH (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED the_status_page_shows_the_census_in_a_real_browser: no `chromium` on PATH"
        );
        broker.stop().await;
        return;
    }
    // Read over DevTools once the page's first fetch has filled it in:
    // `--dump-dom` with a virtual time budget once in about fifteen runs
    // dumped a page that had not heard back yet.
    let url = format!("http://{http_addr}/");
    let mut page = Page::open(&url, &format!("status-{}", http_addr.port())).await;
    let state = "document.getElementById('state')?.textContent";
    page.wait_for(state, |text| text == "live").await;
    let ids = [
        "connections",
        "sessions_connected",
        "subscriptions",
        "messages_received",
        "messages_sent",
        "version",
    ];
    let mut shown = Vec::new();
    for id in ids {
        let text = format!("document.getElementById('{id}')?.textContent");
        shown.push(page.wait_for(&text, |_| true).await);
    }
    let expected = ["3", "3", "1", "5", "5", env!("CARGO_PKG_VERSION")];
    assert_eq!(shown, expected, "{ids:?}");
    broker.stop().await;
}
