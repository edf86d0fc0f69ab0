//! Client certificates (mutual TLS): verified against the listener's
//! `ca_file`, required with `require_certificate`, optional without it;
//! and `use_identity_as_username`, which makes the certificate's CN the
//! client's user, whose ACL rules then apply.

use tern::codec::{ConnectCode, Packet, QoS, ReasonCode};
use tern::config::ListenerConfig;
use tern::Config;

use crate::common::certs::{Authority, Files};
use crate::common::raw;
use crate::common::tls::{self, client_config, TlsClient};
use crate::common::{config, TestBroker};

/// A TLS listener whose clients' certificates `ca` verifies.
fn verifying(files: &Files, ca: &Authority, require: bool) -> ListenerConfig {
    let mut listener = tls::listener(files, &ca.server());
    listener.ca_file = Some(files.write("ca.pem", &ca.pem));
    listener.require_certificate = require;
    listener
}

async fn connack(
    broker: &TestBroker,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Option<ConnectCode> {
    let connect = raw::connect_packet("c");
    let connected = TlsClient::connect(broker.addr, config, connect).await;
    connected.ok().map(|(_, connack)| connack.code)
}

#[tokio::test]
async fn require_certificate_refuses_a_client_without_one_or_with_a_strangers() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let broker = tls::broker(config(), &verifying(&files, &ca, true)).await;

    assert_eq!(connack(&broker, client_config(&ca, None)).await, None);
    let stranger = Authority::new("another CA").client("mallory");
    let config = client_config(&ca, Some(&stranger));
    assert_eq!(connack(&broker, config).await, None);

    let alice = ca.client("alice");
    let config = client_config(&ca, Some(&alice));
    assert_eq!(connack(&broker, config).await, Some(ConnectCode::Accepted));
    broker.stop().await;
}

/// With a CA file and no `require_certificate`, a client may come
/// without a certificate; one it presents must still verify.
#[tokio::test]
async fn an_optional_certificate_is_verified_when_given() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let broker = tls::broker(config(), &verifying(&files, &ca, false)).await;

    let accepted = Some(ConnectCode::Accepted);
    assert_eq!(connack(&broker, client_config(&ca, None)).await, accepted);
    let alice = ca.client("alice");
    assert_eq!(
        connack(&broker, client_config(&ca, Some(&alice))).await,
        accepted
    );
    let stranger = Authority::new("another CA").client("mallory");
    assert_eq!(
        connack(&broker, client_config(&ca, Some(&stranger))).await,
        None
    );
    broker.stop().await;
}

#[tokio::test]
async fn use_identity_as_username_makes_the_cn_the_user() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let acl = files.write("acl", "user alice\ntopic readwrite alice/#\n");
    let mut listener = verifying(&files, &ca, false);
    listener.use_identity_as_username = true;
    let config = Config {
        acl_file: Some(acl),
        ..config()
    };
    let broker = tls::broker(config, &listener).await;

    // The CONNECT's own user name and password are not what counts.
    let mut connect = raw::connect_v5("a");
    connect.username = Some("mallory".to_owned());
    connect.password = Some("wrong".into());
    let alice = client_config(&ca, Some(&ca.client("alice")));
    let (mut client, connack) = TlsClient::connect(broker.addr, alice, connect)
        .await
        .expect("a TLS connection");
    assert_eq!(connack.code, ConnectCode::Accepted);
    let subscribe = Packet::Subscribe(tern::codec::Subscribe {
        packet_id: raw::packet_id(1),
        filters: ["alice/#", "bob/#"]
            .iter()
            .map(|f| {
                let filter = tern::topic::TopicFilter::new(f).unwrap();
                (
                    filter,
                    tern::codec::SubscriptionOptions::qos(QoS::AtLeastOnce),
                )
            })
            .collect(),
        properties: Default::default(),
    });
    client.send(&subscribe).await.unwrap();
    match client.recv().await {
        Packet::SubAck(suback) => assert_eq!(
            suback.codes,
            [ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED],
            "alice's rules, not anonymous ones nor mallory's"
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }

    // Without a certificate there is no identity: bad user name or password.
    let mut connect = raw::connect_v5("b");
    connect.username = Some("alice".to_owned());
    let anonymous = client_config(&ca, None);
    let (_, connack) = TlsClient::connect(broker.addr, anonymous, connect)
        .await
        .expect("a TLS connection");
    assert_eq!(connack.code, ConnectCode::BadUsernameOrPassword);
    broker.stop().await;
}
