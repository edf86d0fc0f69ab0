//! New TLS clients as fast as they come: each a TCP connection, a full
//! handshake (no resumption), CONNECT and CONNACK, then closed, from
//! `churn_workers` workers at once. What the broker's side of a handshake
//! costs, beside mosquitto (OpenSSL) with the same ECDSA certificate.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Runtime;

use crate::brokers::Broker;
use crate::stats::{Better, Outcome};
use crate::tls;

use super::Settings;

pub fn handshakes(rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
    let done = Arc::new(AtomicU64::new(0));
    let (cpu_before, start) = (broker.cpu(), Instant::now());
    let deadline = start + settings.duration;
    rt.block_on(async {
        let workers: Vec<_> = (0..settings.churn_workers)
            .map(|w| {
                let (done, addr, config) = (done.clone(), broker.tls_addr, tls::client());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let id = format!("tls-{w}-{i}");
                        if let Err(error) = tls::handshake(addr, config.clone(), &id).await {
                            panic!("TLS client {id}: {error}");
                        }
                        done.fetch_add(1, Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("TLS worker");
        }
    });
    let (elapsed, cpu) = (start.elapsed(), broker.cpu() - cpu_before);
    let total = done.load(Relaxed);
    let mut outcome = Outcome::default();
    outcome.push(
        "handshakes (+CONNECT)",
        "conn/s",
        total as f64 / elapsed.as_secs_f64(),
        Better::Higher,
    );
    outcome.push(
        "broker CPU per handshake",
        "us",
        cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
        Better::Lower,
    );
    outcome
}
