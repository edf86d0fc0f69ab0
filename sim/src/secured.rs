//! Users and an ACL for the broker, and a workload that tries them: clients
//! with users (several sharing one), anonymous ones, ones with a wrong
//! password or an unknown user, topics and wills that their rules deny,
//! wildcards that cross allowed and denied topics, and intruders that
//! reuse other users' client ids. The rules are data here, written out in
//! mosquitto's formats for the broker and judged by the checks with their
//! own reading of them (`check/access.rs`), never with the broker's.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha512;

use crate::workload::{Action, ClientPlan, Login};

/// What a rule grants, as an ACL line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// Whose a rule is: the anonymous clients', one user's, or everyone's
/// with `%u` and `%c` filled in (a `pattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Anonymous,
    User(&'static str),
    Pattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub owner: Owner,
    pub grant: Grant,
    pub filter: &'static str,
}

/// The users, their passwords and the ACL of a secured scenario, and how
/// many intruders its workload sends.
#[derive(Debug, Clone)]
pub struct Security {
    pub users: Vec<(&'static str, &'static str)>,
    pub rules: Vec<Rule>,
    /// Clients that connect with another client's id.
    pub intruders: usize,
}

/// PBKDF2 rounds of the simulated users' hashes: a real file has a
/// thousand, which would make every simulated CONNECT cost a millisecond.
const ITERATIONS: u32 = 2;

/// Clients with a wrong password or an unknown user, at most: the broker
/// blocks an address after 10 failed checks, and clients share addresses,
/// so more could lock good clients out and make the run say nothing.
const BAD_LOGINS_MAX: usize = 8;

impl Security {
    /// Four users, one with no rules of his own; anonymous clients allowed
    /// a little; read-only, write-only and denied topics, and patterns.
    pub fn standard() -> Security {
        use Grant::*;
        use Owner::*;
        let rule = |owner, grant, filter| Rule {
            owner,
            grant,
            filter,
        };
        Security {
            users: vec![
                ("alice", "alice-pw"),
                ("bob", "bob-pw"),
                ("carol", "carol-pw"),
                ("dave", "dave-pw"),
            ],
            rules: vec![
                rule(Anonymous, Read, "t/#"),
                rule(Anonymous, Deny, "t/b/#"),
                rule(Anonymous, ReadWrite, "r/2"),
                rule(Anonymous, Read, "will/#"),
                rule(Anonymous, Write, "will/a"),
                rule(User("alice"), ReadWrite, "t/#"),
                rule(User("alice"), Deny, "t/a/x"),
                rule(User("alice"), Read, "u/#"),
                rule(User("alice"), Write, "r/#"),
                rule(User("alice"), ReadWrite, "will/#"),
                rule(User("bob"), Read, "#"),
                rule(User("bob"), Deny, "r/#"),
                rule(User("bob"), Write, "t/a"),
                rule(User("bob"), Write, "will/b"),
                rule(User("bob"), Deny, "u/b"),
                rule(User("carol"), ReadWrite, "u/#"),
                rule(User("carol"), ReadWrite, "r/#"),
                rule(User("carol"), Read, "t/+"),
                rule(User("carol"), Deny, "will/a"),
                rule(Pattern, ReadWrite, "p/%u/#"),
                rule(Pattern, Deny, "p/%u/secret"),
                rule(Pattern, ReadWrite, "c/%c"),
                rule(Pattern, Read, "will/#"),
                rule(Pattern, Write, "t/b/y"),
            ],
            intruders: 8,
        }
    }

    /// The ACL in mosquitto's `acl_file` format: anonymous rules before
    /// any `user` line.
    pub fn acl_text(&self) -> String {
        let word = |grant| match grant {
            Grant::Read => "read",
            Grant::Write => "write",
            Grant::ReadWrite => "readwrite",
            Grant::Deny => "deny",
        };
        let mut text = String::from("# the simulation's rules\n");
        let of = |owner| self.rules.iter().filter(move |r| r.owner == owner);
        for rule in of(Owner::Anonymous) {
            text += &format!("topic {} {}\n", word(rule.grant), rule.filter);
        }
        for (user, _) in &self.users {
            text += &format!("\nuser {user}\n");
            for rule in of(Owner::User(user)) {
                text += &format!("topic {} {}\n", word(rule.grant), rule.filter);
            }
        }
        text += "\n";
        for rule in of(Owner::Pattern) {
            text += &format!("pattern {} {}\n", word(rule.grant), rule.filter);
        }
        text
    }

    /// The users in mosquitto's `password_file` format (`$7$`, PBKDF2 with
    /// SHA-512), with a salt made from the name so that runs repeat.
    pub fn password_text(&self) -> String {
        let mut text = String::new();
        for (user, password) in &self.users {
            let salt = format!("salt-{user}").into_bytes();
            let mut hash = [0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, ITERATIONS, &mut hash);
            text += &format!(
                "{user}:$7${ITERATIONS}${}${}\n",
                BASE64.encode(&salt),
                BASE64.encode(hash)
            );
        }
        text
    }

    /// Whether `login` names a known user with its password; `None` for
    /// an anonymous one, which the broker's `allow_anonymous` decides.
    pub fn valid(&self, login: &Login) -> Option<bool> {
        let Some(user) = &login.user else {
            return None;
        };
        Some(
            self.users
                .iter()
                .any(|(u, p)| u == user && login.password.as_deref() == Some(*p)),
        )
    }

    fn login(&self, user: usize) -> Login {
        let (user, password) = self.users[user];
        Login {
            user: Some(user.to_owned()),
            password: Some(password.to_owned()),
        }
    }

    /// Gives every client its login, moves some of its topics, filters
    /// and wills where the rules have something to say, and adds the
    /// intruders. From a generator of its own, after every other draw.
    pub fn apply(&self, clients: &mut Vec<ClientPlan>, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xACAC_ACAC_ACAC_ACAC);
        let mut bad = 0;
        for client in clients.iter_mut() {
            client.login = match client.name.as_str() {
                // The observers watch for everyone: users who read most.
                "o0" => self.login(1),
                "o1" => Login::default(),
                "o2" => self.login(2),
                // The churners (`c{i}`): anyone, good or bad.
                name if name.starts_with('c') => self.draw_login(&mut rng, &mut bad),
                // The other long-lived clients, whom the delivery checks
                // need connected.
                _ => self.login(rng.random_range(0..self.users.len())),
            };
            if self.valid(&client.login) == Some(false) {
                // Each attempt counts against the address (see BAD_LOGINS_MAX).
                client.connections.truncate(1);
            }
            if !client.observer {
                self.move_topics(client, &mut rng);
            }
        }
        let intruders = self.intruders(clients, &mut rng);
        clients.extend(intruders);
    }

    /// Most clients log in as a user; some are anonymous, and a few give
    /// a wrong password, an unknown user, or a user with no password.
    fn draw_login(&self, rng: &mut StdRng, bad: &mut usize) -> Login {
        let roll = rng.random_range(0..100);
        if roll < 20 && *bad < BAD_LOGINS_MAX {
            *bad += 1;
            let user = self.users[rng.random_range(0..self.users.len())].0;
            return match roll % 3 {
                0 => Login {
                    user: Some(user.to_owned()),
                    password: Some(format!("{user}-wrong")),
                },
                1 => Login {
                    user: Some("mallory".to_owned()),
                    password: Some("mallory-pw".to_owned()),
                },
                _ => Login {
                    user: Some(user.to_owned()),
                    password: None,
                },
            };
        }
        if roll < 35 {
            return Login::default();
        }
        self.login(rng.random_range(0..self.users.len()))
    }

    /// Some publishes, subscriptions and wills go to topics that only
    /// `pattern` rules decide: the client's own (`p/{user}/...`,
    /// `c/{client id}`) or another's.
    fn move_topics(&self, client: &mut ClientPlan, rng: &mut StdRng) {
        let me = client.login.user.clone().unwrap_or_else(|| "anon".into());
        let other = self.users[rng.random_range(0..self.users.len())].0;
        let topics = [
            format!("p/{me}/x"),
            format!("p/{me}/secret"),
            format!("p/{other}/x"),
            format!("c/{}", client.client_id),
            "c/o0".to_owned(),
        ];
        let filters = ["p/#", "p/+/x", "c/+", "#", "+/+/secret"];
        for connection in &mut client.connections {
            if let Some((topic, _, _)) = &mut connection.will {
                if rng.random_bool(0.3) {
                    *topic = topics[rng.random_range(0..topics.len())].clone();
                }
            }
            for (_, action) in &mut connection.actions {
                match action {
                    Action::Publish { topic, .. } if rng.random_bool(0.3) => {
                        *topic = topics[rng.random_range(0..topics.len())].clone();
                    }
                    Action::Subscribe(filter, _)
                        if !filter.starts_with("$share/") && rng.random_bool(0.3) =>
                    {
                        *filter = filters[rng.random_range(0..filters.len())].to_owned();
                    }
                    _ => {}
                }
            }
        }
    }

    /// Copies of churners that connect with another client's id: mostly
    /// as another user (whom the broker must refuse while that session
    /// lives), sometimes as the same user (a takeover it must allow).
    /// Observers' ids are taken only by other users: their sessions live
    /// through the run, so every such CONNECT must be refused.
    fn intruders(&self, clients: &[ClientPlan], rng: &mut StdRng) -> Vec<ClientPlan> {
        let churners: Vec<&ClientPlan> = clients
            .iter()
            .filter(|c| c.name.starts_with('c') && !c.connections.is_empty())
            .collect();
        let observers: Vec<&ClientPlan> = clients.iter().filter(|c| c.observer).collect();
        if churners.is_empty() {
            return Vec::new();
        }
        let mut intruders: Vec<ClientPlan> = Vec::new();
        for i in 0..self.intruders {
            let mut plan = churners[rng.random_range(0..churners.len())].clone();
            let on_observer = !observers.is_empty() && rng.random_bool(0.4);
            let victim = if on_observer {
                observers[rng.random_range(0..observers.len())]
            } else {
                churners[rng.random_range(0..churners.len())]
            };
            plan.name = format!("x{i}");
            plan.start += Duration::from_millis(rng.random_range(0..3_000));
            plan.client_id = victim.client_id.clone();
            plan.connections.truncate(2);
            // The same user takes over a clean session only: the checks
            // follow a session by its client's name, and a persistent one
            // resumed under another name would look like someone else's.
            let clean = victim.connections.first().is_some_and(|c| c.clean);
            let friendly = clean && self.valid(&victim.login) != Some(false);
            if !on_observer && friendly && rng.random_bool(0.25) {
                plan.login = victim.login.clone();
                plan.session_expiry = 0;
                for connection in &mut plan.connections {
                    connection.clean = true;
                }
            } else {
                // Another user, and no other intruder of that user on this
                // client id, for the same reason.
                let taken = |login: &Login| {
                    login.user == victim.login.user
                        || intruders
                            .iter()
                            .any(|x| x.client_id == victim.client_id && x.login.user == login.user)
                };
                let logins = (0..=self.users.len()).map(|n| match n {
                    0 => Login::default(),
                    n => self.login(n - 1),
                });
                let free: Vec<Login> = logins.filter(|l| !taken(l)).collect();
                if free.is_empty() {
                    continue;
                }
                plan.login = free[rng.random_range(0..free.len())].clone();
            }
            intruders.push(plan);
        }
        intruders
    }
}
