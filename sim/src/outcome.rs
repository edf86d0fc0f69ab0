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
    pub steps: u64,
}
