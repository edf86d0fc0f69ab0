//! Each broker's configuration file for one run: its listeners (plain
//! MQTT, TLS with the certificate of [`crate::tls::files`], WebSocket when
//! the broker has it) and the same limits in each broker's words, where
//! the broker has the limit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use crate::brokers::{
    Kind, Limits, ATTACK_INFLIGHT, ATTACK_MEMORY_BYTES, ATTACK_PACKET_BYTES, ATTACK_QUEUED_BYTES,
    ATTACK_QUEUED_MESSAGES, LOAD_INFLIGHT,
};
use crate::transport::WS_PATH;

/// Where a broker listens for one run.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// None outside WebSocket scenarios, and for a broker that cannot
    /// serve WebSocket (see [`crate::brokers::websockets`]).
    pub ws: Option<SocketAddr>,
}

/// The configuration file's text, for a file named with
/// [`extension`]; `dir` holds server.pem and server.key.
pub fn text(kind: Kind, at: &Listeners, limits: Limits, dir: &Path) -> String {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    match kind {
        Kind::Tern => {
            let tls = format!(
                "[[listener]]\naddress = \"{}\"\ncert_file = {cert:?}\nkey_file = {key:?}\n",
                at.tls
            );
            let ws = at.ws.map_or(String::new(), |ws| {
                format!("[[listener]]\naddress = \"{ws}\"\nprotocol = \"websockets\"\npath = \"{WS_PATH}\"\n")
            });
            // Top-level keys first: TOML puts whatever follows a table in it.
            tern(at.plain, limits) + &tls + &ws
        }
        Kind::Mosquitto => {
            let tls = format!(
                "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                at.tls.port(),
                cert.display(),
                key.display()
            );
            let ws = at.ws.map_or(String::new(), |ws| {
                format!("listener {} 127.0.0.1\nprotocol websockets\n", ws.port())
            });
            mosquitto(at.plain.port(), limits) + &tls + &ws
        }
        Kind::Rumqttd => rumqttd(at, limits, &cert, &key),
    }
}

/// How the file must be named for the broker to read it: rumqttd's config
/// crate tells the format from it.
pub fn extension(kind: Kind) -> &'static str {
    match kind {
        Kind::Tern | Kind::Rumqttd => "toml",
        Kind::Mosquitto => "conf",
    }
}

/// tern's `workers` (`--tern-workers`); unset, its default, one a core.
static TERN_WORKERS: OnceLock<usize> = OnceLock::new();

pub fn set_tern_workers(workers: usize) {
    TERN_WORKERS.set(workers).expect("--tern-workers once");
}

/// As the bench's last line says it.
pub fn tern_workers() -> String {
    match TERN_WORKERS.get() {
        Some(n) if *n > 0 => n.to_string(),
        _ => "one a core".to_owned(),
    }
}

fn tern(addr: SocketAddr, limits: Limits) -> String {
    let workers = TERN_WORKERS.get().copied().unwrap_or(0);
    let listen = format!("listen = [\"{addr}\"]\nsys_interval_secs = 0\nworkers = {workers}\n");
    match limits {
        // Queues large enough that the closed-loop windows never fill them:
        // every loss would then be the broker's, not a limit's.
        Limits::Raised => format!(
            "{listen}\
             queued_messages_max = 1000000\n\
             outbound_packets_max = 1000000\n\
             inflight_messages_max = {LOAD_INFLIGHT}\n\
             connect_timeout_ms = 60000\n"
        ),
        // Every other key at its default, as an operator would leave it.
        Limits::Attack => [
            listen,
            format!("queued_messages_max = {ATTACK_QUEUED_MESSAGES}\n"),
            format!("queued_bytes_max = {ATTACK_QUEUED_BYTES}\n"),
            format!("packet_size_max_bytes = {ATTACK_PACKET_BYTES}\n"),
            format!("inflight_messages_max = {ATTACK_INFLIGHT}\n"),
            format!("memory_max_bytes = {ATTACK_MEMORY_BYTES}\n"),
        ]
        .concat(),
    }
}

fn mosquitto(port: u16, limits: Limits) -> String {
    let common = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n"
    );
    match limits {
        Limits::Raised => format!(
            "{common}\
             max_queued_messages 1000000\n\
             max_inflight_messages {LOAD_INFLIGHT}\n"
        ),
        Limits::Attack => format!(
            "{common}\
             memory_limit {ATTACK_MEMORY_BYTES}\n\
             max_queued_messages {ATTACK_QUEUED_MESSAGES}\n\
             max_queued_bytes {ATTACK_QUEUED_BYTES}\n\
             max_packet_size {ATTACK_PACKET_BYTES}\n\
             max_inflight_messages {ATTACK_INFLIGHT}\n"
        ),
    }
}

/// rumqttd 0.20: 3.1.1 on `[v4.*]` listeners (the load clients speak
/// 3.1.1; a 5.0 client on them is refused), WebSocket on `[ws.*]`.
/// Its limits map onto the others' only in part:
/// - no queue bound in messages or bytes per session: a subscriber reads
///   from a commit log per filter, bounded by `max_segment_size` times
///   `max_segment_count` (its defaults, 100 MiB times 10; in the attack
///   limits, the memory bound's 1 GiB as 64 MiB times 16);
/// - outgoing QoS 1/2 inflight is fixed at 100 in its code, not set here;
///   its `max_inflight_count` is how many packets one read takes in;
/// - `max_payload_size` is the packet limit; `connection_timeout_ms` the
///   connect timeout (a u16, so 60 s at most);
/// - `next_connection_delay_ms` = 0: it would otherwise sleep after each
///   accept, a throttle neither other broker has.
fn rumqttd(at: &Listeners, limits: Limits, cert: &Path, key: &Path) -> String {
    let (segment, segments, packet, timeout) = match limits {
        Limits::Raised => (100 << 20, 10, ATTACK_PACKET_BYTES, 60_000),
        Limits::Attack => (64 << 20, 16, ATTACK_PACKET_BYTES, 10_000),
    };
    let connections = |table: &str| {
        format!(
            "[{table}.connections]\n\
             connection_timeout_ms = {timeout}\n\
             max_payload_size = {packet}\n\
             max_inflight_count = 100\n\
             dynamic_filters = true\n"
        )
    };
    let server = |table: &str, addr: SocketAddr| {
        format!(
            "[{table}]\nname = \"{}\"\nlisten = \"{addr}\"\nnext_connection_delay_ms = 0\n{}",
            table.replace('.', "-"),
            connections(table)
        )
    };
    let mut text = format!(
        "id = 0\n\
         [router]\n\
         id = 0\n\
         max_connections = 20000\n\
         max_outgoing_packet_count = 200\n\
         max_segment_size = {segment}\n\
         max_segment_count = {segments}\n"
    );
    text += &server("v4.1", at.plain);
    text += &server("v4.2", at.tls);
    text += &format!(
        "[v4.2.tls]\ncertpath = {:?}\nkeypath = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    if let Some(ws) = at.ws {
        text += &server("ws.1", ws);
    }
    text
}
