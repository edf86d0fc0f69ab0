use crate::envelope::{Envelope, Protocol};
use crate::host::Host;
use crate::rt::Rt;
use crate::{config, TRACING_TARGET};

use crate::fasthash::FastMap;
use rand::{Rng, RngCore};
use rand_distr::{Distribution, Exp};
use std::collections::VecDeque;
use std::io::{Error, ErrorKind, Result};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// Describes the network topology.
pub(crate) struct Topology {
    config: config::Link,

    /// Specific configuration overrides between specific hosts.
    links: FastMap<Pair, Link>,

    /// For each host, the indices in `links` of the links it is on, in
    /// increasing order: delivering to a host visits only its own links, in
    /// the order a scan of every link would (tern: the scan was most of a
    /// step's cost with a hundred hosts, whose links are all pairs).
    host_links: FastMap<IpAddr, Vec<usize>>,

    /// For each link, by index: whether it may have messages in flight
    /// (`Link::sent` not empty), and whether it has messages ready for a
    /// host (`Link::pending` not zero). A step ticks only the links in
    /// flight and visits only those with messages ready, without touching
    /// the others (tern: with every pair of a hundred hosts linked, reading
    /// each link each step was most of a step's cost).
    in_flight: Vec<bool>,
    ready: Vec<bool>,

    /// The indices of the links in flight, each once, in no order; and an
    /// empty vector to swap with it while a tick goes through it.
    flying: Vec<usize>,
    spare: Vec<usize>,

    /// For each link, the positions in `host_links` of its two hosts.
    ends: Vec<(usize, usize)>,

    /// For each host, by its position in `host_links`, how many of its
    /// links have messages ready: a host with none visits none.
    host_ready: Vec<usize>,

    /// The network's time as of the last tick. Every link's `now` is this;
    /// a link that `tick_by` passes over has its `now` brought up to it
    /// before it is used.
    now: Instant,

    /// We don't use a Rt for async. Right now, we just use it to tick time
    /// forward in the same way we do it elsewhere. We'd like to represent
    /// network state with async in the future.
    rt: Rt<'static>,
}

/// This type is used as the key in the [`Topology::links`] map. See [`new`]
/// which orders the addrs, such that this type uniquely identifies the link
/// between two hosts on the network.
#[derive(Debug, Clone, Hash, Eq, PartialEq)]
struct Pair(IpAddr, IpAddr);

impl Pair {
    fn new(a: IpAddr, b: IpAddr) -> Pair {
        assert_ne!(a, b);

        if a < b {
            Pair(a, b)
        } else {
            Pair(b, a)
        }
    }
}

/// An iterator for the network topology, providing access to all active links
/// in the simulated network.
pub struct LinksIter<'a> {
    iter: indexmap::map::IterMut<'a, Pair, Link>,
}

/// An iterator for the link, providing access to sent messages that have not
/// yet been delivered.
pub struct LinkIter<'a> {
    a: IpAddr,
    b: IpAddr,
    now: Instant,
    iter: std::collections::vec_deque::IterMut<'a, Sent>,
}

impl LinkIter<'_> {
    /// The [`IpAddr`] pair for the link. Always ordered to uniquely identify
    /// the link.
    pub fn pair(&self) -> (IpAddr, IpAddr) {
        (self.a, self.b)
    }

    /// Schedule all messages on the link for delivery the next time the
    /// simulation steps, consuming the iterator.
    pub fn deliver_all(self) {
        for sent in self {
            sent.deliver();
        }
    }
}

/// Provides a reference to a message that is currently inflight on the network
/// from one host to another.
pub struct SentRef<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    now: Instant,
    sent: &'a mut Sent,
}

impl SentRef<'_> {
    /// The (src, dst) [`SocketAddr`] pair for the message.
    pub fn pair(&self) -> (SocketAddr, SocketAddr) {
        (self.src, self.dst)
    }

    /// The message [`Protocol`].
    pub fn protocol(&self) -> &Protocol {
        &self.sent.protocol
    }

    /// Schedule the message for delivery the next time the simulation steps,
    /// consuming the item.
    pub fn deliver(self) {
        self.sent.deliver(self.now);
    }
}

impl<'a> Iterator for LinksIter<'a> {
    type Item = LinkIter<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (pair, link) = self.iter.next()?;

        Some(LinkIter {
            a: pair.0,
            b: pair.1,
            now: link.now,
            iter: link.sent.iter_mut(),
        })
    }
}

impl<'a> Iterator for LinkIter<'a> {
    type Item = SentRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let sent = self.iter.next()?;

        Some(SentRef {
            src: sent.src,
            dst: sent.dst,
            now: self.now,
            sent,
        })
    }
}

/// A two-way link between two hosts on the network.
struct Link {
    /// The state of the link from node 'a' to node 'b'.
    /// Of the two nodes attached to a link, 'a' is the
    /// one whose ip address sorts smallest.
    state_a_b: State,
    /// The state of the link from node 'b' to node 'a'.
    /// Of the two nodes attached to a link, 'b' is the
    /// one whose ip address sorts greatest.
    state_b_a: State,

    /// Optional, per-link configuration.
    config: config::Link,

    /// Sent messages that are either scheduled for delivery in the future
    /// or are on hold.
    sent: VecDeque<Sent>,

    /// Messages that are ready to be delivered.
    deliverable: FastMap<IpAddr, VecDeque<Envelope>>,

    /// How many messages `deliverable` holds, over every host: a link with
    /// none is passed over without a look-up (tern).
    pending: usize,

    /// An empty queue with room, swapped with one of `deliverable`'s to
    /// deliver its messages (tern).
    spare: VecDeque<Envelope>,

    /// The current network time, moved forward with [`Link::tick`].
    now: Instant,
}

/// States that a link between two nodes can be in.
#[derive(Clone, Copy)]
enum State {
    /// The link is healthy.
    Healthy,

    /// The link was explicitly partitioned.
    ExplicitPartition,

    /// The link was randomly partitioned.
    RandPartition,

    /// Messages are being held indefinitely.
    Hold,
}

impl Topology {
    pub(crate) fn new(config: config::Link) -> Topology {
        let rt = Rt::no_software();
        Topology {
            config,
            links: FastMap::default(),
            host_links: FastMap::default(),
            in_flight: Vec::new(),
            ready: Vec::new(),
            flying: Vec::new(),
            spare: Vec::new(),
            ends: Vec::new(),
            host_ready: Vec::new(),
            now: rt.now(),
            rt,
        }
    }

    /// The link at `index`, its clock brought up to the network's, and
    /// marked as possibly changed: `sync` must follow its use.
    fn link_at(&mut self, index: usize) -> &mut Link {
        let (_, link) = self
            .links
            .get_index_mut(index)
            .expect("an index of a link");
        link.now = self.now;
        link
    }

    /// Records whether the link at `index` has messages in flight or ready.
    fn sync(&mut self, index: usize) {
        let link = &self.links[index];
        let (in_flight, ready) = (!link.sent.is_empty(), link.pending > 0);
        if in_flight && !self.in_flight[index] {
            self.flying.push(index);
        }
        self.in_flight[index] = in_flight;
        if ready != self.ready[index] {
            self.ready[index] = ready;
            let (a, b) = self.ends[index];
            for host in [a, b] {
                if ready {
                    self.host_ready[host] += 1;
                } else {
                    self.host_ready[host] -= 1;
                }
            }
        }
    }

    /// Uses the link between `pair`'s hosts, then records its state.
    fn with_link<R>(&mut self, pair: &Pair, f: impl FnOnce(&mut Link, &config::Link) -> R) -> R {
        let index = self
            .links
            .get_index_of(pair)
            .unwrap_or_else(|| panic!("unable to find link between {pair:?}"));
        let config = self.config.clone();
        let result = f(self.link_at(index), &config);
        self.sync(index);
        result
    }

    /// Register a link between two hosts
    pub(crate) fn register(&mut self, a: IpAddr, b: IpAddr) {
        let pair = Pair::new(a, b);
        let (index, old) = self.links.insert_full(pair, Link::new(self.rt.now()));
        assert!(old.is_none());
        self.in_flight.push(false);
        self.ready.push(false);
        let mut ends = [0; 2];
        for (end, host) in ends.iter_mut().zip([a, b]) {
            let entry = self.host_links.entry(host);
            *end = entry.index();
            entry.or_default().push(index);
            if *end == self.host_ready.len() {
                self.host_ready.push(0);
            }
        }
        self.ends.push((ends[0], ends[1]));
    }

    pub(crate) fn set_max_message_latency(&mut self, value: Duration) {
        self.config.latency_mut().max_message_latency = value;
    }

    pub(crate) fn set_link_message_latency(&mut self, a: IpAddr, b: IpAddr, value: Duration) {
        self.with_link(&Pair::new(a, b), |link, config| {
            let latency = link.latency(config.latency());
            latency.min_message_latency = value;
            latency.max_message_latency = value;
        });
    }

    pub(crate) fn set_link_max_message_latency(&mut self, a: IpAddr, b: IpAddr, value: Duration) {
        self.with_link(&Pair::new(a, b), |link, config| {
            link.latency(config.latency()).max_message_latency = value;
        });
    }

    pub(crate) fn set_message_latency_curve(&mut self, value: f64) {
        self.config.latency_mut().latency_distribution = Exp::new(value).unwrap();
    }

    pub(crate) fn set_fail_rate(&mut self, value: f64) {
        self.config.message_loss_mut().fail_rate = value;
    }

    pub(crate) fn set_link_fail_rate(&mut self, a: IpAddr, b: IpAddr, value: f64) {
        self.with_link(&Pair::new(a, b), |link, config| {
            link.message_loss(config.message_loss()).fail_rate = value;
        });
    }

    // Send a `message` from `src` to `dst`. This method returns immediately,
    // and message delivery happens at a later time (or never, if the link is
    // broken).
    pub(crate) fn enqueue_message(
        &mut self,
        rand: &mut dyn RngCore,
        src: SocketAddr,
        dst: SocketAddr,
        message: Protocol,
    ) -> Result<()> {
        if let Some(index) = self.links.get_index_of(&Pair::new(src.ip(), dst.ip())) {
            let (_, link) = self.links.get_index_mut(index).expect("an index of a link");
            link.now = self.now;
            let result = link.enqueue_message(&self.config, rand, src, dst, message);
            self.sync(index);
            result
        } else {
            Err(Error::new(
                ErrorKind::ConnectionRefused,
                "Connection refused",
            ))
        }
    }

    // Move messages from any network links to the `dst` host.
    pub(crate) fn deliver_messages(&mut self, rand: &mut dyn RngCore, dst: &mut Host) {
        let Some(host) = self.host_links.get_index_of(&dst.addr) else {
            return;
        };
        if self.host_ready[host] == 0 {
            return;
        }
        for position in 0..self.host_links[host].len() {
            let index = self.host_links[host][position];
            if !self.ready[index] {
                continue;
            }
            let (_, link) = self
                .links
                .get_index_mut(index)
                .expect("host_links holds indices of links");
            link.now = self.now;
            link.deliver_messages(&self.config, rand, dst);
            self.sync(index);
        }
    }

    pub(crate) fn hold(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.hold());
    }

    pub(crate) fn release(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.release());
    }

    pub(crate) fn partition(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.explicit_partition());
    }

    pub(crate) fn partition_oneway(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.partition_oneway(a, b));
    }

    pub(crate) fn repair(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.explicit_repair());
    }

    pub(crate) fn repair_oneway(&mut self, a: IpAddr, b: IpAddr) {
        self.with_link(&Pair::new(a, b), |link, _| link.repair_oneway(a, b));
    }

    pub(crate) fn tick_by(&mut self, duration: Duration) {
        let _ = self.rt.tick(duration);
        // tern: the network's clock is read once, not once a link (it
        // cannot move between the reads), and only links with messages in
        // flight are ticked: ticking one with none only sets its clock,
        // which `link_at` does when it is next used.
        self.now = self.rt.now();
        let spare = std::mem::take(&mut self.spare);
        let mut flying = std::mem::replace(&mut self.flying, spare);
        for &index in &flying {
            self.in_flight[index] = false;
            let now = self.now;
            self.link_at(index).tick(now);
            self.sync(index);
        }
        flying.clear();
        self.spare = flying;
    }

    pub(crate) fn iter_mut(&mut self) -> LinksIter<'_> {
        // The caller may schedule any link's messages: each is brought up
        // to date and counted as in flight until its next tick.
        for index in 0..self.links.len() {
            self.link_at(index);
            if !self.in_flight[index] {
                self.in_flight[index] = true;
                self.flying.push(index);
            }
        }
        LinksIter {
            iter: self.links.iter_mut(),
        }
    }
}

/// Represents a message sent between two hosts on the network.
struct Sent {
    src: SocketAddr,
    dst: SocketAddr,
    status: DeliveryStatus,
    protocol: Protocol,
}

impl Sent {
    fn deliver(&mut self, now: Instant) {
        self.status = DeliveryStatus::DeliverAfter(now);
    }
}

enum DeliveryStatus {
    DeliverAfter(Instant),
    Hold,
}

impl Link {
    fn new(now: Instant) -> Link {
        Link {
            state_a_b: State::Healthy,
            state_b_a: State::Healthy,
            config: config::Link::default(),
            sent: VecDeque::new(),
            deliverable: FastMap::default(),
            pending: 0,
            spare: VecDeque::new(),
            now,
        }
    }

    fn enqueue_message(
        &mut self,
        global_config: &config::Link,
        rand: &mut dyn RngCore,
        src: SocketAddr,
        dst: SocketAddr,
        message: Protocol,
    ) -> Result<()> {
        tracing::trace!(target: TRACING_TARGET, ?src, ?dst, protocol = %message, "Send");

        self.rand_partition_or_repair(global_config, rand);
        let result = self.enqueue(global_config, rand, src, dst, message);
        self.process_deliverables();
        result
    }

    fn get_state_for_message(&self, src: IpAddr, dst: IpAddr) -> State {
        // Between each pair of ip-addresses there can exist a link.
        // A link between two such pairs can be constructed as
        // Pair::new(x,y) or Pair::new(y,x). These two expressions create
        // the exact same link. We denote one of the ends of the link as 'a',
        // and the other 'b'. 'a' is always the one that compares smaller, i.e,
        // `a < b` holds.
        if src < dst {
            self.state_a_b
        } else {
            self.state_b_a
        }
    }

    // src -> link -> dst
    //        ^-- you are here!
    //
    // Messages may be dropped, sit on the link for a while (due to latency, or
    // because the link has stalled), or be delivered immediately.
    // Link will return an Err(()) if the socket buffer is full.
    fn enqueue(
        &mut self,
        global_config: &config::Link,
        rand: &mut dyn RngCore,
        src: SocketAddr,
        dst: SocketAddr,
        message: Protocol,
    ) -> Result<()> {
        let state = self.get_state_for_message(src.ip(), dst.ip());
        let status = match state {
            State::Healthy => {
                let delay = self.delay(global_config.latency(), rand);
                DeliveryStatus::DeliverAfter(self.now + delay)
            }
            // Only A->B is blocked, so B can send, so we can send if src is B
            State::Hold => {
                tracing::trace!(target: TRACING_TARGET,?src, ?dst, protocol = %message, "Hold");
                DeliveryStatus::Hold
            }
            _ => {
                tracing::trace!(target: TRACING_TARGET,?src, ?dst, protocol = %message, "Drop");
                return Ok(());
            }
        };

        let sent = Sent {
            src,
            dst,
            status,
            protocol: message,
        };

        self.sent.push_back(sent);
        Ok(())
    }

    fn tick(&mut self, now: Instant) {
        self.now = now;
        self.process_deliverables();
    }

    fn process_deliverables(&mut self) {
        // TODO: `drain_filter` is not yet stable, and so we have a low quality
        // implementation here that avoids clones.
        let mut deliverable = 0;
        for i in 0..self.sent.len() {
            let index = i - deliverable;
            let sent = &self.sent[index];
            if let DeliveryStatus::DeliverAfter(time) = sent.status {
                if time <= self.now {
                    let sent = self.sent.remove(index).unwrap();
                    let envelope = Envelope {
                        src: sent.src,
                        dst: sent.dst,
                        message: sent.protocol,
                    };
                    self.deliverable
                        .entry(sent.dst.ip())
                        .or_default()
                        .push_back(envelope);
                    self.pending += 1;
                    deliverable += 1;
                }
            }
        }
    }

    // FIXME: This implementation does not respect message delivery order. If
    // host A and host B are ordered (by addr), and B sends before A, then this
    // method will deliver A's message before B's.
    fn deliver_messages(
        &mut self,
        global_config: &config::Link,
        rand: &mut dyn RngCore,
        host: &mut Host,
    ) {
        if self.pending == 0 {
            return;
        }
        let Some(queue) = self.deliverable.get_mut(&host.addr) else {
            return;
        };
        // tern: the queue's messages are swapped into a buffer kept for
        // this, which the queue gets back empty, instead of collected into
        // a new vector each time.
        let mut deliverable = std::mem::take(&mut self.spare);
        std::mem::swap(queue, &mut deliverable);
        self.pending -= deliverable.len();

        for message in deliverable.drain(..) {
            let (src, dst) = (message.src, message.dst);
            if let Err(message) = host.receive_from_network(message) {
                let _ = self.enqueue_message(global_config, rand, dst, src, message);
            }
        }
        self.spare = deliverable;
    }

    // Randomly break or repair this link.
    fn rand_partition_or_repair(&mut self, global_config: &config::Link, rand: &mut dyn RngCore) {
        let do_rand = self.rand_partition(global_config.message_loss(), rand);
        match (self.state_a_b, self.state_b_a) {
            (State::Healthy, _) | (_, State::Healthy) if do_rand => {
                self.state_a_b = State::RandPartition;
                self.state_b_a = State::RandPartition;

                self.sent.clear();
            }
            (State::RandPartition, _) | (_, State::RandPartition)
                if self.rand_repair(global_config.message_loss(), rand) =>
            {
                self.release();
            }
            _ => {}
        }
    }

    fn hold(&mut self) {
        self.state_a_b = State::Hold;
        self.state_b_a = State::Hold;

        for sent in &mut self.sent {
            sent.status = DeliveryStatus::Hold;
        }
    }

    // This link becomes healthy, and any held messages are scheduled for delivery.
    fn release(&mut self) {
        self.state_a_b = State::Healthy;
        self.state_b_a = State::Healthy;
        for sent in &mut self.sent {
            if let DeliveryStatus::Hold = sent.status {
                sent.deliver(self.now);
            }
        }
    }

    fn explicit_partition(&mut self) {
        self.state_a_b = State::ExplicitPartition;
        self.state_b_a = State::ExplicitPartition;

        self.sent.clear();
    }

    fn partition_oneway(&mut self, from: IpAddr, to: IpAddr) {
        if from < to {
            self.state_a_b = State::ExplicitPartition;
        } else {
            self.state_b_a = State::ExplicitPartition;
        }

        self.sent.retain(|sent| sent.src.ip() != from);
    }

    fn repair_oneway(&mut self, from: IpAddr, to: IpAddr) {
        if from < to {
            self.state_a_b = State::Healthy;
        } else {
            self.state_b_a = State::Healthy;
        }
    }

    // Repair the link, without releasing any held messages.
    fn explicit_repair(&mut self) {
        self.state_a_b = State::Healthy;
        self.state_b_a = State::Healthy;
    }

    /// Should the link be randomly partitioned
    fn rand_partition(&self, global: &config::MessageLoss, rand: &mut dyn RngCore) -> bool {
        let config = self.config.message_loss.as_ref().unwrap_or(global);
        let fail_rate = config.fail_rate;
        fail_rate > 0.0 && rand.random_bool(fail_rate)
    }

    fn rand_repair(&self, global: &config::MessageLoss, rand: &mut dyn RngCore) -> bool {
        let config = self.config.message_loss.as_ref().unwrap_or(global);
        let repair_rate = config.repair_rate;
        repair_rate > 0.0 && rand.random_bool(repair_rate)
    }

    fn delay(&self, global: &config::Latency, rand: &mut dyn RngCore) -> Duration {
        let config = self.config.latency.as_ref().unwrap_or(global);

        let mult = config.latency_distribution.sample(rand);
        let range = (config.max_message_latency - config.min_message_latency).as_millis() as f64;
        let delay = config.min_message_latency + Duration::from_millis((range * mult) as _);

        std::cmp::min(delay, config.max_message_latency)
    }

    fn latency(&mut self, global: &config::Latency) -> &mut config::Latency {
        self.config.latency.get_or_insert_with(|| global.clone())
    }

    fn message_loss(&mut self, global: &config::MessageLoss) -> &mut config::MessageLoss {
        self.config
            .message_loss
            .get_or_insert_with(|| global.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Link;

    use super::*;

    #[test]
    #[should_panic(expected = "unable to find link between Pair(10.0.0.1, 192.168.0.1)")]
    fn link_access_gives_useful_panic_message() {
        let mut topo = Topology::new(Link::default());
        topo.hold("10.0.0.1".parse().unwrap(), "192.168.0.1".parse().unwrap());
    }
}
