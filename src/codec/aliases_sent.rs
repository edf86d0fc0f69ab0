//! The topic aliases we set on what we send to one 5.0 client, within the
//! Topic Alias Maximum it announced [MQTT-3.3.2-8]: a topic sent again goes
//! as two bytes instead of its name. They last as long as the connection
//! [MQTT-3.3.2-10]; a new one starts with none.
//!
//! Which topics: the ones sent most recently, which for a subscriber that
//! gets a steady stream are the ones it gets most. While aliases are free,
//! each new topic takes one. Once all are taken, a topic takes the least
//! recently used one only if it was also sent shortly before (it is among
//! the last few topics that found none): a client that gets more topics
//! than it has aliases, in turn, would otherwise pay three bytes more on
//! every message to set an alias that is replaced before it is used.

/// How a PUBLISH we send names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// By its name, no alias.
    Topic,
    /// By its name, and the alias that stands for it from now on.
    SetAlias(u16),
    /// By the alias alone, its name left empty.
    Alias(u16),
}

impl Naming {
    /// The topic name a PUBLISH to `topic` carries, and the Topic Alias.
    pub fn of(self, topic: &str) -> (&str, Option<u16>) {
        match self {
            Naming::Topic => (topic, None),
            Naming::SetAlias(alias) => (topic, Some(alias)),
            Naming::Alias(alias) => ("", Some(alias)),
        }
    }
}

/// A topic longer than this is not given an alias: the table holds a copy
/// of each topic, and this bounds it at `max` times this much.
pub const ALIASED_TOPIC_MAX_BYTES: usize = 256;

/// Topics that found no free alias, remembered for the second chance.
const MISSES_KEPT: usize = 4;

/// The three bytes a Topic Alias property adds.
pub const ALIAS_PROPERTY_BYTES: usize = 3;

#[derive(Debug)]
pub struct SentAliases {
    max: u16,
    /// Alias `i + 1` stands for `entries[i].topic`. Searched in order: a
    /// few dozen entries cost less to scan than a map costs to keep.
    entries: Vec<Entry>,
    /// Counts the topics named, for least recently used.
    clock: u64,
    /// Hashes of the last topics that found no free alias.
    misses: [u64; MISSES_KEPT],
    next_miss: usize,
}

#[derive(Debug)]
struct Entry {
    topic: Box<str>,
    used: u64,
}

impl SentAliases {
    /// A table of at most `max` aliases; 0 sets none.
    pub fn new(max: u16) -> SentAliases {
        SentAliases {
            max,
            entries: Vec::new(),
            clock: 0,
            misses: [0; MISSES_KEPT],
            next_miss: 0,
        }
    }

    /// How to name `topic` in the PUBLISH we send next. `room` says
    /// whether the packet may grow by `ALIAS_PROPERTY_BYTES` and stay
    /// within the client's Maximum Packet Size (asked only to set an
    /// alias: naming by alias alone never grows it).
    pub fn name(&mut self, topic: &str, room: impl FnOnce() -> bool) -> Naming {
        self.clock += 1;
        if let Some(i) = self.entries.iter().position(|e| *e.topic == *topic) {
            self.entries[i].used = self.clock;
            return Naming::Alias(alias_of(i));
        }
        // By alias alone a topic is named in as many bytes as the alias
        // takes: a topic no longer saves nothing.
        let saves = topic.len() > ALIAS_PROPERTY_BYTES;
        if self.max == 0 || !saves || topic.len() > ALIASED_TOPIC_MAX_BYTES || !room() {
            return Naming::Topic;
        }
        let entry = Entry {
            topic: topic.into(),
            used: self.clock,
        };
        if self.entries.len() < usize::from(self.max) {
            self.entries.push(entry);
            return Naming::SetAlias(alias_of(self.entries.len() - 1));
        }
        if !self.missed_recently(topic) {
            return Naming::Topic;
        }
        let (i, _) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.used)
            .expect("max is not 0, and every alias is taken");
        self.entries[i] = entry;
        Naming::SetAlias(alias_of(i))
    }

    /// Whether every alias is taken: the next new topic replaces one.
    pub fn is_full(&self) -> bool {
        self.entries.len() == usize::from(self.max)
    }

    /// Whether `topic` is among the last topics that found no alias; it
    /// is remembered if not.
    fn missed_recently(&mut self, topic: &str) -> bool {
        let hash = fnv1a(topic.as_bytes());
        if let Some(slot) = self.misses.iter_mut().find(|h| **h == hash) {
            // Taken once: the next miss of it must be recent again.
            *slot = 0;
            return true;
        }
        self.misses[self.next_miss] = hash;
        self.next_miss = (self.next_miss + 1) % MISSES_KEPT;
        false
    }
}

fn alias_of(index: usize) -> u16 {
    u16::try_from(index + 1).expect("no more entries than a u16 max")
}

/// A fixed hash (no seed): a collision only gives a topic its alias a
/// message early.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(aliases: &mut SentAliases, topics: &[&str]) -> Vec<Naming> {
        topics.iter().map(|t| aliases.name(t, || true)).collect()
    }

    #[test]
    fn a_topic_sets_an_alias_then_goes_by_it() {
        let mut aliases = SentAliases::new(2);
        assert_eq!(
            names(&mut aliases, &["t/aa", "t/bb", "t/aa", "t/bb", "t/aa"]),
            [
                Naming::SetAlias(1),
                Naming::SetAlias(2),
                Naming::Alias(1),
                Naming::Alias(2),
                Naming::Alias(1)
            ]
        );
    }

    #[test]
    fn none_when_the_client_allows_none() {
        let mut aliases = SentAliases::new(0);
        assert_eq!(names(&mut aliases, &["t/aa", "t/aa"]), [Naming::Topic; 2]);
    }

    #[test]
    fn no_alias_is_set_without_room_nor_for_a_topic_too_long_or_short() {
        let mut aliases = SentAliases::new(4);
        assert_eq!(aliases.name("abcd", || false), Naming::Topic);
        let long = "x".repeat(ALIASED_TOPIC_MAX_BYTES + 1);
        assert_eq!(aliases.name(&long, || true), Naming::Topic);
        assert_eq!(aliases.name("abc", || true), Naming::Topic, "saves nothing");
        assert_eq!(aliases.name("abcd", || true), Naming::SetAlias(1));
        // Naming by alias alone makes the packet smaller: no room needed.
        assert_eq!(aliases.name("abcd", || false), Naming::Alias(1));
    }

    #[test]
    fn a_full_table_gives_the_least_recently_used_alias_to_a_topic_seen_twice() {
        let mut aliases = SentAliases::new(2);
        names(&mut aliases, &["t/aa", "t/bb", "t/aa"]);
        // "t/cc" once: named in full, no alias taken from "t/aa" or "t/bb".
        assert_eq!(aliases.name("t/cc", || true), Naming::Topic);
        assert_eq!(aliases.name("t/aa", || true), Naming::Alias(1));
        // "t/cc" again soon: it takes "t/bb"'s alias, the least recently used.
        assert_eq!(aliases.name("t/cc", || true), Naming::SetAlias(2));
        assert_eq!(aliases.name("t/cc", || true), Naming::Alias(2));
        assert_eq!(aliases.name("t/bb", || true), Naming::Topic);
        assert_eq!(aliases.name("t/aa", || true), Naming::Alias(1));
    }

    #[test]
    fn more_topics_in_turn_than_aliases_go_by_name_not_by_aliases_replaced() {
        let mut aliases = SentAliases::new(2);
        let topics = [
            "t/aa", "t/bb", "t/cc", "t/dd", "t/ee", "t/ff", "t/gg", "t/hh",
        ];
        names(&mut aliases, &topics);
        let again = names(&mut aliases, &topics[2..]);
        assert_eq!(again, [Naming::Topic; 6], "no alias set to be lost again");
    }

    #[test]
    fn never_more_aliases_than_the_maximum() {
        let mut aliases = SentAliases::new(3);
        for round in 0..50 {
            for t in 0..(round % 7) {
                match aliases.name(&format!("t/{t}{t}"), || true) {
                    Naming::SetAlias(a) | Naming::Alias(a) => assert!((1..=3).contains(&a)),
                    Naming::Topic => {}
                }
            }
        }
    }
}
