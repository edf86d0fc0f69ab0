//! Files read again while clients stay connected (SIGHUP, `Server::reload`):
//! a new password lets its user in and the old one no longer does; a
//! connected client's next message is judged by the new ACL; a broken file
//! keeps the rules it would have replaced.

use std::path::Path;

use bytes::Bytes;
use tempfile::TempPath;
use tern::auth::PasswordFile;
use tern::codec::{Connect, ConnectCode, QoS};
use tern::Config;

use crate::common::binary::Binary;
use crate::common::raw::{self, Raw};
use crate::common::{config, temp_path, within, TestBroker};

/// A path for a test's file, removed when the guard is dropped.
fn temp(name: &str) -> TempPath {
    temp_path(&format!("reload-{name}"))
}

fn write_passwords(path: &Path, user: &str, password: &str) {
    let mut passwords = PasswordFile::default();
    passwords.set(user, password.as_bytes());
    std::fs::write(path, passwords.to_text()).expect("write the password file");
}

fn login(client_id: &str, user: &str, password: &str) -> Connect {
    let mut connect = raw::connect_packet(client_id);
    connect.username = Some(user.to_owned());
    connect.password = Some(Bytes::copy_from_slice(password.as_bytes()));
    connect
}

/// Publishes `a/x` then `b/y` from `client`, subscribed to `#`, and
/// returns the topic of the first that comes back to it: it would be
/// `a/x` were that readable, as a connection's messages keep their order.
async fn first_readable(client: &mut Raw) -> String {
    for topic in ["a/x", "b/y"] {
        client
            .send(&raw::publish(topic, QoS::AtMostOnce, 0, b"m"))
            .await;
    }
    client.recv_publish().await.topic.as_str().to_owned()
}

#[tokio::test]
async fn a_reloaded_acl_judges_the_next_message_and_a_broken_one_changes_nothing() {
    let acl = temp("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite #\n").expect("write the acl");
    let broker = TestBroker::start(Config {
        acl_file: Some(acl.to_path_buf()),
        ..config()
    })
    .await;
    let mut connect = raw::connect_packet("alice");
    connect.username = Some("alice".into());
    let (mut alice, _) = Raw::connect(broker.addr, connect).await;
    alice.send(&raw::subscribe(1, "#", QoS::AtMostOnce)).await;
    let _suback = alice.recv().await;
    assert_eq!(first_readable(&mut alice).await, "a/x");
    let _b = alice.recv_publish().await;

    std::fs::write(&acl, "user alice\ntopic write #\ntopic read b/#\n").expect("write");
    assert_eq!(broker.server.reload(), Vec::<String>::new());
    assert_eq!(first_readable(&mut alice).await, "b/y");

    std::fs::write(&acl, "user alice\ntopic reed #\n").expect("write");
    let errors = broker.server.reload();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("line 2"), "{errors:?}");
    assert_eq!(first_readable(&mut alice).await, "b/y");
    broker.stop().await;
}

#[tokio::test]
async fn sighup_swaps_the_password_file() {
    let passwords = temp("passwords");
    write_passwords(&passwords, "alice", "old");
    let config = format!(
        "sys_interval_secs = 0\npassword_file = {:?}\n",
        passwords.display().to_string()
    );
    let tern = Binary::start(&config).await;
    let (_, connack) = Raw::connect(tern.addr, login("a1", "alice", "old")).await;
    assert_eq!(connack.code, ConnectCode::Accepted);

    write_passwords(&passwords, "alice", "new");
    tern.hang_up();
    // The signal is handled in its own time: try until the new password works.
    within("the new password to be accepted", async {
        loop {
            let (_, connack) = Raw::connect(tern.addr, login("a2", "alice", "new")).await;
            if connack.code == ConnectCode::Accepted {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, connack) = Raw::connect(tern.addr, login("a3", "alice", "old")).await;
    assert_eq!(connack.code, ConnectCode::BadUsernameOrPassword);
    // A file that no longer parses keeps the new password in force.
    std::fs::write(&passwords, "alice\n").expect("write");
    tern.hang_up();
    let (_, connack) = Raw::connect(tern.addr, login("a4", "alice", "new")).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
}

/// What `sighup_swaps_the_password_file` cannot wait for (the signal is
/// handled in its own time), through `Server::reload` itself: a password
/// file that no longer parses, or is gone, leaves the old passwords in
/// force, and says why in one line.
#[tokio::test]
async fn a_broken_password_file_keeps_the_old_passwords() {
    let passwords = temp("broken-passwords");
    write_passwords(&passwords, "alice", "old");
    let broker = TestBroker::start(Config {
        password_file: Some(passwords.to_path_buf()),
        allow_anonymous: Some(false),
        ..config()
    })
    .await;
    write_passwords(&passwords, "alice", "new");
    assert_eq!(broker.server.reload(), Vec::<String>::new());
    for (i, broken) in ["alice\n", ""].into_iter().enumerate() {
        match broken {
            "" => std::fs::remove_file(&passwords).expect("remove"),
            text => std::fs::write(&passwords, text).expect("write"),
        }
        let errors = broker.server.reload();
        assert!(
            matches!(&errors[..], [e] if e.contains("password file") && !e.contains('\n')),
            "{errors:?}"
        );
        let (_, connack) = Raw::connect(broker.addr, login(&format!("n{i}"), "alice", "new")).await;
        assert_eq!(connack.code, ConnectCode::Accepted, "after {broken:?}");
        let (_, connack) = Raw::connect(broker.addr, login(&format!("o{i}"), "alice", "old")).await;
        assert_eq!(connack.code, ConnectCode::BadUsernameOrPassword);
    }
    broker.stop().await;
}
