//! The tokio layer: accepts connections, runs one task per connection around
//! the shared routing state, and shuts down waiting for every task it started.

mod alarms;
mod by_conn;
mod census;
mod connection;
mod deadlines;
mod duplex;
mod endpoint;
mod essential;
mod lock_holds;
mod log_limit;
mod memory;
mod outbox;
mod persist;
mod queues;
mod registry;
mod sys;
mod timers;
mod traffic;
mod write_through;
mod writes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, ConnId, Effect, IdMap, Millis, Owing};
use crate::config::{planted, Config};
use crate::net::Listener;
use by_conn::ByConn;
pub use census::Census;
pub use endpoint::Endpoint;
pub use lock_holds::HoldHistogram;
use lock_holds::LockHolds;
use log_limit::LogLimit;
pub use memory::MemoryGauge;
use memory::MemoryLimit;
use outbox::{Bounds, Outbound, Outbox};
pub use persist::StoreCounts;
pub use registry::TaskRegistry;
pub use traffic::TrafficCounts;
use traffic::{Counted, Traffic};

/// The kinds of task the server spawns.
/// "http": the HTTP listener's acceptor and its connections (`crate::http`).
/// "store": the task that commits changes to the data store.
pub const TASK_KINDS: [&str; 6] = ["acceptor", "connection", "http", "store", "sys", "timers"];

/// A handle on a broker: cheap to clone, readable while it runs.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    /// One lock over all routing state, never held across an `.await`: every
    /// broker call is short and synchronous. Lock order: this, then an
    /// outbox's own lock (`apply_effects` pushes while holding it); never an
    /// outbox first. Packets are decoded before it is taken.
    state: Mutex<State>,
    registry: TaskRegistry,
    cancel: CancellationToken,
    started: tokio::time::Instant,
    /// Connections whose task ended without detaching (a panic, or dropped
    /// with its runtime): a drop guard may not run the broker's work (a
    /// will's fan-out), so it leaves them here for the timers task.
    lost: Mutex<Vec<ConnId>>,
    /// Wakes the timers task before its planned wake: a connection was
    /// lost, or a hold set a timer due before `timer_due`.
    timers_wake: tokio::sync::Notify,
    /// When the timers task next wakes by itself (the broker's ms; `u64::MAX`
    /// for never), written under the lock: with nothing due it sleeps,
    /// rather than waking every so often to look.
    timer_due: AtomicU64,
    /// Every serving connection's next deadline, rung by the timers task.
    alarms: alarms::Alarms,
    log_limit: LogLimit,
    /// Who may connect, checked before the broker is asked.
    auth: crate::auth::Auth,
    /// Set once, before the server runs, by a binary that counts its heap.
    memory: std::sync::OnceLock<MemoryLimit>,
    /// Set once, before the server runs, when it keeps a data store.
    persist: std::sync::OnceLock<persist::Persist>,
    /// Why the server stopped by itself: one of its own tasks failed
    /// (`essential.rs`).
    failed: std::sync::OnceLock<String>,
    /// The listeners being served, for `reload`.
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    /// Messages and bytes in and out, counted outside the lock.
    traffic: Arc<Traffic>,
    /// Connections closed as soon as accepted for their listener's
    /// `connections_max`, counted before any lock is taken.
    connections_refused_listener: AtomicU64,
    /// Tries at the lock, for `Config::lock_taken_one_in`.
    #[cfg(feature = "sim")]
    lock_tries: std::sync::atomic::AtomicU32,
}

struct State {
    broker: Broker,
    /// Every accepted connection's outbound queue, CONNECT or not.
    links: IdMap<ConnId, Arc<Outbox>>,
    next_conn: u64,
    holds: LockHolds,
    /// Connections taken on since the start, and those closed at once
    /// for `connections_max`.
    connections_accepted: u64,
    connections_refused: u64,
}

/// The most effects `EFFECTS` keeps room for between uses.
const EFFECTS_KEPT: usize = 4096;

/// Tries at the routing lock before work that may wait is put off.
const TRY_LOCK_SPINS: usize = 100;

thread_local! {
    /// Each worker thread's room for a hold's effects. One room passed from
    /// hold to hold had last been written on whichever core held the lock
    /// before, and in a fan-out at QoS 1 each effect written stalled on
    /// taking its cache line back from the other core (perf: most of the
    /// time `send_inflight` took itself, a sixth of the broker's CPU).
    static EFFECTS: std::cell::Cell<Vec<Effect>> = const { std::cell::Cell::new(Vec::new()) };
    /// Each worker thread's room for grouping a hold's effects.
    static BY_CONN: std::cell::Cell<ByConn> = const { std::cell::Cell::new(ByConn::EMPTY) };
}

impl Shared {
    /// The routing state as it stands, for readers (the census, `check`)
    /// that the simulation calls between its steps, outside any runtime:
    /// there tokio's clock is the wall clock, and moving the broker's clock
    /// from it made runs depend on how fast the machine was.
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug that has already been
        // reported; the connections that remain should still be served.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The one way in for work on the routing state: locks it, sets its
    /// clock to now, runs `work`, queues the effects to their outboxes and
    /// unlocks, then logs what the broker had to say. For the server's own
    /// tasks, inside the runtime whose clock the simulation drives. `work`
    /// holds everyone up: decode and encode outside it.
    fn with_broker<R>(&self, work: impl FnOnce(&mut State) -> R) -> R {
        self.hold(self.state(), work)
    }

    /// `with_broker`, if the lock is free now.
    fn try_with_broker<R>(&self, work: impl FnOnce(&mut State) -> R) -> Option<R> {
        #[cfg(feature = "sim")]
        if let Some(one_in) = std::num::NonZeroU32::new(self.config.lock_taken_one_in) {
            let tries = self.lock_tries.fetch_add(1, Ordering::Relaxed);
            if tries % one_in == 0 {
                return None;
            }
        }
        // A short hold is waited out, as `Mutex::lock` spins before it
        // sleeps: it is what a latency's PUBACK mostly meets.
        for _ in 0..TRY_LOCK_SPINS {
            match self.state.try_lock() {
                Ok(state) => return Some(self.hold(state, work)),
                Err(TryLockError::Poisoned(poisoned)) => {
                    return Some(self.hold(poisoned.into_inner(), work))
                }
                Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        None
    }

    /// `with_broker`'s work, the lock taken.
    fn hold<R>(&self, mut state: MutexGuard<'_, State>, work: impl FnOnce(&mut State) -> R) -> R {
        debug_assert!(
            tokio::runtime::Handle::try_current().is_ok(),
            "outside a runtime tokio's clock is the wall clock"
        );
        // One clock read for the broker's now and the hold's start.
        let locked = tokio::time::Instant::now();
        let now = self.millis_at(locked);
        // The broker fills this thread's own room (`EFFECTS`); what it had
        // (empty) waits here.
        let mut effects = EFFECTS.take();
        state.broker.swap_effects(&mut effects);
        #[cfg(feature = "hold-cpu")]
        let cpu = lock_holds::thread_cpu();
        state.broker.set_now(now);
        let store_failed = self.commit_failed();
        if let Some(memory) = self.memory.get() {
            let was_full = state.broker.memory_full();
            state.broker.set_memory_full(memory.is_full(was_full));
        }
        if store_failed {
            state.broker.set_store_failed();
        }
        let result = work(&mut state);
        let persist = self.persist.get();
        let mut gate = persist.map_or(0, |p| p.gate(state.broker.take_changes()));
        // After the changes: the commit that serves them comes before.
        if let Some(p) = persist {
            p.ask_reads(state.broker.take_tail_reads());
        }
        // A message routed in slices is answered in the last: after the
        // commit of every earlier slice's changes too, which the holds
        // since may have numbered (a later commit is a safe wait).
        if let (Some(p), true) = (persist, state.broker.take_split_acks()) {
            gate = gate.max(p.last_gate());
        }
        if planted!(self.config, AckBeforeCommit) {
            gate = 0;
        }
        let gated = persist.filter(|_| gate > 0);
        let bounds = Bounds::of(&self.config);
        state.apply_effects(&mut effects, bounds, gate, gated);
        // A burst's worth of room is not kept for ever.
        if effects.capacity() <= EFFECTS_KEPT {
            EFFECTS.set(effects);
        }
        let notices = state.broker.take_notices();
        self.wake_timers_for(state.broker.next_timer());
        let held = locked.elapsed();
        state.holds.record(held);
        #[cfg(feature = "hold-cpu")]
        state.holds.record_cpu(held, lock_holds::thread_cpu() - cpu);
        drop(state);
        for notice in &notices {
            if self.log_limit.admit(notice.kind()) {
                notice.log();
            }
        }
        result
    }
}

impl Shared {
    /// Milliseconds since the server was made: the broker's clock, and
    /// the connections' alarms'.
    fn millis(&self) -> Millis {
        self.millis_at(tokio::time::Instant::now())
    }

    fn millis_at(&self, at: tokio::time::Instant) -> Millis {
        let since = at.saturating_duration_since(self.started);
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Sets `conn`'s alarm for `due`, waking the timers task if it
    /// planned to look later.
    fn set_alarm(&self, conn: ConnId, outbox: &Arc<Outbox>, due: Millis) {
        if self.alarms.set(conn, outbox, due) {
            self.timers_wake.notify_one();
        }
    }

    /// Wakes the timers task if `next` comes before its planned wake; under
    /// the lock, so that its plan cannot change meanwhile.
    fn wake_timers_for(&self, next: Option<Millis>) {
        let Some(next) = next else { return };
        if next < self.timer_due.load(Ordering::Relaxed) {
            self.timer_due.store(next, Ordering::Relaxed);
            self.timers_wake.notify_one();
        }
    }

    /// How far the store's commits have come: packets waiting for a later
    /// one stay in their outboxes. Without a store, nothing waits.
    fn committed(&self) -> u64 {
        self.persist
            .get()
            .map_or(u64::MAX, |persist| persist.commits.committed())
    }

    /// Whether the store failed a commit: nothing waiting for one will be
    /// released.
    fn commit_failed(&self) -> bool {
        self.persist
            .get()
            .is_some_and(|persist| persist.commits.failed())
    }

    /// Ends a connection in the broker: its will, its clean session, what
    /// its end frees for others; in the open, never from a drop guard.
    fn detach(&self, conn: ConnId, graceful: bool) {
        self.with_broker(|state| {
            state.links.remove(&conn);
            state.broker.connection_lost(conn, graceful);
        });
    }

    /// Detaches the connections that drop guards left behind.
    fn detach_lost(&self) {
        let lost = std::mem::take(&mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner));
        for conn in lost {
            self.detach(conn, false);
        }
    }
}

impl State {
    /// Carries out what the broker asked for. A packet for a connection that
    /// has already gone is dropped with it.
    /// With a store, the packets of a hold that changed durable state wait
    /// in their outboxes for commit `gate`.
    /// `effects` is what the broker had at the hold's start, and is given
    /// back the room the hold filled, empty.
    fn apply_effects(
        &mut self,
        effects: &mut Vec<Effect>,
        bounds: Bounds,
        gate: u64,
        gated: Option<&persist::Persist>,
    ) {
        self.broker.swap_effects(effects);
        if effects.is_empty() {
            return;
        }
        // Grouped by connection, each one's packets in their order, for one
        // lock and one wake per outbox: a batch of messages fanned out is
        // otherwise a lock and a wake per subscriber per message. Order
        // across connections means nothing; each outbox is its own queue.
        let mut by_conn = BY_CONN.take();
        by_conn.group(effects.iter().map(Effect::conn));
        for group in by_conn.groups() {
            let mut group = group.peekable();
            let Some(&first) = group.peek() else {
                continue;
            };
            let conn = effects[first].conn();
            let outbox = self.links.get(&conn);
            let mut taken_over = false;
            // Each taken out once, its place left to a placeholder that
            // `clear` drops.
            let packets = group.filter_map(|i| {
                match std::mem::replace(&mut effects[i], Effect::TakenOver(conn)) {
                    Effect::Send(_, packet) => Some(Outbound::Packet(packet)),
                    Effect::SendFrame(_, frame) => Some(Outbound::Frame(frame)),
                    Effect::SendFrameAs(_, frame, id) => Some(Outbound::FrameAs(frame, id)),
                    Effect::TakenOver(_) => {
                        taken_over = true;
                        None
                    }
                }
            });
            match outbox {
                Some(outbox) => {
                    let through = write_through::may_write_through();
                    let (dropped, held) = outbox.push_routed(packets, bounds, gate, through);
                    if held {
                        write_through::routed(outbox);
                    }
                    self.broker.count_outbound_drops(conn, dropped);
                    if let Some(persist) = gated {
                        persist.hold(outbox);
                    }
                }
                None => packets.for_each(drop),
            }
            // A taken-over connection ends without writing what it holds:
            // whether the flag comes before or after its packets is the same.
            if let (Some(outbox), true) = (outbox, taken_over) {
                outbox.take_over();
            }
        }
        effects.clear();
        by_conn.clear();
        if by_conn.room() <= EFFECTS_KEPT {
            BY_CONN.set(by_conn);
        }
    }
}

impl State {
    /// Sends the connection the next slice of the retained messages its
    /// session owes, as many as its outbound queue has room for now (with
    /// what this hold has already queued for anyone), so that none is
    /// shed; and notes in its outbox whether more are owed.
    fn send_retained(&mut self, conn: ConnId, outbound_max: usize) {
        let Some(outbox) = self.links.get(&conn) else {
            return;
        };
        // The common case, and no count of the queue for it.
        if !self.broker.owes_retained() {
            outbox.set_retained_owed(Owing::Nothing);
            return;
        }
        let taken = outbox.waiting() + self.broker.effects_queued();
        let owing = self
            .broker
            .send_retained(conn, outbound_max.saturating_sub(taken));
        outbox.set_retained_owed(owing);
    }
}

/// What a shutdown left behind.
#[derive(Debug)]
pub struct ShutdownReport {
    /// Tasks still alive when the grace period ran out, by name.
    pub lingering: Vec<String>,
    pub census: Census,
    /// Why the server stopped by itself, if it did: one of its own tasks
    /// panicked or ended (`server/essential.rs`).
    pub failed: Option<String>,
}

impl Server {
    /// A server of `config`, its password and ACL files read.
    pub fn try_new(config: Config) -> Result<Server, String> {
        let passwords = match &config.password_file {
            Some(path) => Some(crate::auth::PasswordFile::load(path)?),
            None => None,
        };
        let acl = match &config.acl_file {
            Some(path) => Some(crate::auth::AclFile::load(path)?),
            None => None,
        };
        Ok(Server::with_rules(config, passwords, acl))
    }

    /// A server of `config`.
    ///
    /// # Panics
    ///
    /// If `config` names a password or ACL file that cannot be read: use
    /// `try_new` for a configuration from outside.
    pub fn new(config: Config) -> Server {
        Server::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server of `config` with these users and ACL rather than the
    /// files `config` names: for the simulation, which must not read the
    /// host's disk while it runs.
    pub fn with_rules(
        config: Config,
        passwords: Option<crate::auth::PasswordFile>,
        acl: Option<crate::auth::AclFile>,
    ) -> Server {
        Server::with_auth(config, crate::auth::Auth::new(passwords), acl)
    }

    fn with_auth(
        config: Config,
        auth: crate::auth::Auth,
        acl: Option<crate::auth::AclFile>,
    ) -> Server {
        Server {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    broker: Broker::with_acl(config.clone(), acl),
                    links: IdMap::default(),
                    next_conn: 0,
                    holds: LockHolds::new(),
                    connections_accepted: 0,
                    connections_refused: 0,
                }),
                config,
                registry: TaskRegistry::default(),
                cancel: CancellationToken::new(),
                lost: Mutex::new(Vec::new()),
                timers_wake: tokio::sync::Notify::new(),
                timer_due: AtomicU64::new(u64::MAX),
                alarms: alarms::Alarms::default(),
                log_limit: LogLimit::default(),
                started: tokio::time::Instant::now(),
                auth,
                memory: std::sync::OnceLock::new(),
                persist: std::sync::OnceLock::new(),
                failed: std::sync::OnceLock::new(),
                endpoints: Mutex::new(Vec::new()),
                traffic: Arc::default(),
                connections_refused_listener: AtomicU64::new(0),
                #[cfg(feature = "sim")]
                lock_tries: std::sync::atomic::AtomicU32::new(0),
            }),
        }
    }

    /// Applies `memory_max_bytes` to the heap `gauge` reads; without this
    /// there is no global memory limit. Returns the limit, or `None` when
    /// none is configured and the machine's memory cannot be read.
    pub fn limit_memory(&self, gauge: MemoryGauge) -> Option<usize> {
        let max = match self.shared.config.memory_max_bytes {
            0 => memory::default_max()?,
            max => max,
        };
        let _ = self.shared.memory.set(MemoryLimit { gauge, max });
        Some(max)
    }

    pub fn census(&self) -> Census {
        census::take(&self.shared, false)
    }

    /// The census with its peaks: what the most loaded session and
    /// connection hold. It walks them all under the lock, so it is for
    /// tests and the simulation, not for a busy broker.
    pub fn census_with_peaks(&self) -> Census {
        census::take(&self.shared, true)
    }

    /// Messages dropped for a full queue, by the client id they were for
    /// (`Broker::dropped_by_client`).
    #[cfg(feature = "sim")]
    pub fn dropped_by_client(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared.state().broker.dropped_by_client()
    }

    /// How long the routing state's lock has been held, in `bounds_nanos`
    /// buckets: read under the lock, so for a scrape now and then.
    pub fn lock_hold_histogram(&self, bounds_nanos: &[u64]) -> HoldHistogram {
        self.shared.state().holds.histogram(bounds_nanos)
    }

    /// Keeps the broker's durable state in `store`, starting from what it
    /// read back (`restored`): call once, before the server runs. With
    /// `periodic`, commits come at most that often and no reply waits for
    /// one (`durability = "periodic"`); otherwise each acknowledgement
    /// waits for the commit of what it acknowledges.
    pub fn use_store(
        &self,
        committer: crate::store::Committer,
        restored: crate::broker::Restored,
        periodic: Option<Duration>,
    ) -> Result<(), String> {
        let mut state = self.shared.state();
        // Noting first: restoring notes the deadlines it gives sessions.
        state.broker.keep_changes();
        state.broker.restore(restored)?;
        let errors_ignored = planted!(self.shared.config, CommitErrorIgnored);
        let persist = persist::Persist::new(committer, periodic, errors_ignored);
        if self.shared.persist.set(persist).is_err() {
            return Err("the server already has a store".into());
        }
        Ok(())
    }

    /// Since the server was made.
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Serves `/metrics` and the status page (`crate::http`) on `listener`
    /// until the server stops; its tasks are the server's, of kind "http".
    pub fn serve_http<L: Listener>(&self, listener: L) {
        let name = listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        tracing::info!(address = name, "HTTP listening");
        let serving = crate::http::serve(listener, self.clone());
        self.shared
            .spawn_essential("http", format!("acceptor {name}"), serving);
    }

    /// The registry the server's tasks are spawned in, for those that
    /// live outside this module (`crate::http`).
    pub(crate) fn registry(&self) -> &TaskRegistry {
        &self.shared.registry
    }

    /// Cancelled when the server stops.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.shared.cancel
    }

    /// Checks the routing state's own consistency and every queue against
    /// its limit; the simulation calls it as it runs.
    pub fn check(&self) -> Result<(), String> {
        let state = self.shared.state();
        state.broker.check()?;
        if let Some(conn) = state
            .broker
            .attached()
            .find(|c| !state.links.contains_key(c))
        {
            return Err(format!(
                "{conn:?} is attached to a session but has no connection"
            ));
        }
        // QoS 0 stops at the limit; replies stop at it too (reads pause);
        // QoS 1/2 are bounded by the window; one reply can come on top.
        let config = &self.shared.config;
        let max = 2 * config.outbound_packets_max + config.inflight_messages_max + 1;
        for (conn, outbox) in &state.links {
            let waiting = outbox.waiting();
            if waiting > max {
                let kinds = outbox.kinds();
                return Err(format!(
                    "{conn:?} has {waiting} packets waiting ({} kept), over {max}: {kinds:?}",
                    outbox.kept()
                ));
            }
        }
        Ok(())
    }

    /// Reads the password file, the ACL file and the listeners' files
    /// (certificates) again, as mosquitto does on SIGHUP: a connected
    /// client's next CONNECT, message or subscription is judged by what
    /// was read. A file that cannot be read or parsed leaves what it
    /// replaces in force; the errors are returned, one line each.
    pub fn reload(&self) -> Vec<String> {
        let shared = &self.shared;
        let mut errors = Vec::new();
        if let Some(path) = &shared.config.password_file {
            match crate::auth::PasswordFile::load(path) {
                Ok(passwords) => shared.auth.replace_passwords(passwords),
                Err(error) => errors.push(error),
            }
        }
        if let Some(path) = &shared.config.acl_file {
            match crate::auth::AclFile::load(path) {
                Ok(acl) => self
                    .shared
                    .with_broker(|state| state.broker.replace_acl(acl)),
                Err(error) => errors.push(error),
            }
        }
        let endpoints = shared
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for endpoint in endpoints {
            if let Err(error) = endpoint.reload() {
                errors.push(error);
            }
        }
        errors
    }

    /// Asks a running server to stop, as its shutdown future would.
    pub fn stop(&self) {
        self.shared.cancel.cancel();
    }

    /// Serves `listeners`, plain MQTT with the configured settings, until
    /// `shutdown` resolves (or `stop` is called), then ends every task,
    /// waiting at most the configured grace period.
    pub async fn run<L: Listener>(
        &self,
        listeners: Vec<L>,
        shutdown: impl Future<Output = ()>,
    ) -> ShutdownReport {
        let config = &self.shared.config;
        let endpoints = listeners
            .into_iter()
            .map(|listener| (listener, Endpoint::plain(config)))
            .collect();
        self.serve(endpoints, shutdown).await
    }

    /// `run` for listeners each with its own transport and settings.
    pub async fn serve<L: Listener>(
        &self,
        listeners: Vec<(L, Endpoint)>,
        shutdown: impl Future<Output = ()>,
    ) -> ShutdownReport {
        let shared = &self.shared;
        for (listener, endpoint) in listeners {
            let name = listener
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string());
            tracing::info!(address = name, transport = %endpoint.transport, "listening");
            let endpoint = Arc::new(endpoint);
            shared
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(endpoint.clone());
            let accepting = accept_loop(listener, endpoint, shared.clone());
            shared.spawn_essential("acceptor", name, accepting);
        }
        shared.spawn_essential("timers", String::new(), timers::run(shared.clone()));
        if shared.persist.get().is_some() {
            shared.spawn_essential("store", String::new(), persist::run(shared.clone()));
        }
        if shared.config.sys_interval_secs > 0 {
            let interval = Duration::from_secs(shared.config.sys_interval_secs);
            shared.spawn_essential("sys", String::new(), sys::run(self.clone(), interval));
        }
        tokio::select! {
            () = shutdown => {}
            () = shared.cancel.cancelled() => {}
        }
        shared.cancel.cancel();
        // Connections that serve wait on their outboxes, not on the token.
        shared.with_broker(|state| state.links.values().for_each(|outbox| outbox.shut_down()));
        let lingering = shared.registry.wait(shared.config.shutdown_grace()).await;
        for name in &lingering {
            tracing::error!(task = name, "task did not end on shutdown");
        }
        // What the connections' ends changed (sessions gone offline).
        if let Some(persist) = shared.persist.get() {
            persist.commit().await;
        }
        let census = self.census();
        tracing::info!(?census, "stopped");
        shared.state().holds.log();
        ShutdownReport {
            lingering,
            census,
            failed: shared.failed.get().cloned(),
        }
    }
}

/// Serves one listener with the default configuration until `shutdown`.
pub async fn run<L: Listener>(
    listener: L,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> ShutdownReport {
    Server::new(config).run(vec![listener], shutdown).await
}

async fn accept_loop<L: Listener>(mut listener: L, endpoint: Arc<Endpoint>, shared: Arc<Shared>) {
    listener.prepare();
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => start_connection(&shared, &endpoint, stream, peer),
            Err(error) => {
                // Out of file descriptors, usually: retrying at once would
                // spin. This pause is on the error path only.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn start_connection<S>(shared: &Arc<Shared>, endpoint: &Arc<Endpoint>, stream: S, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + crate::net::Arrivals + Unpin + Send + 'static,
{
    let Some(slot) = endpoint.admit() else {
        shared
            .connections_refused_listener
            .fetch_add(1, Ordering::Relaxed);
        if shared.log_limit.admit("listener connection limit") {
            tracing::warn!(%peer, "listener's connection limit reached; closed");
        }
        return;
    };
    let outbox = Arc::new(Outbox::default());
    let max = shared.config.connections_max;
    let conn = shared.with_broker(|state| {
        if state.links.len() >= max {
            state.connections_refused += 1;
            return None;
        }
        state.connections_accepted += 1;
        state.next_conn += 1;
        let conn = ConnId(state.next_conn);
        state.links.insert(conn, outbox.clone());
        Some(conn)
    });
    let Some(conn) = conn else {
        if shared.log_limit.admit("connection limit") {
            tracing::warn!(%peer, max, "connection limit reached; closed");
        }
        return;
    };
    let stream = Counted::new(stream, shared.traffic.clone());
    let task = connection::run(stream, peer, conn, outbox, slot, shared.clone());
    shared.registry.spawn_connection(conn.0, task);
}
