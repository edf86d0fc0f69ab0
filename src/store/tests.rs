use super::*;
use crate::broker::{Change, Granted, Key, SessionRecord, Stored};
use crate::codec::{ProtocolVersion, QoS, SubscriptionOptions};

const CLOCK: Clock = Clock {
    epoch_ms: 1_000_000,
};

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn record(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.into(),
        owner: None,
        version: ProtocolVersion::V311,
        expiry_secs: 60,
        asked_no_expiry: true,
        expires_at: None,
        delayed_will: None,
    }
}

fn filter(f: &str) -> crate::topic::TopicFilter {
    crate::topic::TopicFilter::new(f).unwrap()
}

fn granted() -> Option<Granted> {
    Some(Granted {
        options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        id: None,
    })
}

fn commit(store: &mut Store, changes: Vec<Change>) {
    let mut batch = Batch::default();
    batch.add(changes);
    store.commit(&batch).unwrap();
}

#[test]
fn what_is_committed_is_read_back_and_an_ended_session_leaves_nothing() {
    let dir = dir("readback");
    let (mut store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    assert!(restored.sessions.is_empty() && restored.retained.is_empty());
    let (one, two) = (SessionId(1), SessionId(2));
    commit(
        &mut store,
        vec![
            Change::Session(one, Some(record("one")), Key::New),
            Change::Session(two, Some(record("two")), Key::New),
            Change::Filter(one, filter("a/#"), granted(), Key::New),
            Change::Filter(one, filter("b"), granted(), Key::New),
            Change::Filter(two, filter("c"), granted(), Key::New),
            Change::AwaitingRelease(two, PacketId::new(4).unwrap(), true),
        ],
    );
    // An unsubscribe, a session's end, a later value for a key.
    commit(
        &mut store,
        vec![
            Change::Filter(one, filter("b"), None, Key::Seen),
            Change::Session(two, None, Key::Seen),
            Change::Session(one, Some(record("one again")), Key::Seen),
        ],
    );
    drop(store);
    let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    assert_eq!(restored.sessions.len(), 1);
    let session = &restored.sessions[0];
    assert_eq!(
        (session.sid, session.record.client_id.as_str()),
        (one, "one again")
    );
    let filters: Vec<_> = session.filters.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(filters, ["a/#"]);
    assert!(session.awaiting_release.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn released(sid: SessionId, seq: u64, stored: bool, key: Key) -> Change {
    let stored = stored.then(|| Stored::Released(PacketId::new(1).unwrap()));
    Change::Message(sid, seq, stored, key)
}

#[test]
fn a_key_made_and_removed_in_one_batch_is_not_written_one_written_before_is_removed() {
    let dir = dir("cancel");
    let (mut store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let (one, two) = (SessionId(1), SessionId(2));
    let id = PacketId::new(7).unwrap();
    commit(
        &mut store,
        vec![
            Change::Session(one, Some(record("one")), Key::New),
            Change::Filter(one, filter("kept"), granted(), Key::New),
            Change::Filter(one, filter("old"), granted(), Key::New),
            released(one, 1, true, Key::New),
            Change::AwaitingRelease(one, id, true),
        ],
    );
    let mut batch = Batch::default();
    batch.add(vec![
        // Written by the commit before: removed.
        released(one, 1, false, Key::Seen),
        Change::Filter(one, filter("old"), None, Key::Seen),
        Change::AwaitingRelease(one, id, false),
        // Made here and removed here, a message twice over (taken from
        // the queue, then sent): nothing to write.
        released(one, 2, true, Key::New),
        released(one, 2, false, Key::Seen),
        released(one, 2, true, Key::Seen),
        released(one, 2, false, Key::Seen),
        Change::Filter(one, filter("brief"), granted(), Key::New),
        Change::Filter(one, filter("brief"), None, Key::Seen),
        Change::AwaitingRelease(one, PacketId::new(8).unwrap(), true),
        Change::AwaitingRelease(one, PacketId::new(8).unwrap(), false),
        // A session made and ended here, with its rows: nothing at all.
        Change::Session(two, Some(record("two")), Key::New),
        Change::Filter(two, filter("c"), granted(), Key::New),
        released(two, 1, true, Key::New),
        Change::Session(two, None, Key::Seen),
    ]);
    let writes = store.commit(&batch).unwrap();
    assert_eq!(writes, 3, "only the three removals: {batch:?}");
    drop(store);
    let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    assert_eq!(restored.sessions.len(), 1);
    let session = &restored.sessions[0];
    let filters: Vec<_> = session.filters.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(filters, ["kept"]);
    assert!(session.messages.is_empty() && session.awaiting_release.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removals go in runs along the leaves (`removal_runs`): a key in a
/// run's span that the batch does not remove, or updates, stays, and a run
/// stops at its session.
#[test]
fn removals_in_runs_keep_every_key_between_them_that_the_batch_does_not_remove() {
    let dir = dir("runs");
    let (mut store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let (one, two) = (SessionId(1), SessionId(2));
    let mut made = vec![
        Change::Session(one, Some(record("one")), Key::New),
        Change::Session(two, Some(record("two")), Key::New),
    ];
    made.extend((1..=40).map(|seq| released(one, seq, true, Key::New)));
    made.extend((1..=5).map(|seq| released(two, seq, true, Key::New)));
    commit(&mut store, made);
    let kept_in_spans = [3, 15, 38, 39];
    let mut removed: Vec<Change> = (1..=20)
        .chain([40])
        .filter(|seq| !kept_in_spans.contains(seq) && *seq != 7)
        .map(|seq| released(one, seq, false, Key::Seen))
        .collect();
    removed.extend([
        released(one, 7, true, Key::Seen),
        // Made and removed here: nothing to walk past.
        released(one, 41, true, Key::New),
        released(one, 41, false, Key::Seen),
        released(two, 1, false, Key::Seen),
    ]);
    commit(&mut store, removed);
    drop(store);
    let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let seqs = |sid| {
        let session = restored.sessions.iter().find(|s| s.sid == sid).unwrap();
        session
            .messages
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>()
    };
    let want_one: Vec<u64> = [3, 7, 15].into_iter().chain(21..=39).collect();
    assert_eq!(seqs(one), want_one);
    assert_eq!(seqs(two), [2, 3, 4, 5]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_ended_and_made_again_in_one_batch_keeps_only_what_came_after() {
    let dir = dir("again");
    let (mut store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let one = SessionId(1);
    commit(
        &mut store,
        vec![
            Change::Session(one, Some(record("one")), Key::New),
            Change::Filter(one, filter("before"), granted(), Key::New),
            released(one, 1, true, Key::New),
        ],
    );
    // It stops outliving its connection, then outlives it again.
    commit(
        &mut store,
        vec![
            released(one, 2, true, Key::New),
            Change::Session(one, None, Key::Seen),
            Change::Session(one, Some(record("one")), Key::New),
            Change::Filter(one, filter("after"), granted(), Key::New),
            released(one, 3, true, Key::New),
        ],
    );
    drop(store);
    let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let session = &restored.sessions[0];
    let filters: Vec<_> = session.filters.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(filters, ["after"]);
    let seqs: Vec<_> = session.messages.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [3]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_of_another_format_is_refused_not_emptied() {
    let dir = dir("format");
    let (store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert("format", b"tern-store-0".as_slice())
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let error = Store::open_dir(&dir, CLOCK, usize::MAX)
        .err()
        .expect("refused");
    assert!(
        error.contains("tern-store-0") && error.contains(FILE_NAME) && !error.contains('\n'),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

mod through_the_broker {
    //! A broker's state written through the store and read back into a
    //! new broker: the same sessions, and the same packets on reconnect.

    use bytes::Bytes;

    use super::*;
    use crate::broker::{Broker, ConnId, Effect};
    use crate::codec::{Connect, Packet, Publish, Subscribe};
    use crate::config::Config;
    use crate::topic::TopicName;

    fn config() -> Config {
        Config {
            inflight_messages_max: 2,
            ..Config::default()
        }
    }

    fn connect(broker: &mut Broker, conn: u64, client_id: &str) -> Vec<Effect> {
        let connect = Connect {
            version: ProtocolVersion::V311,
            clean_session: false,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        };
        broker.connect(ConnId(conn), connect).expect("accepted");
        broker.drain_effects().collect()
    }

    fn publish(topic: &str, qos: QoS, id: u16, payload: &str, retain: bool) -> Publish {
        Publish {
            dup: false,
            qos,
            retain,
            topic: TopicName::new(topic).unwrap(),
            packet_id: PacketId::new(id).filter(|_| qos != QoS::AtMostOnce),
            payload: Bytes::from(payload.to_owned()),
            properties: Default::default(),
        }
    }

    /// Writes what `broker` changed since the last call.
    fn save(broker: &mut Broker, store: &mut Store) {
        commit(store, broker.take_changes());
    }

    #[test]
    fn a_restored_broker_resends_what_the_first_would_have() {
        let dir = dir("broker");
        let (mut store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
        let mut first = Broker::new(config());
        first.keep_changes();
        connect(&mut first, 1, "keeper");
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            filters: vec![(filter("k/#"), SubscriptionOptions::qos(QoS::ExactlyOnce))],
            properties: Default::default(),
        };
        first.subscribe(ConnId(1), subscribe).unwrap();
        connect(&mut first, 2, "publisher");
        save(&mut first, &mut store);
        // Two go out in the window, one of them acknowledged; one QoS 2
        // is released; the rest wait. The publisher's QoS 2 id 9 awaits
        // its PUBREL.
        for n in 1..=5 {
            let qos = if n == 2 {
                QoS::ExactlyOnce
            } else {
                QoS::AtLeastOnce
            };
            first
                .publish(ConnId(2), publish("k/n", qos, n, &n.to_string(), false))
                .unwrap();
        }
        first
            .publish(ConnId(2), publish("k/q2", QoS::ExactlyOnce, 9, "in", false))
            .unwrap();
        first
            .publish(
                ConnId(2),
                publish("r/x", QoS::AtLeastOnce, 10, "kept", true),
            )
            .unwrap();
        first.puback(ConnId(1), PacketId::new(1).unwrap());
        let rec = crate::codec::Ack::success(PacketId::new(2).unwrap());
        first.pubrec(ConnId(1), &rec);
        first.connection_lost(ConnId(1), false);
        first.connection_lost(ConnId(2), false);
        first.drain_effects().for_each(drop);
        save(&mut first, &mut store);
        drop(store);

        let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
        let mut second = Broker::new(config());
        second.restore(restored).unwrap();
        let (a, b) = (first.stats(), second.stats());
        assert_eq!(
            (a.sessions_offline, a.subscriptions, a.retained),
            (b.sessions_offline, b.subscriptions, b.retained)
        );
        assert_eq!(a.queued + a.inflight, b.queued + b.inflight);
        // The same packets to the returning subscriber, in the same order:
        // the PUBREL of the released one, the unacknowledged one again
        // with DUP under its id, then the queue.
        let again = connect(&mut first, 3, "keeper");
        assert_eq!(connect(&mut second, 3, "keeper"), again);
        assert!(again
            .iter()
            .any(|e| matches!(e, Effect::Send(_, Packet::PubRel(_)))));
        // The publisher's resend of QoS 2 id 9 is known: not routed twice.
        connect(&mut second, 4, "publisher");
        let mut resend = publish("k/q2", QoS::ExactlyOnce, 9, "in", false);
        resend.dup = true;
        let queued = second.stats().queued;
        second.publish(ConnId(4), resend).unwrap();
        assert_eq!(second.stats().queued, queued, "routed again after restart");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod full_disk;

/// A message of a megabyte is written, and the buffer it was laid out in
/// is not kept at its size.
#[test]
fn a_big_record_leaves_no_big_buffer_behind() {
    use crate::broker::{Message, Published};
    use crate::codec::{Properties, Publish};
    let dir = dir("scratch");
    let (mut store, _) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let one = SessionId(1);
    let big = Message {
        publish: Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: crate::topic::TopicName::new("a/b").unwrap(),
            packet_id: None,
            payload: bytes::Bytes::from(vec![7u8; 1 << 20]),
            properties: Properties::default(),
        }
        .into(),
        expires_at: None,
        group: None,
        resend_id: None,
        published: Published {
            qos: QoS::AtLeastOnce,
            retain: false,
        },
        seq: 1,
    };
    commit(
        &mut store,
        vec![
            Change::Session(one, Some(record("one")), Key::New),
            Change::Message(one, 1, Some(Stored::Queued(big)), Key::New),
        ],
    );
    assert!(store.scratch.capacity() <= SCRATCH_KEPT);
    drop(store);
    let (_store, restored) = Store::open_dir(&dir, CLOCK, usize::MAX).unwrap();
    let (_, back) = &restored.sessions[0].messages[0];
    let Stored::Queued(back) = back else {
        panic!("{back:?}")
    };
    assert_eq!(back.publish.payload.len(), 1 << 20);
    let _ = std::fs::remove_dir_all(&dir);
}
