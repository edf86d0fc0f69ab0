//! The simulation, as one test binary: `cargo test` at the root builds and
//! runs it, and every failure prints `SIM_SEED=N cargo test --test sim --
//! --exact TEST`, which reruns that same binary.

mod determinism;
mod durable;
mod held_before_connack;
mod overlapping_filters;
mod overlapping_retained;
mod plans;
mod planted_bugs;
mod retained_after_unsuback;
mod retained_carried_over;
mod retained_held_back;
mod scenarios;
mod seed_story;
mod subscribes_in_flight;
mod turmoil_fin;
mod will_before_connack;
