//! A TLS listener's files: reloaded without dropping connections (new
//! handshakes get the new certificate, open connections go on, a broken
//! file keeps the old one), read by the real binary from its
//! configuration and again on SIGHUP, and refused in one line when they
//! are bad.

use std::process::Command;

use tern::codec::{ConnectCode, Packet, QoS};

use crate::common::binary::{free_addr, Binary};
use crate::common::certs::{Authority, Files};
use crate::common::raw;
use crate::common::tls::{self, client_config, TlsClient};
use crate::common::{config, within, TestBroker};

async fn connected(broker: &TestBroker, trusted: &Authority, id: &str) -> TlsClient {
    let config = client_config(trusted, None);
    let (client, connack) = TlsClient::connect(broker.addr, config, raw::connect_packet(id))
        .await
        .expect("a TLS connection");
    assert_eq!(connack.code, ConnectCode::Accepted);
    client
}

async fn refused(broker: &TestBroker, trusted: &Authority) -> bool {
    TlsClient::open(broker.addr, client_config(trusted, None))
        .await
        .is_err()
}

#[tokio::test]
async fn reload_swaps_the_certificate_and_open_connections_go_on() {
    let (old_ca, new_ca, files) = (
        Authority::new("old CA"),
        Authority::new("new CA"),
        Files::new(),
    );
    let listener = tls::listener(&files, &old_ca.server());
    let broker = tls::broker(config(), &listener).await;
    let mut before = connected(&broker, &old_ca, "before").await;
    before
        .send(&raw::subscribe(1, "t", QoS::AtLeastOnce))
        .await
        .unwrap();
    assert!(matches!(before.recv().await, Packet::SubAck(_)));

    let server = new_ca.server();
    files.write("server.pem", &server.cert_pem);
    files.write("server.key", &server.key_pem());
    assert!(
        refused(&broker, &new_ca).await,
        "new files are not read until a reload"
    );
    assert_eq!(
        broker.server.reload(),
        Vec::<String>::new(),
        "the new files load"
    );
    assert!(
        refused(&broker, &old_ca).await,
        "the old certificate is gone"
    );
    let mut after = connected(&broker, &new_ca, "after").await;

    after
        .send(&raw::publish("t", QoS::AtLeastOnce, 1, b"across"))
        .await
        .unwrap();
    assert!(matches!(after.recv().await, Packet::PubAck(_)));
    match before.recv().await {
        Packet::Publish(publish) => assert_eq!(&publish.payload[..], b"across"),
        other => panic!("expected the PUBLISH on the old connection, got {other:?}"),
    }
    before.send(&raw::puback(1)).await.unwrap();
    before.send(&Packet::PingReq).await.unwrap();
    assert!(matches!(before.recv().await, Packet::PingResp));

    // A broken file: the error names it, and the listener keeps the new CA's.
    files.write("server.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let errors = broker.server.reload();
    assert!(
        matches!(&errors[..], [e] if e.contains("server.pem") && !e.contains('\n')),
        "a broken certificate file: {errors:?}"
    );
    // A key that is not the certificate's.
    files.write("server.pem", &server.cert_pem);
    files.write("server.key", &old_ca.server().key_pem());
    let errors = broker.server.reload();
    assert!(
        matches!(&errors[..], [e] if e.contains("server.key") && !e.contains('\n')),
        "a key of another certificate: {errors:?}"
    );
    connected(&broker, &new_ca, "still").await;
    broker.stop().await;
}

/// A configuration with one TLS listener on a free port, its certificate
/// signed by `ca` and written into `files`.
fn tls_listener(ca: &Authority, files: &Files) -> (std::net::SocketAddr, String) {
    let server = ca.server();
    let (cert, key) = (
        files.write("server.pem", &server.cert_pem),
        files.write("server.key", &server.key_pem()),
    );
    let addr = free_addr();
    let config = format!(
        "sys_interval_secs = 0\n[[listener]]\naddress = \"{addr}\"\n\
         cert_file = {cert:?}\nkey_file = {key:?}\n"
    );
    (addr, config)
}

#[tokio::test]
async fn the_binary_serves_tls_from_its_configuration() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let (addr, config) = tls_listener(&ca, &files);
    let _tern = Binary::start_on(&config, addr).await;
    let trusting = client_config(&ca, None);
    let (mut sub, connack) = TlsClient::connect(addr, trusting.clone(), raw::connect_packet("s"))
        .await
        .expect("a TLS connection to the binary");
    assert_eq!(connack.code, ConnectCode::Accepted);
    sub.send(&raw::subscribe(1, "b", QoS::AtMostOnce))
        .await
        .unwrap();
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let (mut publisher, _) = TlsClient::connect(addr, trusting, raw::connect_packet("p"))
        .await
        .expect("a TLS connection to the binary");
    publisher
        .send(&raw::publish("b", QoS::AtMostOnce, 0, b"hello"))
        .await
        .unwrap();
    match sub.recv().await {
        Packet::Publish(publish) => assert_eq!(&publish.payload[..], b"hello"),
        other => panic!("expected the PUBLISH, got {other:?}"),
    }
}

/// Runs the binary with `config` and returns its exit status and stderr.
fn run_binary(files: &Files, config: &str) -> (bool, String) {
    let path = files.write("tern.toml", config);
    let output = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--config")
        .arg(path)
        .output()
        .expect("run tern");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_files_stop_the_binary_with_one_line() {
    let ca = Authority::new("test CA");
    let files = Files::new();
    let cert = files.write("server.pem", &ca.server().cert_pem);
    let key = files.write("server.key", &ca.server().key_pem());
    let missing = files.path("missing.key");
    let garbage = files.write("garbage.pem", "this is not PEM\n");
    let addr = free_addr();
    let cases = [
        (
            format!("cert_file = {cert:?}\nkey_file = {missing:?}"),
            "missing.key",
        ),
        (
            format!("cert_file = {garbage:?}\nkey_file = {key:?}"),
            "garbage.pem",
        ),
        (
            format!("cert_file = {cert:?}\nkey_file = {key:?}\nca_file = {garbage:?}"),
            "garbage.pem",
        ),
        (format!("cert_file = {cert:?}"), "cert_file needs key_file"),
        (
            format!("cert_file = {cert:?}\nkey_file = {key:?}\nrequire_certificate = true"),
            "require_certificate needs ca_file",
        ),
    ];
    for (keys, named) in cases {
        let config = format!("[[listener]]\naddress = \"{addr}\"\n{keys}\n");
        let (ok, stderr) = run_binary(&files, &config);
        assert!(!ok, "{config}: tern started");
        assert_eq!(stderr.lines().count(), 1, "{config}: {stderr}");
        assert!(stderr.contains(named), "{config}: {stderr}");
    }
}

/// SIGHUP has the binary read its certificate again: a client that
/// trusts only the new CA gets in, and a connection made before goes on.
#[tokio::test]
async fn sighup_has_the_binary_take_a_new_certificate() {
    let (old_ca, new_ca, files) = (
        Authority::new("old CA"),
        Authority::new("new CA"),
        Files::new(),
    );
    let (addr, config) = tls_listener(&old_ca, &files);
    let tern = Binary::start_on(&config, addr).await;
    let old = client_config(&old_ca, None);
    let (mut before, _) = TlsClient::connect(addr, old, raw::connect_packet("before"))
        .await
        .expect("a TLS connection to the binary");
    before
        .send(&raw::subscribe(1, "t", QoS::AtMostOnce))
        .await
        .unwrap();
    assert!(matches!(before.recv().await, Packet::SubAck(_)));

    let server = new_ca.server();
    files.write("server.pem", &server.cert_pem);
    files.write("server.key", &server.key_pem());
    tern.hang_up();
    let new = client_config(&new_ca, None);
    let mut after = within("a handshake with the new certificate", async {
        loop {
            let connect = raw::connect_packet("after");
            if let Ok((client, _)) = TlsClient::connect(addr, new.clone(), connect).await {
                return client;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    after
        .send(&raw::publish("t", QoS::AtMostOnce, 0, b"across"))
        .await
        .unwrap();
    match before.recv().await {
        Packet::Publish(publish) => assert_eq!(&publish.payload[..], b"across"),
        other => panic!("expected the PUBLISH on the old connection, got {other:?}"),
    }
}
