//! tern-sim: the deterministic simulation harness. The real broker
//! (`tern::Server`) runs as a turmoil host; simulated MQTT clients, drawn from
//! one seed, connect, subscribe, publish and drop abruptly under network
//! faults and broker restarts; invariants are checked on the recorded history
//! and the broker's census; any failure prints the seed that replays it.
//!
//! # Layout
//!
//! - [`workload`]: scenarios and the plans drawn from a seed.
//! - [`observers`]: long-lived clients, whom the delivery checks hold to
//!   account.
//! - [`adversary`]: hostile clients, who push the broker's limits.
//! - [`client`]: the simulated client, a turmoil host speaking MQTT.
//! - [`history`]: what the clients did and saw, in simulated time.
//! - [`run`]: one run: hosts, faults, the end-of-run census and shutdown.
//! - [`outcome`]: what a run leaves for the checks.
//! - [`check`]: the invariants.
//! - [`seeds`]: which seeds to run, replay lines, the file of failed seeds.
//! - [`scenarios`]: the named scenarios that `cargo test` runs.
//! - [`secured`]: users, an ACL, and clients that try them.
//! - [`tls`]: a TLS port beside the plain one, and the clients that use it.
//! - [`clock`]: jumps of the broker's clock, and the clients they decide.
//! - [`network`]: spells of a slow network.
//! - [`grace`]: holds just inside a keepalive's grace.
//! - [`session_corners`]: empty client ids, a DISCONNECT's session expiry,
//!   a client's Maximum Packet Size.
//! - [`durable`]: the broker's store on a simulated disk, crashed often.

pub mod adversary;
pub mod check;
pub mod client;
pub mod clock;
pub mod corners;
pub mod durable;
pub mod grace;
pub mod history;
pub mod network;
pub mod observers;
pub mod outcome;
pub mod run;
pub mod scenarios;
pub mod secured;
pub mod seeds;
pub mod session_corners;
pub mod tls;
pub mod workload;
