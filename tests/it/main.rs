//! Every integration test outside the simulation, as one test binary: the
//! helpers in `common` are compiled once, not once per file, and nothing is
//! linked twice; and one harness runs all the tests together, where one
//! binary per file would run the files one after another. The simulation is
//! a binary of its own, `tests/sim/`.

mod common;

mod binary_workers;
mod codec5_props;
mod codec5_snapshots;
mod codec_props;
mod codec_snapshots;
mod http_metrics;
mod http_page;
mod seed_story;
mod store_failure;
mod store_full_disk;
mod store_metrics;
mod store_restart;
mod store_tail;
mod tcp5_auth;
mod tcp5_disconnect;
mod tcp5_limits;
mod tcp5_mixed;
mod tcp5_publish;
mod tcp5_rumqttc;
mod tcp5_session;
mod tcp5_subscribe;
mod tcp5_topic_aliases;
mod tcp5_will;
mod tcp_acks;
mod tcp_acl;
// Elsewhere reads carry no receive stamp, which arrival order rests on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod tcp_arrival_order;
mod tcp_auth;
mod tcp_bad_input;
mod tcp_client_end;
mod tcp_connect;
mod tcp_error_end;
mod tcp_essential;
mod tcp_give_way;
mod tcp_listeners;
mod tcp_logging;
mod tcp_memory_limit;
mod tcp_overlap;
mod tcp_qos;
mod tcp_reload;
mod tcp_reserved_topics;
mod tcp_retained;
mod tcp_retained_bulk;
mod tcp_session_limits;
mod tcp_sessions;
mod tcp_slow_subscriber;
mod tcp_timeouts;
mod tcp_topics;
mod tcp_wide_filters;
mod tcp_will;
mod tls;
mod tls_client_certs;
mod tls_files;
mod ws_js;
mod ws_memory;
mod ws_transport;
