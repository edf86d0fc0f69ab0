//! Passwords over real TCP: a password file in mosquitto's format, the
//! same refusal for a wrong password and an unknown user, anonymous
//! clients refused when the configuration says so, and `tern passwd`
//! writing a file the broker (and mosquitto) reads.

use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use tempfile::TempPath;
use tern::codec::{Connect, ConnectCode, Packet, QoS};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, temp_path, TestBroker};

/// Written by mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b f alice secret`.
const MOSQUITTO_LINE: &str = "alice:$7$101$Bh2DrAPkFwY+BjcK$NyycJwiIzKtW/aCWLGfhCEiM/9lmfU301p2yW0r6gjcgdE2q1J8Hrti/vDE/RTgKPe50LDVg/yuggCnTMjYheA==\n";

/// The file is removed when the guard is dropped, at the test's end.
fn password_file(name: &str, text: &str) -> TempPath {
    let path = temp_path(name);
    std::fs::write(&path, text).expect("write the password file");
    path
}

fn with_passwords(path: &Path, allow_anonymous: bool) -> Config {
    Config {
        password_file: Some(path.to_path_buf()),
        allow_anonymous: Some(allow_anonymous),
        ..config()
    }
}

fn login(mut connect: Connect, user: &str, password: &str) -> Connect {
    connect.username = Some(user.to_owned());
    connect.password = Some(Bytes::copy_from_slice(password.as_bytes()));
    connect
}

#[tokio::test]
async fn a_mosquitto_password_file_lets_its_users_in_and_no_one_else() {
    let path = password_file("mosquitto", MOSQUITTO_LINE);
    let broker = TestBroker::start(with_passwords(&path, true)).await;
    let cases = [
        ("alice", "secret", ConnectCode::Accepted),
        ("alice", "Secret", ConnectCode::BadUsernameOrPassword),
        ("mallory", "secret", ConnectCode::BadUsernameOrPassword),
    ];
    for (user, password, code) in cases {
        for connect in [raw::connect_packet("c"), raw::connect_v5("c")] {
            let version = connect.version;
            let (_, connack) = Raw::connect(broker.addr, login(connect, user, password)).await;
            assert_eq!(connack.code, code, "{user}/{password} in {version:?}");
        }
    }
    // Allowed anonymous: a client without a user name is let in.
    let (_, connack) = Raw::connect(broker.addr, raw::connect_packet("anon")).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    broker.stop().await;
}

#[tokio::test]
async fn anonymous_clients_are_refused_when_not_allowed() {
    let path = password_file("closed", MOSQUITTO_LINE);
    let broker = TestBroker::start(with_passwords(&path, false)).await;
    for connect in [raw::connect_packet("anon"), raw::connect_v5("anon")] {
        let (mut client, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, ConnectCode::NotAuthorized);
        client.expect_closed().await;
    }
    broker.wait_connections(0).await;
    assert_eq!(broker.census().sessions_connected, 0);
    broker.stop().await;
}

#[tokio::test]
async fn tern_passwd_writes_a_file_the_broker_reads() {
    let path = password_file("written", "");
    for (user, password) in [("bob", "hunter2"), ("carol", "pw"), ("bob", "changed")] {
        let mut passwd = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["passwd", "--stdin"])
            .arg(&path)
            .arg(user)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run tern passwd");
        use std::io::Write;
        let mut stdin = passwd.stdin.take().expect("stdin");
        writeln!(stdin, "{password}").expect("write the password");
        drop(stdin);
        assert!(passwd.wait().expect("tern passwd ends").success());
    }
    let broker = TestBroker::start(with_passwords(&path, false)).await;
    for (user, password, code) in [
        ("bob", "changed", ConnectCode::Accepted),
        ("bob", "hunter2", ConnectCode::BadUsernameOrPassword),
        ("carol", "pw", ConnectCode::Accepted),
    ] {
        let connect = login(raw::connect_packet(user), user, password);
        let (_, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, code, "{user}/{password}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_session_belongs_to_its_user() {
    let mut passwords = tern::auth::PasswordFile::default();
    passwords.set("alice", b"a");
    passwords.set("eve", b"e");
    let path = password_file("owners", &passwords.to_text());
    let broker = TestBroker::start(with_passwords(&path, false)).await;
    let mut alices = raw::connect_packet("device-1");
    alices.clean_session = false;
    alices.will = Some(raw::will("wills/device-1", "gone", QoS::AtMostOnce, false));
    let alices = login(alices, "alice", "a");
    let (mut alice, connack) = Raw::connect(broker.addr, alices.clone()).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    let (mut watcher, _) =
        Raw::connect(broker.addr, login(raw::connect_packet("w"), "eve", "e")).await;
    watcher
        .send(&raw::subscribe(1, "wills/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));

    // Eve, with her own good password, tries alice's client id: to take
    // the session over, and to end it with a clean session.
    for clean in [false, true] {
        let mut steal = login(raw::connect_packet("device-1"), "eve", "e");
        steal.clean_session = clean;
        let (_, connack) = Raw::connect(broker.addr, steal).await;
        assert_eq!(connack.code, ConnectCode::NotAuthorized, "clean {clean}");
    }
    assert_eq!(broker.census().connects_refused_not_owner, 2);
    // Alice is still connected, and no will fired.
    alice.send(&Packet::PingReq).await;
    assert_eq!(alice.recv().await, Packet::PingResp);
    watcher.expect_silence().await;
    // Alice herself resumes it.
    drop(alice);
    let (_, connack) = Raw::connect(broker.addr, alices).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    assert!(connack.session_present);
    broker.stop().await;
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_refused_without_a_check() {
    let path = password_file("guessing", MOSQUITTO_LINE);
    let broker = TestBroker::start(with_passwords(&path, true)).await;
    for guess in 0..10 {
        let connect = login(raw::connect_packet("g"), "alice", &format!("guess-{guess}"));
        let (_, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, ConnectCode::BadUsernameOrPassword);
    }
    // The right password now gets the same refusal, for a minute.
    let (_, connack) = Raw::connect(
        broker.addr,
        login(raw::connect_packet("g"), "alice", "secret"),
    )
    .await;
    assert_eq!(connack.code, ConnectCode::BadUsernameOrPassword);
    assert_eq!(broker.census().connects_refused_auth, 11);
    broker.stop().await;
}
