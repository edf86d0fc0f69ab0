//! Micro-benchmarks of the codec on the hot path of every delivery: decoding
//! and encoding a PUBLISH with a 64-byte payload, at QoS 0 and QoS 1.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tern::codec::{self, DecodeOptions, Packet, PacketId, ProtocolVersion, Publish, QoS};
use tern::topic::TopicName;

/// Packets per decode iteration: decoding consumes its buffer, so each
/// iteration gets a fresh copy, and copying one buffer of many packets keeps
/// that copy out of the per-packet figure.
const PER_BATCH: usize = 1000;

fn publish(qos: QoS) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new("bench/sensors/42/temperature").unwrap(),
        packet_id: (qos != QoS::AtMostOnce).then(|| PacketId::new(7).unwrap()),
        payload: Bytes::from(vec![0xa5; 64]),
        properties: Default::default(),
    })
}

fn codec_benches(c: &mut Criterion) {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let packet = publish(qos);
        let mut group = c.benchmark_group(format!("publish-64B-qos{}", qos as u8));

        group.throughput(Throughput::Elements(1));
        let mut buf = BytesMut::with_capacity(256);
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                codec::encode(black_box(&packet), ProtocolVersion::V311, &mut buf);
                black_box(buf.len())
            })
        });

        let mut many = BytesMut::new();
        for _ in 0..PER_BATCH {
            codec::encode(&packet, ProtocolVersion::V311, &mut many);
        }
        let options = DecodeOptions::default();
        group.throughput(Throughput::Elements(PER_BATCH as u64));
        group.bench_function("decode", |b| {
            b.iter_batched(
                || many.clone(),
                |mut input| {
                    while let Some(packet) = codec::decode(&mut input, &options).unwrap() {
                        black_box(packet);
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, codec_benches);
criterion_main!(benches);
