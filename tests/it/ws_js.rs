//! MQTT.js, the JavaScript client of most web pages, against the real
//! binary over WebSocket: from Node (`tests/js/node_clients.mjs`, beside a
//! client over TCP, and both again over TLS; `tests/js/topic_aliases.mjs`,
//! the broker's topic aliases) and in headless Chromium (`tests/js/page.html`). Each
//! runs where its tools are (`npm ci` in tests/js, `chromium`) and prints a
//! skip line otherwise; TERN_REQUIRE_JS=1 and TERN_REQUIRE_BROWSER=1, which
//! .ci/run sets, make a missing tool a failure instead.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tern::codec::{Packet, QoS};
use tokio::process::Command;

use crate::common::binary::{free_addr, Binary};
use crate::common::certs::{Authority, Files};
use crate::common::chromium::Page;
use crate::common::raw::{self, Raw};
use crate::common::{runs, within};

/// The longest a JavaScript client may take; the scripts give up sooner.
const SCRIPT_WAIT: Duration = Duration::from_secs(60);

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Whether `tool` can run here; if not, a skip line, or a failure when
/// `require` is set to 1.
fn available(tool: &str, found: bool, require: &str) -> bool {
    if found {
        return true;
    }
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{tool} is missing and {require}=1");
    }
    eprintln!("SKIP: {tool} is missing (set {require}=1 to fail instead)");
    false
}

async fn mqtt_js_present() -> bool {
    runs("node").await && js_dir().join("node_modules/mqtt/dist/mqtt.min.js").exists()
}

/// A binary with a plain listener and a WebSocket one on /mqtt.
async fn broker() -> (Binary, std::net::SocketAddr, std::net::SocketAddr) {
    let (tcp, web) = (free_addr(), free_addr());
    let config = format!(
        "sys_interval_secs = 0\n\
         [[listener]]\naddress = \"{tcp}\"\n\
         [[listener]]\naddress = \"{web}\"\nprotocol = \"websockets\"\n"
    );
    (Binary::start_on(&config, tcp).await, tcp, web)
}

/// Runs `command` to its end, for at most `SCRIPT_WAIT`; its stdout.
async fn output(command: &mut Command) -> String {
    command.kill_on_drop(true).stdin(Stdio::null());
    let output = tokio::time::timeout(SCRIPT_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} still running after {SCRIPT_WAIT:?}"))
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn mqtt_js_from_node_over_websocket_talks_to_mqtt_js_over_tcp() {
    if !available(
        "node with tests/js/node_modules",
        mqtt_js_present().await,
        "TERN_REQUIRE_JS",
    ) {
        return;
    }
    let (_tern, tcp, web) = broker().await;
    let stdout = output(
        Command::new("node")
            .current_dir(js_dir())
            .arg("node_clients.mjs")
            .arg(format!("ws://{web}/mqtt"))
            .arg(format!("mqtt://{tcp}")),
    )
    .await;
    assert_eq!(
        stdout.trim(),
        r#"{"ws":{"topic":"to-ws/big","payload":"40000 x w"},"tcp":{"topic":"to-tcp/hello","payload":"from the websocket"}}"#
    );
}

/// MQTT.js reads the topic aliases the broker sets for a client that allows
/// two: each message under the topic it was published to, the alias it
/// came by as `SentAliases` chose it (none for the third topic's first).
#[tokio::test]
async fn mqtt_js_reads_the_topic_aliases_it_allowed() {
    if !available(
        "node with tests/js/node_modules",
        mqtt_js_present().await,
        "TERN_REQUIRE_JS",
    ) {
        return;
    }
    let (_tern, tcp, _web) = broker().await;
    let stdout = output(
        Command::new("node")
            .current_dir(js_dir())
            .arg("topic_aliases.mjs")
            .arg(format!("mqtt://{tcp}")),
    )
    .await;
    assert_eq!(
        stdout.trim(),
        r#"[["alias/alpha","m0",1],["alias/bravo","m1",2],["alias/alpha","m2",1],["alias/bravo","m3",2],["alias/charlie","m4",null],["alias/alpha","m5",1],["alias/charlie","m6",2],["alias/charlie","m7",2]]"#
    );
}

/// The same two MQTT.js clients over TLS: WebSocket over TLS (`wss://`)
/// and MQTT over TLS (`mqtts://`), trusting a CA made for the test.
#[tokio::test]
async fn mqtt_js_from_node_over_tls_websocket_talks_to_mqtt_js_over_tls() {
    if !available(
        "node with tests/js/node_modules",
        mqtt_js_present().await,
        "TERN_REQUIRE_JS",
    ) {
        return;
    }
    let ca = Authority::new("tern test CA");
    let server = ca.server();
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem);
    let tls = format!(
        "cert_file = {:?}\nkey_file = {:?}\n",
        files
            .write("server.pem", &server.cert_pem)
            .display()
            .to_string(),
        files
            .write("server.key", &server.key_pem())
            .display()
            .to_string(),
    );
    let (tcp, web) = (free_addr(), free_addr());
    let config = format!(
        "sys_interval_secs = 0\n\
         [[listener]]\naddress = \"{tcp}\"\n{tls}\
         [[listener]]\naddress = \"{web}\"\nprotocol = \"websockets\"\n{tls}"
    );
    let _tern = Binary::start_on(&config, tcp).await;
    let stdout = output(
        Command::new("node")
            .current_dir(js_dir())
            .env("NODE_EXTRA_CA_CERTS", &ca_file)
            .arg("node_clients.mjs")
            .arg(format!("wss://localhost:{}/mqtt", web.port()))
            .arg(format!("mqtts://localhost:{}", tcp.port())),
    )
    .await;
    assert_eq!(
        stdout.trim(),
        r#"{"ws":{"topic":"to-ws/big","payload":"40000 x w"},"tcp":{"topic":"to-tcp/hello","payload":"from the websocket"}}"#
    );
}

#[tokio::test]
async fn mqtt_js_in_headless_chromium_publishes_and_receives_over_websocket() {
    let present = mqtt_js_present().await && runs("chromium").await;
    if !available(
        "chromium with tests/js/node_modules",
        present,
        "TERN_REQUIRE_BROWSER",
    ) {
        return;
    }
    let (_tern, tcp, web) = broker().await;
    // What the page publishes reaches a TCP client too: it went through
    // the broker, not around it.
    let mut watcher = Raw::connected(tcp, "watcher").await;
    watcher
        .send(&raw::subscribe(1, "page/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));

    let page = js_dir().join("page.html");
    let url = format!("file://{}?ws://{web}/mqtt", page.display());
    let mut page = Page::open(&url, &web.port().to_string()).await;
    // Empty until the page has loaded, then "waiting" until its answer.
    let result = page
        .wait_for("document.getElementById('result')?.textContent", |text| {
            !text.is_empty() && text != "waiting"
        })
        .await;
    assert_eq!(result, "received page/echo: hello from chromium");
    let publish = within("the page's message over TCP", watcher.recv_publish()).await;
    assert_eq!(publish.topic.as_str(), "page/echo");
    assert_eq!(&publish.payload[..], b"hello from chromium");
}
