//! tern: an MQTT 3.1.1 and 5.0 broker whose correctness is shown by
//! deterministic simulation: the same server code runs over real TCP and
//! inside turmoil.
//!
//! # Layout
//!
//! - [`codec`]: sans-IO MQTT packets: bytes in, `Packet` out, and back.
//! - [`topic`]: topic names and filters, validated, and how they match.
//! - [`broker`]: the routing state (sessions, subscriptions, retained
//!   messages, QoS flows), pure and deterministic; it returns effects.
//! - [`link`]: one connection's protocol, without I/O: what each packet
//!   means, what the link answers itself, how an end is told.
//! - [`server`]: the tokio layer: acceptor, one task per connection, the
//!   task registry, the census and `$SYS`, graceful shutdown.
//! - [`net`]: the `Listener` trait the server is generic over.
//! - [`http`]: the optional HTTP listener: `/metrics` and a status page
//!   (`Server::serve_http`).
//! - [`store`]: the durable state on disk (redb), and where its commits
//!   run.
//! - [`config`]: every limit, with its default.

pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub mod http;
pub mod link;
pub mod net;
mod prefetch;
pub mod server;
pub mod store;
pub mod topic;
pub mod transport;

pub use config::Config;
pub use server::{run, Census, Endpoint, Server, ShutdownReport};
