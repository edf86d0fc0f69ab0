//! Router transcripts: inputs in, effects out.
