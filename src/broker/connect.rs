//! The connect policy: whether a CONNECT is accepted, which session it gets
//! (new, resumed or taken over), and what it settles for that session: keep
//! alive, client id, expiry, window and packet size, and the CONNACK that
//! tells the client.

use super::sessions::Terms;
use super::{Accepted, Broker, ConnId, Effect, Notice, SessionId};
use crate::codec::{ConnAck, Connect, ConnectCode, Packet, Properties, Property, ProtocolVersion};
use crate::config::planted;

/// What the checks before any session is touched settled.
struct Admitted {
    client_id: String,
    keep_alive: u16,
}

impl Broker {
    /// Handles CONNECT. When it is refused, the CONNACK saying why is in the
    /// effects, `None` is returned and the caller closes the connection.
    pub fn connect(&mut self, conn: ConnId, connect: Connect) -> Option<Accepted> {
        debug_assert!(
            self.sessions.by_conn(conn).is_none(),
            "one CONNECT per connection"
        );
        let v5 = connect.version == ProtocolVersion::V5;
        let mut connack = Properties::new();
        let admitted = match self.admit(&connect, &mut connack) {
            Ok(admitted) => admitted,
            Err(code) => return self.refuse(conn, code),
        };
        let client_id = admitted.client_id;
        if let Some(sid) = self.sessions.by_client(&client_id) {
            // One user may not resume, take over or end another's session
            // (and so fire its will) by reusing its client id.
            let owner = self.sessions.get(sid).owner();
            if owner != connect.username.as_deref() && !planted!(self.config, CrossUserTakeover) {
                self.notices.note(Notice::NotOwner {
                    client_id: client_id.clone(),
                });
                self.connects_refused_not_owner += 1;
                return self.refuse(conn, ConnectCode::NotAuthorized);
            }
        }
        let resumes = !connect.clean_session && self.sessions.by_client(&client_id).is_some();
        if self.memory_full && !resumes {
            // A resumed session is let in: it takes its queue away. Refused
            // before the takeover, so that an existing session is kept.
            self.connects_refused_memory += 1;
            return self.refuse(
                conn,
                if v5 {
                    ConnectCode::QuotaExceeded
                } else {
                    ConnectCode::ServerUnavailable
                },
            );
        }
        if self.store_failed && self.touches_durable(&client_id, &connect) {
            // Its CONNACK would wait for a commit that will never come.
            self.connects_refused_store += 1;
            return self.refuse(conn, ConnectCode::ServerUnavailable);
        }
        self.take_over(conn, &client_id, connect.clean_session);
        let owner = connect.username.as_deref();
        let (sid, resumed) = match self.find_or_create(&client_id, owner, v5) {
            Ok(found) => found,
            Err(code) => return self.refuse(conn, code),
        };
        self.attach(conn, sid, connect, &mut connack);
        if v5 {
            self.describe_limits(&mut connack);
        }
        self.effects.push(Effect::Send(
            conn,
            Packet::ConnAck(ConnAck {
                session_present: resumed,
                code: ConnectCode::Accepted,
                properties: connack,
            }),
        ));
        if resumed {
            self.resend_inflight(sid);
        }
        Some(Accepted {
            client_id,
            keep_alive: admitted.keep_alive,
        })
    }

    /// The checks of a CONNECT that need no session: authentication, the
    /// will's payload, keep alive and client id.
    fn admit(
        &mut self,
        connect: &Connect,
        connack: &mut Properties,
    ) -> Result<Admitted, ConnectCode> {
        let v5 = connect.version == ProtocolVersion::V5;
        if connect.properties.authentication_method().is_some() {
            // No enhanced authentication method is known yet [MQTT-4.12].
            return Err(ConnectCode::BadAuthenticationMethod);
        }
        let will_payload_ok = connect.will.as_ref().is_none_or(|w| {
            w.properties.payload_format_indicator() != Some(1)
                || std::str::from_utf8(&w.payload).is_ok()
        });
        if !will_payload_ok {
            return Err(ConnectCode::PayloadFormatInvalid);
        }
        if let Some(will) = &connect.will {
            // A will is a PUBLISH the broker makes for the client: its
            // topic passes what the client's own PUBLISH would.
            if self.check_levels(will.topic.as_str()).is_err() {
                return Err(ConnectCode::TopicNameInvalid);
            }
            if !self.may_publish_to(&will.topic) {
                return Err(ConnectCode::NotAuthorized);
            }
        }
        let mut keep_alive = connect.keep_alive;
        let keep_alive_max = self.config.keep_alive_max_secs;
        // As in mosquitto 2: keepalive 0 (none at all) is over any maximum,
        // and a maximum of 0 allows everything.
        let over = keep_alive > keep_alive_max || keep_alive == 0;
        if (keep_alive_max > 0 || planted!(self.config, KeepAliveZeroRefused)) && over {
            if !v5 {
                return Err(ConnectCode::IdentifierRejected);
            }
            // 5.0 lets the server say what it will use instead [MQTT-3.2.2.3.14].
            keep_alive = keep_alive_max;
            connack.push(Property::ServerKeepAlive(keep_alive));
        }
        if connect.client_id.len() > self.config.client_id_max_bytes {
            return Err(ConnectCode::IdentifierRejected);
        }
        let client_id = if connect.client_id.is_empty() {
            if !v5 && !connect.clean_session {
                // [MQTT-3.1.3-8]
                return Err(ConnectCode::IdentifierRejected);
            }
            // One no session has [MQTT-3.1.3-6].
            let id = loop {
                let id = self.sessions.next_assigned_id();
                if self.sessions.by_client(&id).is_none() || planted!(self.config, AssignedIdTaken)
                {
                    break id;
                }
            };
            if v5 && !planted!(self.config, AssignedIdNotReturned) {
                connack.push(Property::AssignedClientIdentifier(id.clone()));
            }
            id
        } else {
            connect.client_id.clone()
        };
        Ok(Admitted {
            client_id,
            keep_alive,
        })
    }

    /// A session of `client_id` still connected is taken from its
    /// connection; a clean start ends it.
    fn take_over(&mut self, conn: ConnId, client_id: &str, clean_session: bool) {
        let Some(sid) = self.sessions.by_client(client_id) else {
            return;
        };
        let online = self.sessions.get(sid).conn().is_some();
        if let Some(old) = self.sessions.get(sid).conn() {
            self.notices.note(Notice::TakenOver {
                client_id: client_id.to_owned(),
                old,
                new: conn,
            });
            self.connection_lost(old, false);
            if !planted!(self.config, TakeoverLeavesOldOpen) {
                self.effects.push(Effect::TakenOver(old));
            }
        }
        // A session that ended with its old connection is gone already.
        let kept = !online && planted!(self.config, CleanStartKeepsOfflineSession);
        if clean_session && self.sessions.contains(sid) && !kept {
            self.end_session(sid);
        }
    }

    /// The session of `client_id` and whether it existed, or why there is
    /// none.
    fn find_or_create(
        &mut self,
        client_id: &str,
        owner: Option<&str>,
        v5: bool,
    ) -> Result<(SessionId, bool), ConnectCode> {
        if let Some(sid) = self.sessions.by_client(client_id) {
            return Ok((sid, true));
        }
        if self.sessions.len() >= self.config.sessions_max {
            self.connects_refused_sessions_max += 1;
            self.notices.note(Notice::SessionLimit {
                client_id: client_id.to_owned(),
                max: self.config.sessions_max,
            });
            return Err(if v5 {
                ConnectCode::QuotaExceeded
            } else {
                ConnectCode::ServerUnavailable
            });
        }
        Ok((self.sessions.create(client_id, owner), false))
    }

    /// Whether the CONNECT would make, resume or end a session the store
    /// keeps.
    fn touches_durable(&self, client_id: &str, connect: &Connect) -> bool {
        let asks_durable = match connect.version {
            ProtocolVersion::V5 => {
                connect.properties.session_expiry_interval().unwrap_or(0) > 0
                    && self.config.session_expiry_max_secs > 0
            }
            _ => !connect.clean_session && self.config.persistent_session_expiry_secs > 0,
        };
        let has_durable = self
            .sessions
            .by_client(client_id)
            .is_some_and(|sid| self.sessions.get(sid).is_durable());
        asks_durable || has_durable
    }

    /// Attaches `conn` to the session, with what its CONNECT settles.
    fn attach(&mut self, conn: ConnId, sid: SessionId, connect: Connect, connack: &mut Properties) {
        let v5 = connect.version == ProtocolVersion::V5;
        let asked = connect.properties.session_expiry_interval();
        let expiry_secs = if v5 {
            let asked = asked.unwrap_or(0);
            let granted = asked.min(self.config.session_expiry_max_secs);
            if granted != asked {
                connack.push(Property::SessionExpiryInterval(granted));
            }
            granted
        } else if connect.clean_session {
            0
        } else {
            // 3.1.1 has no expiry of its own; mosquitto's
            // persistent_client_expiration sets one.
            self.config.persistent_session_expiry_secs
        };
        let client_receive_max = connect.properties.receive_maximum().unwrap_or(u16::MAX);
        let mut window = self
            .config
            .inflight_messages_max
            .min(usize::from(client_receive_max));
        if planted!(self.config, IgnoreReceiveMaximum) {
            window = self.config.inflight_messages_max;
        }
        let terms = Terms {
            version: connect.version,
            expiry_secs,
            asked_no_expiry: asked.unwrap_or(0) == 0,
            // Its own bytes: a slice would pin the whole CONNECT it came in
            // (up to the packet limit) for as long as the session lives.
            will: connect.will.map(|mut will| {
                will.payload = bytes::Bytes::copy_from_slice(&will.payload);
                will.properties.unshare();
                Box::new(will)
            }),
            // Made again at each CONNECT, as mosquitto finds a client's
            // rules again: the same user and client id, the same rules.
            acl: self.acl.as_ref().map(|acl| {
                let client_id = self.sessions.get(sid).client_id();
                Box::new(acl.for_client(connect.username.as_deref(), client_id))
            }),
            packet_size_max: connect
                .properties
                .maximum_packet_size()
                .filter(|_| !planted!(self.config, ClientPacketSizeIgnored))
                .map_or(usize::MAX, |max| max as usize),
            window,
        };
        self.sessions.attach(sid, conn, terms);
        self.lose_tail(sid);
    }

    /// The CONNACK properties that tell a 5.0 client this broker's limits;
    /// each is left out where it is the protocol's default.
    fn describe_limits(&self, connack: &mut Properties) {
        let c = &self.config;
        if c.receive_maximum < u16::MAX {
            connack.push(Property::ReceiveMaximum(c.receive_maximum));
        }
        if c.packet_size_max_bytes < crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES {
            let max = u32::try_from(c.packet_size_max_bytes).unwrap_or(u32::MAX);
            connack.push(Property::MaximumPacketSize(max));
        }
        if c.topic_alias_max > 0 {
            connack.push(Property::TopicAliasMaximum(c.topic_alias_max));
        }
        for (available, property) in [
            (
                c.wildcard_subscriptions,
                Property::WildcardSubscriptionAvailable(0),
            ),
            (
                c.subscription_identifiers,
                Property::SubscriptionIdentifierAvailable(0),
            ),
            (
                c.shared_subscriptions,
                Property::SharedSubscriptionAvailable(0),
            ),
        ] {
            if !available {
                connack.push(property);
            }
        }
    }

    fn refuse(&mut self, conn: ConnId, code: ConnectCode) -> Option<Accepted> {
        let connack = ConnAck {
            session_present: false,
            code,
            properties: Properties::new(),
        };
        self.effects
            .push(Effect::Send(conn, Packet::ConnAck(connack)));
        None
    }
}
