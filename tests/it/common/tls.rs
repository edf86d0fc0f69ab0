//! A TLS client (tokio-rustls, ring) speaking our codec, and a broker
//! whose one listener is TLS with files the test wrote.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tern::codec::{self, ConnAck, Connect, Packet, ProtocolVersion};
use tern::config::ListenerConfig;
use tern::{Config, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::certs::{Authority, Files, Leaf};
use super::{within, TestBroker};

/// A client's TLS settings: the CA it trusts, and its own certificate
/// if it has one.
pub fn client_config(trusted: &Authority, certificate: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.clone()).expect("a CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let config = match certificate {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert.clone()], leaf.key())
            .expect("a client certificate and its key"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A listener on 127.0.0.1 with the server certificate and key of
/// `server`, written into `files` as server.pem and server.key.
pub fn listener(files: &Files, server: &Leaf) -> ListenerConfig {
    let mut listener = ListenerConfig::plain("127.0.0.1:0".parse().expect("an address"));
    listener.cert_file = Some(files.write("server.pem", &server.cert_pem));
    listener.key_file = Some(files.write("server.key", &server.key_pem()));
    listener
}

/// A broker in the test's runtime serving `listener` (its address is
/// ignored: it binds 127.0.0.1:0).
pub async fn broker(config: Config, listener: &ListenerConfig) -> TestBroker {
    let bound = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    broker_on(config, listener, bound).await
}

/// The same, on a listener the test has set up itself.
pub async fn broker_on(
    config: Config,
    listener: &ListenerConfig,
    bound: TcpListener,
) -> TestBroker {
    let endpoint = Endpoint::new(listener, &config).expect("the listener's files load");
    TestBroker::serve(config, bound, endpoint).await
}

/// An MQTT client over TLS.
pub struct TlsClient {
    stream: TlsStream<TcpStream>,
    rbuf: BytesMut,
    version: ProtocolVersion,
}

impl TlsClient {
    /// TCP, then the TLS handshake for the name "localhost".
    pub async fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
        let tcp = within("TCP connect", TcpStream::connect(addr)).await?;
        TlsClient::over(tcp, config).await
    }

    /// Connects with a small receive buffer, so that a client slow to read
    /// fills the path from the broker with little data.
    pub async fn connect_small_window(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        connect: Connect,
    ) -> io::Result<(TlsClient, ConnAck)> {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let tcp = within("TCP connect", socket.connect(addr)).await?;
        TlsClient::over(tcp, config).await?.connected(connect).await
    }

    async fn over(tcp: TcpStream, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
        let name = ServerName::try_from("localhost").expect("a DNS name");
        let stream = within(
            "a TLS handshake",
            TlsConnector::from(config).connect(name, tcp),
        )
        .await?;
        Ok(TlsClient {
            stream,
            rbuf: BytesMut::new(),
            version: ProtocolVersion::V311,
        })
    }

    /// Opens, sends `connect` and reads the CONNACK. An error is a failed
    /// handshake or a close before the CONNACK: with TLS 1.3 a server
    /// refuses a client certificate only after the client has finished.
    pub async fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        connect: Connect,
    ) -> io::Result<(TlsClient, ConnAck)> {
        TlsClient::open(addr, config)
            .await?
            .connected(connect)
            .await
    }

    async fn connected(mut self, connect: Connect) -> io::Result<(TlsClient, ConnAck)> {
        self.version = connect.version;
        self.send(&Packet::Connect(connect.into())).await?;
        match self.read().await? {
            Some(Packet::ConnAck(connack)) => Ok((self, connack)),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    pub async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.version, &mut buf);
        within("a write to the broker", async {
            self.stream.write_all(&buf).await?;
            self.stream.flush().await
        })
        .await
    }

    /// The next packet, or `None` when the broker closes.
    pub async fn read(&mut self) -> io::Result<Option<Packet>> {
        within("a packet or a close from the broker", async {
            loop {
                let decoded = super::raw::decode_buffered(&mut self.rbuf, self.version);
                if let Some(packet) = decoded {
                    return Ok(Some(packet));
                }
                if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                    return Ok(None);
                }
            }
        })
        .await
    }

    /// Closes with a reset (SO_LINGER 0), whatever is unread.
    pub fn reset(self) {
        let (tcp, _) = self.stream.get_ref();
        tcp.set_zero_linger().expect("SO_LINGER can be set");
    }

    pub async fn recv(&mut self) -> Packet {
        match self.read().await {
            Ok(Some(packet)) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }
}
