//! A message's fan-out, done in slices of bounded work, so that no publish
//! holds the broker lock for however long its matches take: one client's
//! 65,536 overlapping filters made one publish's walk 4 to 7 ms, and a
//! publish to a million subscribers is a million copies. A slice walks the
//! index for at most `WALK_WORK_PER_SLICE` (`index/walk.rs`), or delivers
//! to at most `SESSIONS_PER_SLICE` sessions; the route keeps its place
//! between slices, and the lock is let go between them.
//!
//! What holds while a route is in slices:
//! - its publisher's next packet waits for it (the connection resumes the
//!   route before it dispatches anything else, `resume_route`), so a
//!   publisher's messages reach each subscriber in the order sent; a will
//!   waits behind the routes of its session;
//! - the PUBACK or PUBREC goes only when the last slice is done, with the
//!   count of sessions reached (0x10 when none), and with a store it waits
//!   for the commit of every slice's changes (`take_split_acks`);
//! - a session gets one copy whatever the number of its filters that match
//!   [MQTT-3.3.4-2 of 5.0]: each walk slice sorts what it found by
//!   session, and deliveries merge these runs, a session at a time, once
//!   the walk is done (`runs.rs`);
//! - a session that ends before its copy is delivered gets none (as if it
//!   had ended before the publish); one that subscribes meanwhile gets the
//!   message if the walk had not passed its filter yet.
//!
//! A route whose session has no connection (ended, taken over, or lost) is
//! carried on by the timers task (`tick`), a slice a time.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use super::index::WalkCursor;
use super::outbox::{Message, Published};
use super::routing::{grant_for, Frames, Grant};
use super::runs::Runs;
use super::sessions::Prefetch;
use super::subscribe::Subscription;
use super::{Broker, ConnId, Effect, Millis, Retained, SessionId};
use crate::codec::{Ack, Packet, PacketId, Property, Publish};
use crate::config::planted;

/// Work on the subscription index (trie nodes and subscriptions looked at)
/// that one slice of a route does at most: about half a millisecond with
/// the trie in cache, a millisecond or two out of it.
pub const WALK_WORK_PER_SLICE: u64 = 16_384;

/// Sessions that one slice delivers a route's message to at most: each
/// is a copy queued, and a packet for the runtime to write.
pub const SESSIONS_PER_SLICE: usize = 1024;

/// How many matches ahead each step of a session's prefetch is taken:
/// far enough for a miss to come in while the sessions between are
/// served, each step after the one it reads through. One set tried, not
/// tuned.
const PREFETCH_STEPS: [(usize, Prefetch); 3] = [
    (12, Prefetch::Session),
    (6, Prefetch::Queues),
    (2, Prefetch::Window),
];

/// A message on its way to its subscribers.
#[derive(Debug)]
pub(super) struct Route {
    /// Who published it: none for wills and the broker's own.
    origin: Option<SessionId>,
    /// As forwarded: the expiry interval taken out, worked out again for
    /// each copy from `expires_at`.
    forwarded: Publish,
    expires_at: Option<Millis>,
    /// The retained message its topic had before this one (`backlog.rs`).
    previous: Option<Retained>,
    /// Its place among the routes started (`Broker::settle_owed`).
    started: u64,
    cursor: WalkCursor<SessionId>,
    /// Every (session, subscription) the walk found, sorted by session
    /// a walk slice at a time.
    matches: Vec<(SessionId, Subscription)>,
    /// How `matches` is sorted, and how far deliveries have taken it.
    runs: Runs,
    delivered: usize,
    frames: Frames,
    /// The QoS 1 copies', each session's packet id written in as it goes.
    frames_as: Frames,
    /// The copy of every session that takes the message as forwarded.
    as_is: Option<Arc<Publish>>,
    /// The publisher's acknowledgement, sent once it is routed.
    ack: Option<RouteAck>,
    /// Whether it took more than one slice.
    split: bool,
    /// When its PUBLISH's bytes came, if the socket told (`recent.rs`).
    arrived: u64,
}

/// A QoS 1 or 2 PUBLISH's answer, given when its route is done.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteAck {
    pub conn: ConnId,
    pub id: PacketId,
    /// PUBREC (QoS 2), else PUBACK.
    pub received: bool,
}

/// The routes of one session not yet done, oldest first.
pub(super) type Routes = VecDeque<Route>;

impl Broker {
    /// A route for `publish`, not yet walked. A retained message is stored
    /// now: a subscription made while the route is in slices then gets it
    /// from the store if the walk has passed its filter.
    pub(super) fn start_route(&mut self, origin: Option<SessionId>, publish: &Publish) -> Route {
        let expires_at = publish
            .properties
            .message_expiry_interval()
            .map(|secs| self.now + u64::from(secs) * 1000);
        // Forwarded as published [MQTT-3.3.2-*], but for the interval, which
        // is worked out again when each copy is sent.
        let mut forwarded = publish.clone();
        forwarded
            .properties
            .retain(|p| !matches!(p, Property::MessageExpiryInterval(_)));
        // What a subscription owed retained messages on this topic since
        // before this route gets before this one (`settle_owed`): read
        // before it is replaced.
        let previous = (!self.retained.is_empty())
            .then(|| self.retained.get(&publish.topic).cloned())
            .flatten();
        if publish.retain {
            self.retain(&forwarded, expires_at);
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.routes_started += 1;
        Route {
            origin,
            forwarded,
            expires_at,
            previous,
            started: self.routes_started,
            cursor: WalkCursor::default(),
            matches,
            runs: Runs::default(),
            delivered: 0,
            frames: Frames::default(),
            frames_as: Frames::default(),
            as_is: None,
            ack: None,
            split: false,
            arrived: 0,
        }
    }

    /// One slice of `route`: its walk, then its deliveries, each within
    /// its bound. Returns whether it is done.
    pub(super) fn run_route(&mut self, route: &mut Route) -> bool {
        if !route.cursor.is_done() {
            let budget = if planted!(self.config, RouteWalkUnbounded) {
                u64::MAX
            } else {
                WALK_WORK_PER_SLICE
            };
            self.subscriptions_visited += self.index.matches_from(
                &route.forwarded.topic,
                &mut route.cursor,
                budget,
                &mut route.matches,
            );
            let done = route.cursor.is_done();
            if done || !planted!(self.config, RouteSortedWhole) {
                self.matches_sorted += route.runs.seal(&mut route.matches) as u64;
            }
            if !done {
                route.split = true;
                return false;
            }
        }
        let (mut sessions, mut looked_at) = (0, 0);
        let mut blocks = std::mem::take(&mut self.blocks);
        let done = loop {
            if !route.runs.next_session(&route.matches, &mut blocks) {
                break true;
            }
            sessions += 1;
            self.prefetch_ahead(route);
            // A session's own matches are looked at in one go, however
            // many: as many as the filters its client may have.
            looked_at += blocks.iter().map(|b| b.len() as u64).sum::<u64>();
            if self.deliver_routed(route, &blocks) == Delivered::QueueFullEndsFanOut {
                route.runs.give_up();
            }
            if !route.runs.has_more() {
                break true;
            }
            if sessions == SESSIONS_PER_SLICE || looked_at >= WALK_WORK_PER_SLICE {
                route.split = true;
                break false;
            }
        };
        self.blocks = blocks;
        done
    }

    /// Hints for the sessions a few matches on, each a step further along
    /// than for those further on (`prefetch.rs`).
    fn prefetch_ahead(&self, route: &Route) {
        // Hints do nothing elsewhere: no lookups made for them.
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        for (n, step) in PREFETCH_STEPS {
            if let Some(sid) = route.runs.ahead(&route.matches, n) {
                self.sessions.prefetch(sid, step);
            }
        }
    }

    /// The route's message to the session whose matches are `blocks` of
    /// `route.matches`, one copy at the highest QoS its filters grant,
    /// with every Subscription Identifier among them [MQTT-3.3.4-2 of 5.0].
    fn deliver_routed(&mut self, route: &mut Route, blocks: &[Range<usize>]) -> Delivered {
        let matches = &route.matches;
        let sid = matches[blocks[0].start].0;
        // Ended since the walk found it, or ending a slice at a time.
        if !self.sessions.contains(sid) || self.reaping.holds(sid) {
            return Delivered::Not;
        }
        let forwarded = &route.forwarded;
        if !self.may_read(sid, &forwarded.topic) {
            return Delivered::Not;
        }
        if self.owed > 0 && !self.sessions.get(sid).backlog.is_empty() {
            self.settle_owed(
                sid,
                &forwarded.topic,
                route.previous.as_ref(),
                route.started,
            );
        }
        let origin = route.origin;
        let ignores_no_local = planted!(self.config, NoLocalIgnored);
        let kept = |s: &&Subscription| {
            let no_local = s.options.no_local && !ignores_no_local;
            !(no_local && origin == Some(sid))
        };
        fn of((_, s): &(SessionId, Subscription)) -> &Subscription {
            s
        }
        // One block, as a session's matches nearly always are: a slice
        // read, not blocks flattened (six passes of that machinery cost
        // 6% of a QoS 1 fan-out's instructions).
        let copy = match blocks {
            [block] => copy_of(
                forwarded,
                matches[block.clone()].iter().map(of).filter(kept),
            ),
            _ => copy_of(
                forwarded,
                blocks
                    .iter()
                    .flat_map(|b| &matches[b.clone()])
                    .map(of)
                    .filter(kept),
            ),
        };
        let mut message = match copy {
            SessionCopy::Plain => {
                route.delivered += 1;
                self.send_frame(sid, forwarded, route.expires_at, &mut route.frames);
                return Delivered::Sent;
            }
            SessionCopy::AsIs(grant) => {
                let as_is = route
                    .as_is
                    .get_or_insert_with(|| Arc::new(grant.copy(forwarded)));
                Arc::clone(as_is)
            }
            SessionCopy::Own(message) => Arc::new(message),
            SessionCopy::None => return Delivered::Not,
        };
        if planted!(self.config, RetainAsPublishedIgnored) {
            Arc::make_mut(&mut message).retain = false;
        }
        route.delivered += 1;
        let dropped_before = self.dropped.queue_full;
        let published = Published {
            qos: forwarded.qos,
            retain: forwarded.retain,
        };
        self.deliver_framed(
            sid,
            Message {
                publish: message,
                expires_at: route.expires_at,
                group: None,
                resend_id: None,
                seq: 0,
                published,
            },
            Some(&mut route.frames_as),
        );
        if planted!(self.config, FullQueueEndsFanOut) && self.dropped.queue_full > dropped_before {
            return Delivered::QueueFullEndsFanOut;
        }
        Delivered::Sent
    }

    /// A route all of whose slices are done: its shared groups (few, and
    /// done whole), its acknowledgement; returns how many sessions and
    /// groups it went to.
    pub(super) fn finish_route(&mut self, mut route: Route) -> usize {
        let delivered = route.delivered + self.route_shared(&route.forwarded, route.expires_at);
        if let Some(ack) = route.ack {
            let ack_packet = Ack::with_reason(ack.id, super::routing::matched_reason(delivered));
            let packet = if ack.received {
                Packet::PubRec(ack_packet)
            } else {
                Packet::PubAck(ack_packet)
            };
            self.effects.push(Effect::Send(ack.conn, packet));
            // Its earlier slices' changes were committed under gates of
            // their own holds: the answer waits for them too.
            self.split_acks |= route.split;
        }
        // Kept for a subscription made after it but asked for before it
        // came; a retained message it gets from the retained store.
        if let Some(origin) = route.origin.filter(|_| route.arrived != 0) {
            if !route.forwarded.retain {
                self.recent.keep(super::recent::RecentMessage {
                    arrived: route.arrived,
                    origin,
                    forwarded: route.forwarded,
                    expires_at: route.expires_at,
                    seq: 0,
                });
            }
        }
        // The buffer back for the next route, unless a big one made it big.
        route.matches.clear();
        if route.matches.capacity() <= MATCHES_KEPT {
            self.matches = std::mem::take(&mut route.matches);
        }
        delivered
    }

    /// Routes `publish` whole, in this hold: wills and the broker's own.
    pub(super) fn route_from(&mut self, origin: Option<SessionId>, publish: &Publish) -> usize {
        let mut route = self.start_route(origin, publish);
        while !self.run_route(&mut route) {}
        self.finish_route(route)
    }

    /// Routes a client's `publish`, answered with `ack` once done: the
    /// first slice now, the rest as the runtime resumes it.
    pub(super) fn route_publish(
        &mut self,
        sid: SessionId,
        publish: &Publish,
        ack: Option<RouteAck>,
        arrived: u64,
    ) {
        let mut route = self.start_route(Some(sid), publish);
        route.ack = ack;
        route.arrived = arrived;
        if self.run_route(&mut route) {
            self.finish_route(route);
        } else {
            self.routes.entry(sid).or_default().push_back(route);
        }
    }

    /// A will of session `sid`: behind its routes if it has any, else
    /// routed whole now.
    pub(super) fn route_will(&mut self, sid: SessionId, publish: &Publish) {
        if !self.routes.contains_key(&sid) {
            self.route_from(None, publish);
            return;
        }
        let route = self.start_route(None, publish);
        self.routes.entry(sid).or_default().push_back(route);
    }

    /// Whether the connection's session has a message still being routed:
    /// its next packets wait for it.
    pub fn route_pending(&self, conn: ConnId) -> bool {
        !self.routes.is_empty()
            && self
                .sessions
                .by_conn(conn)
                .is_some_and(|sid| self.routes.contains_key(&sid))
    }

    /// Whether the connection has work in slices, a route of its session's
    /// or its SUBSCRIBE: what it sends next waits for that.
    pub fn work_pending(&self, conn: ConnId) -> bool {
        self.subscribe_pending(conn) || self.route_pending(conn)
    }

    /// One slice of the connection's work in slices; whether any is left.
    pub fn resume_work(&mut self, conn: ConnId) -> bool {
        if self.subscribe_pending(conn) {
            return self.resume_subscribe(conn);
        }
        self.resume_route(conn)
    }

    /// One slice of the oldest route of the connection's session; returns
    /// whether any is left.
    pub fn resume_route(&mut self, conn: ConnId) -> bool {
        match self.sessions.by_conn(conn) {
            Some(sid) => self.resume_session_route(sid),
            None => false,
        }
    }

    /// Finishes the session's routes, whole: for a caller that goes on
    /// without resuming them (the runtime resumes them between holds).
    pub(super) fn finish_routes(&mut self, sid: SessionId) {
        while self.resume_session_route(sid) {}
    }

    fn resume_session_route(&mut self, sid: SessionId) -> bool {
        let Some(routes) = self.routes.get_mut(&sid) else {
            return false;
        };
        let mut route = routes.pop_front().expect("no empty entries are kept");
        let done = self.run_route(&mut route);
        let routes = self.routes.get_mut(&sid).expect("still there");
        if !done {
            routes.push_front(route);
            return true;
        }
        if routes.is_empty() {
            self.routes.remove(&sid);
        }
        self.finish_route(route);
        self.routes.contains_key(&sid)
    }

    /// A slice of each route whose session no connection resumes (ended,
    /// or offline); whether any is left.
    pub(super) fn resume_orphan_routes(&mut self) -> bool {
        let orphans: Vec<SessionId> = (self.routes.keys())
            .filter(|&&sid| !self.sessions.contains(sid) || self.sessions.get(sid).conn().is_none())
            .copied()
            .collect();
        for sid in orphans {
            self.resume_session_route(sid);
        }
        self.has_orphan_routes()
    }

    pub(super) fn has_orphan_routes(&self) -> bool {
        (self.routes.keys())
            .any(|&sid| !self.sessions.contains(sid) || self.sessions.get(sid).conn().is_none())
    }

    /// Whether a route in slices acknowledged its publisher since the last
    /// call: that hold's answer must wait for the commit of the changes
    /// of every hold before it, not only its own.
    pub fn take_split_acks(&mut self) -> bool {
        std::mem::take(&mut self.split_acks)
    }
}

/// What became of one session's copy.
#[derive(Debug, PartialEq, Eq)]
enum Delivered {
    Not,
    Sent,
    /// `FullQueueEndsFanOut`: the rest get nothing.
    QueueFullEndsFanOut,
}

/// The matches buffer kept between routes, at most: a route to a hundred
/// thousand sessions does not pin its room for good.
const MATCHES_KEPT: usize = 4096;

/// What one session gets of a routed message, from its matching
/// subscriptions.
enum SessionCopy {
    /// The QoS 0 frame shared by every session of its protocol version.
    Plain,
    /// The message as forwarded, shared by every session that takes it
    /// so (`Route::as_is`): a thousand subscribers at QoS 1 held a
    /// thousand copies, each a reference taken to its topic and payload
    /// here and dropped at its PUBACK, often on the other worker.
    AsIs(Grant),
    /// A copy of its own (QoS, retain, Subscription Identifiers).
    Own(Publish),
    /// Nothing: none of its subscriptions is in force for it.
    None,
}

fn copy_of<'a>(
    forwarded: &Publish,
    subscriptions: impl Iterator<Item = &'a Subscription>,
) -> SessionCopy {
    match grant_for(forwarded, subscriptions) {
        Some(grant) if grant.is_plain_qos0(forwarded) => SessionCopy::Plain,
        Some(grant) if grant.is_as_is(forwarded) => SessionCopy::AsIs(grant),
        Some(grant) => SessionCopy::Own(grant.copy(forwarded)),
        None => SessionCopy::None,
    }
}
