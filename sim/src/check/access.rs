//! Users and the ACL, judged from the scenario's rules (`secured.rs`) as
//! mosquitto documents them, by code of the checks' own, never the
//! broker's: nobody receives what its rules deny it to read, retained
//! messages and wills included; nothing arrives that its publisher (or
//! the will's client) may not write; no wrong login is accepted, no good
//! one refused but for another user's session; and no session is taken
//! over or resumed by another user.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{ConnKey, Model};
use super::will_of;
use crate::history::{Ending, MessageId};
use crate::secured::{Grant, Owner, Rule, Security};
use crate::workload::Login;

/// What a client wants of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// The rules of a secured run, with what they said before.
#[derive(Debug, Default)]
pub struct Guard {
    security: Option<Security>,
    allow_anonymous: bool,
    /// Whether a session may read a topic, by session and topic: the loss
    /// checks ask it for every publish and subscription.
    reads: RefCell<BTreeMap<(usize, String), bool>>,
}

impl Guard {
    /// Whether a client of `user` (none: anonymous) and `client_id` may
    /// do `want` to `topic`: its own rules (its user's, or the anonymous
    /// ones), then the patterns; in each, a matching `deny` refuses, else
    /// a matching grant allows; nothing matching refuses.
    pub fn allows(&self, user: Option<&str>, client_id: &str, topic: &str, want: Want) -> bool {
        let Some(security) = &self.security else {
            return true;
        };
        let own = security.rules.iter().filter(|r| match (r.owner, user) {
            (Owner::Anonymous, None) => true,
            (Owner::User(owner), Some(user)) => owner == user,
            _ => false,
        });
        let own: Vec<(Grant, String)> = own.map(|r| (r.grant, r.filter.to_owned())).collect();
        if let Some(decided) = decide(&own, topic, want) {
            return decided;
        }
        // A wildcard in a name would make a pattern match more than it
        // names: mosquitto lets such a client have none of them.
        let wild = |name: &str| name.contains(['+', '#']);
        if wild(client_id) || user.is_some_and(wild) {
            return false;
        }
        let patterns: Vec<(Grant, String)> = security
            .rules
            .iter()
            .filter(|r| r.owner == Owner::Pattern)
            .filter_map(|r| fill(r, user, client_id))
            .collect();
        decide(&patterns, topic, want).unwrap_or(false)
    }
}

/// One list's verdict, if it has one.
fn decide(rules: &[(Grant, String)], topic: &str, want: Want) -> Option<bool> {
    let matching = || rules.iter().filter(|(_, f)| topic_matches(f, topic));
    if matching().any(|(g, _)| *g == Grant::Deny) {
        return Some(false);
    }
    let grants = |g: &Grant| match want {
        Want::Read => matches!(g, Grant::Read | Grant::ReadWrite),
        Want::Write => matches!(g, Grant::Write | Grant::ReadWrite),
    };
    matching().any(|(g, _)| grants(g)).then_some(true)
}

/// A pattern's filter for this client; none for `%u` without a user.
fn fill(rule: &Rule, user: Option<&str>, client_id: &str) -> Option<(Grant, String)> {
    let mut filter = rule.filter.replace("%c", client_id);
    if filter.contains("%u") {
        filter = filter.replace("%u", user?);
    }
    Some((rule.grant, filter))
}

/// MQTT's matching of a filter and a topic, level by level (the runs
/// have no `$` topics, which wildcards at the start would not match).
fn topic_matches(filter: &str, topic: &str) -> bool {
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

impl Model {
    /// Takes the scenario's rules: what they forbid to write (a publish,
    /// a will) is put aside, so that the delivery checks owe it to nobody.
    pub fn secure(&mut self, security: &Security, allow_anonymous: bool) {
        self.guard = Guard {
            security: Some(security.clone()),
            allow_anonymous,
            reads: RefCell::default(),
        };
        let published = std::mem::take(&mut self.published);
        for (id, sent) in published {
            if self.may(&sent.conn, &sent.topic, Want::Write) {
                self.published.insert(id, sent);
            } else {
                self.denied.insert(id, sent);
            }
        }
        let keys: Vec<ConnKey> = self.conns.keys().cloned().collect();
        for key in keys {
            let Some((topic, _, _)) = self.conns[&key].will.clone() else {
                continue;
            };
            if !self.may(&key, &topic, Want::Write) {
                self.conns.get_mut(&key).expect("a known key").will = None;
            }
        }
    }

    /// The user (none: anonymous) and client id of a connection's CONNECT.
    pub fn identity(&self, key: &ConnKey) -> (Option<&str>, &str) {
        let user = self.logins.get(key).and_then(|(user, _)| user.as_deref());
        let client_id = self.client_ids.get(key).map_or("", |(id, _)| id.as_str());
        (user, client_id)
    }

    /// Whether the connection `key` may do `want` to `topic`.
    pub fn may(&self, key: &ConnKey, topic: &str, want: Want) -> bool {
        let (user, client_id) = self.identity(key);
        self.guard.allows(user, client_id, topic, want)
    }

    /// Whether `session` may receive messages on `topic`: true but where
    /// the scenario's rules say otherwise.
    pub fn may_read(&self, session: usize, topic: &str) -> bool {
        if self.guard.security.is_none() {
            return true;
        }
        let cache_key = (session, topic.to_owned());
        if let Some(&known) = self.guard.reads.borrow().get(&cache_key) {
            return known;
        }
        let key = &self.sessions[session].1[0];
        let may = self.may(key, topic, Want::Read);
        self.guard.reads.borrow_mut().insert(cache_key, may);
        may
    }

    /// Whether a login is good: a known user with its password, or none
    /// where anonymous clients are allowed.
    fn login_valid(&self, key: &ConnKey, security: &Security) -> bool {
        let (user, password) = self.logins.get(key).cloned().unwrap_or_default();
        security
            .valid(&Login { user, password })
            .unwrap_or(self.guard.allow_anonymous)
    }
}

pub(super) fn all(model: &Model) -> Vec<String> {
    let Some(security) = &model.guard.security else {
        return Vec::new();
    };
    let mut problems = reads(model);
    problems.extend(writes(model));
    problems.extend(logins(model, security));
    problems.extend(owners(model));
    problems
}

/// Nothing arrives on a topic its receiver may not read.
fn reads(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        if !model.may(&r.conn, &r.topic, Want::Read) {
            let (user, client_id) = model.identity(&r.conn);
            problems.push(format!(
                "{:?} (user {user:?}, client id {client_id}) received {:?} on {} (retain {}) at {:?}, which its ACL does not let it read",
                r.conn, r.payload, r.topic, r.retain, r.at
            ));
        }
    }
    problems
}

/// Nothing arrives that its publisher may not write: neither a publish
/// nor a will, nor the will of a CONNECT the broker refused.
fn writes(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        if let Some(will) = will_of(&r.payload) {
            if model.refused.contains_key(&will) {
                problems.push(format!(
                    "{:?} received at {:?} the will of {will:?}, whose CONNECT was refused",
                    r.conn, r.at
                ));
            } else if !model.may(&will, &r.topic, Want::Write) {
                let (user, _) = model.identity(&will);
                problems.push(format!(
                    "{:?} received at {:?} the will of {will:?} (user {user:?}) on {}, which its ACL does not let it write",
                    r.conn, r.at, r.topic
                ));
            }
        } else if let Some(sent) = MessageId::parse(r.payload.as_bytes())
            .as_ref()
            .and_then(|id| model.denied.get(id))
        {
            let (user, _) = model.identity(&sent.conn);
            problems.push(format!(
                "{:?} received {} at {:?}, published to {} by {:?} (user {user:?}), which its ACL does not let write it",
                r.conn, r.payload, r.at, sent.topic, sent.conn
            ));
        }
    }
    problems
}

/// No wrong login is accepted; a good one is refused only as "not
/// authorized", and only when another user may hold its client id's
/// session (no client gives enough wrong passwords for its address to be
/// blocked: `secured::BAD_LOGINS_MAX`).
fn logins(model: &Model, security: &Security) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, (client_id, _)) in &model.client_ids {
        let valid = model.login_valid(key, security);
        let (user, _) = model.identity(key);
        if !valid && model.conns.contains_key(key) {
            let password = model.logins.get(key).and_then(|(_, p)| p.clone());
            problems.push(format!(
                "{key:?} was accepted with user {user:?} and password {password:?}, which are wrong"
            ));
        }
        // Another user's CONNECT sent before the refusal came may have
        // made the session first.
        let Some((at, code)) = model.refused.get(key).filter(|_| valid) else {
            continue;
        };
        let contested = model.client_ids.iter().any(|(other, (id, other_sent))| {
            id == client_id && other_sent <= at && model.identity(other).0 != user
        });
        if code == "BadUsernameOrPassword" || (code == "NotAuthorized" && !contested) {
            problems.push(format!(
                "{key:?} (user {user:?}, client id {client_id}) was refused at {at:?} ({code}) with a good login{}",
                if contested { "" } else { ", and no other user had used its client id" }
            ));
        }
    }
    problems
}

/// No session is resumed or taken over by another user.
fn owners(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, conn) in &model.conns {
        let (user, client_id) = model.identity(key);
        let sent = model
            .client_ids
            .get(key)
            .map_or(Duration::ZERO, |(_, s)| *s);
        let same_id = |other: &ConnKey| other != key && model.identity(other).1 == client_id;
        // A session the broker had is one some CONNECT of this user made.
        let made_by_user = model.client_ids.iter().any(|(other, (_, other_sent))| {
            same_id(other) && model.identity(other).0 == user && *other_sent < conn.start
        });
        if conn.session_present && !made_by_user {
            problems.push(format!(
                "{key:?} (user {user:?}) found a session of client id {client_id} present at {:?}, though no CONNECT of its user had made one",
                conn.start
            ));
        }
        for victim in model.conns.keys().filter(|k| same_id(k)) {
            if model.identity(victim).0 == user || !surely_alive(model, victim, key, sent) {
                continue;
            }
            problems.push(format!(
                "{key:?} (user {user:?}) connected at {:?} with client id {client_id}, while {victim:?} (user {:?}) held its session",
                conn.start,
                model.identity(victim).0
            ));
        }
    }
    problems
}

/// Whether the broker surely still had `victim`'s connection when it took
/// the CONNECT of `key` (sent at `sent`, accepted by its CONNACK): it was
/// up before, nothing its client did could have ended it by then, no link
/// was held nor the broker restarted, and no other CONNECT of its client
/// id went out meanwhile.
fn surely_alive(model: &Model, victim: &ConnKey, key: &ConnKey, sent: Duration) -> bool {
    let old = &model.conns[victim];
    let accepted = model.conns[key].start;
    if old.start > sent || old.held || model.restarted_during(old, accepted) {
        return false;
    }
    if old.silent_from.is_some_and(|s| s <= accepted) {
        return false;
    }
    let client_id = model.identity(key).1;
    let others = model.client_ids.iter().any(|(other, (id, at))| {
        other != key && other != victim && id == client_id && *at >= old.start && *at <= accepted
    });
    if others {
        return false;
    }
    match old.end {
        None => true,
        // Closed by the broker, after the CONNECT went out: by it.
        Some((at, Ending::ClosedByBroker)) => at >= sent,
        Some((at, _)) => at > accepted,
    }
}
