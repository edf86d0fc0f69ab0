//! What a run leaves to look at: its own module, so that the run that makes
//! it and the checks that read it do not import each other.

use tern::{Census, ShutdownReport};

use crate::history::History;

/// Everything a run leaves to look at.
pub struct Outcome {
    pub history: History,
    /// The census once every client has gone.
    pub idle: Census,
    pub shutdown: ShutdownReport,
    /// The census's queue and outbound drops, by the client id they were
    /// for (the last broker's, as the census is).
    pub dropped_by_client: std::collections::BTreeMap<String, u64>,
    pub steps: u64,
}
