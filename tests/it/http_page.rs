//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/`, runs its script, which fetches `/status.json`,
//! and the test reads the numbers the page rendered from the DOM it dumps.
//! Without Chromium the test says it was skipped and passes, unless
//! `TERN_REQUIRE_BROWSER=1` (as CI sets), when it fails.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tern::codec::{Packet, QoS};
use tokio::process::Command;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

const CHROMIUM: &str = "chromium";

/// Chromium's first start on a cold machine takes seconds.
const BROWSER_WAIT: Duration = Duration::from_secs(60);

/// The page at `addr` as Chromium rendered it, after its script has had
/// three seconds of virtual time; `None` if there is no Chromium.
async fn rendered(addr: SocketAddr) -> Option<String> {
    let profile = std::env::temp_dir().join(format!("tern-it-chromium-{}", addr.port()));
    let child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{addr}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("cannot start {CHROMIUM}: {error}"),
    };
    let output = tokio::time::timeout(BROWSER_WAIT, child.wait_with_output())
        .await
        .expect("Chromium renders the page within a minute")
        .expect("Chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "Chromium failed: {:?}",
        output.status
    );
    Some(String::from_utf8(output.stdout).expect("a UTF-8 DOM"))
}

/// The text of the element with `id` in `dom`, which has no markup inside.
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in the page"));
    let start = at + dom[at..].find('>').expect("the tag ends") + 1;
    let end = dom[start..].find('<').expect("the element closes");
    &dom[start..start + end]
}

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

    let Some(dom) = rendered(http_addr).await else {
        let required = std::env::var("TERN_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "TERN_REQUIRE_BROWSER=1 and no `{CHROMIUM}` on PATH (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED the_status_page_shows_the_census_in_a_real_browser: no `{CHROMIUM}` on PATH"
        );
        broker.stop().await;
        return;
    };
    assert_eq!(text_of(&dom, "state"), "live", "the page's fetch worked");
    assert_eq!(text_of(&dom, "connections"), "3");
    assert_eq!(text_of(&dom, "sessions_connected"), "3");
    assert_eq!(text_of(&dom, "subscriptions"), "1");
    assert_eq!(text_of(&dom, "messages_received"), "5");
    assert_eq!(text_of(&dom, "messages_sent"), "5");
    assert_eq!(text_of(&dom, "version"), env!("CARGO_PKG_VERSION"));
    broker.stop().await;
}
