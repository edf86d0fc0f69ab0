//! tern: an MQTT broker whose correctness is shown by deterministic simulation.
//!
//! # Layout
//!
//! - [`codec`]: sans-IO MQTT packets: bytes in, `Packet` out, and back.
//! - [`topic`]: topic names and filters, validated, and how they match.

pub mod codec;
pub mod topic;
