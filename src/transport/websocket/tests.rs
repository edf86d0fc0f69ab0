use super::frames::tests::masked;
use super::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);

/// A pair over an in-memory pipe of `pipe_bytes`: our end as a server,
/// the other a plain tungstenite client.
async fn pair(
    pipe_bytes: usize,
) -> (
    WebSocketBytes<tokio::io::DuplexStream>,
    WebSocketStream<tokio::io::DuplexStream>,
) {
    let (ours, theirs) = tokio::io::duplex(pipe_bytes);
    let client = WebSocketStream::from_raw_socket(theirs, Role::Client, None).await;
    (WebSocketBytes::new(ours, 1 << 20, &[]), client)
}

/// Reads from `server` until it has `len` bytes.
async fn read_exactly(server: &mut WebSocketBytes<tokio::io::DuplexStream>, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    tokio::time::timeout(WAIT, server.read_exact(&mut got))
        .await
        .expect("the bytes arrive")
        .unwrap();
    got
}

/// The connection writes and then only reads, never flushing: a
/// message the pipe could not take at once still goes out whole.
#[tokio::test]
async fn a_write_too_big_for_the_pipe_finishes_while_we_read() {
    let (mut server, mut client) = pair(256).await;
    let batch: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let written = server.write(&batch).await.unwrap();
    assert_eq!(written, batch.len(), "one message takes the whole batch");
    let mut byte = [0u8; 1];
    let reading = server.read(&mut byte);
    let received = async {
        let message = client.next().await.unwrap().unwrap();
        client.send(Message::binary(vec![7u8])).await.unwrap();
        message
    };
    let both = async { tokio::join!(reading, received) };
    let (read, message) = tokio::time::timeout(WAIT, both)
        .await
        .expect("the message is delivered while we only read");
    assert_eq!(message, Message::binary(batch));
    assert_eq!((read.unwrap(), byte), (1, [7]));
}

/// Reads hand out a message's bytes as the reader's buffer allows,
/// then the next message's.
#[tokio::test]
async fn reads_cut_messages_to_the_readers_buffer() {
    let (mut server, mut client) = pair(1 << 16).await;
    for message in [&b"abcde"[..], b"fg"] {
        client
            .send(Message::binary(message.to_vec()))
            .await
            .unwrap();
    }
    let mut three = [0u8; 3];
    let mut got = Vec::new();
    while got.iter().map(Vec::len).sum::<usize>() < 7 {
        let n = server.read(&mut three).await.unwrap();
        got.push(three[..n].to_vec());
    }
    assert_eq!(got, [&b"abc"[..], b"de", b"fg"]);
    drop(client);
    assert_eq!(server.read(&mut three).await.unwrap(), 0, "the end");
}

/// The bug this reader fixes: tungstenite reserved a frame's announced
/// length from its header, and handed on nothing until all of it came.
/// Here a frame announcing 16,000,000 bytes gives up its first bytes as
/// they arrive, and the connection holds no more than its fixed buffer.
#[tokio::test]
async fn a_huge_frame_is_read_as_it_arrives_into_a_small_buffer() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let mut server = WebSocketBytes::new(ours, 16 * 1024 * 1024, &[]);
    let mask = [0xA1, 0xB2, 0xC3, 0xD4];
    let mut header = vec![0x82, 0x80 | 127];
    header.extend(16_000_000u64.to_be_bytes());
    header.extend(mask);
    theirs.write_all(&header).await.unwrap();
    let first: Vec<u8> = (0..8u8)
        .zip(mask.iter().cycle())
        .map(|(b, m)| (b + 1) ^ m)
        .collect();
    theirs.write_all(&first).await.unwrap();
    assert_eq!(read_exactly(&mut server, 8).await, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(
        server.input.len() <= READ_BUFFER_BYTES,
        "{}",
        server.input.len()
    );
    assert_eq!(server.output.capacity(), 0, "nothing to send, nothing held");
}

/// A masked frame, and a ping after it, each delivered a byte at a time
/// with the socket read between bytes.
#[tokio::test]
async fn frames_split_at_every_byte_still_decode() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let mut server = WebSocketBytes::new(ours, 1 << 20, &[]);
    let payload: Vec<u8> = (0..500u32).map(|i| (i * 13) as u8).collect();
    let mut bytes = masked(0x82, &payload, [0x11, 0x22, 0x33, 0x44]);
    bytes.extend(masked(0x89, b"are you there", [5, 6, 7, 8]));
    bytes.extend(masked(0x82, b"!", [1, 1, 1, 1]));
    let writing = async {
        for byte in &bytes {
            theirs.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        theirs
    };
    let (got, theirs) = tokio::join!(read_exactly(&mut server, 501), writing);
    assert_eq!(&got[..500], &payload[..]);
    assert_eq!(got[500], b'!');
    let mut client = WebSocketStream::from_raw_socket(theirs, Role::Client, None).await;
    let pong = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a pong");
    assert_eq!(
        pong.unwrap().unwrap(),
        Message::Pong(b"are you there"[..].into())
    );
}

/// A ping between the frames of one binary message is answered, and the
/// message arrives whole.
#[tokio::test]
async fn a_ping_inside_a_fragmented_message_is_answered() {
    let (mut server, mut client) = pair(1 << 16).await;
    let start = Frame::message(b"abc".to_vec(), OpCode::Data(Data::Binary), false);
    let end = Frame::message(b"def".to_vec(), OpCode::Data(Data::Continue), true);
    client.send(Message::Frame(start)).await.unwrap();
    client.send(Message::Ping(b"mid"[..].into())).await.unwrap();
    client.send(Message::Frame(end)).await.unwrap();
    assert_eq!(read_exactly(&mut server, 6).await, b"abcdef");
    let pong = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a pong");
    assert_eq!(pong.unwrap().unwrap(), Message::Pong(b"mid"[..].into()));
}

/// The client's close is answered with one, and the stream ends.
#[tokio::test]
async fn a_close_is_answered_and_ends_the_stream() {
    let (mut server, mut client) = pair(1 << 16).await;
    client.send(Message::Close(None)).await.unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(server.read(&mut byte).await.unwrap(), 0);
    let reply = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a reply");
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
}

/// What the client sent past its upgrade request is read first.
#[tokio::test]
async fn bytes_past_the_upgrade_request_are_kept() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let request = b"GET /mqtt?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    let mut sent = request.to_vec();
    sent.extend(masked(0x82, b"early", [3, 1, 4, 1]));
    theirs.write_all(&sent).await.unwrap();
    let mut server = Upgrade::new("/mqtt", 1024).accept(ours).await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"early");
    let mut response = vec![0u8; 256];
    let n = theirs.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..n]).into_owned();
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    // RFC 6455's own example key and answer (section 1.3).
    assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(response.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
}

/// A request head over its limit is refused, without waiting for more.
#[tokio::test]
async fn an_endless_request_head_is_refused() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let mut sent = b"GET /mqtt HTTP/1.1\r\n".to_vec();
    sent.extend(b"X-Filler: a\r\n".repeat(1000));
    theirs.write_all(&sent).await.unwrap();
    let accepted = tokio::time::timeout(WAIT, Upgrade::new("/mqtt", 1024).accept(ours))
        .await
        .expect("refused without waiting");
    assert!(accepted.is_err());
    let mut response = Vec::new();
    theirs.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 431 "), "{response:?}");
}
