//! The deterministic simulation harness for tern (built in its own issue).
