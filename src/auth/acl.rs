//! Who may read and write which topics: mosquitto's `acl_file`, read and
//! judged as mosquitto does (`src/security_default.c`), so that users can
//! bring theirs:
//!
//! ```text
//! # comment
//! topic read $SYS/#          rules before any `user` line: anonymous clients
//! user alice
//! topic readwrite home/#     alice's rules
//! topic deny home/secret
//! pattern write clients/%c   every client, its client id (%c) or user (%u) filled in
//! ```
//!
//! With a file, what no rule grants is denied. A client's own rules (its
//! user's, or the anonymous ones) are asked first, then the patterns; in
//! each list a `deny` that matches wins over any grant. Nothing here
//! allocates after CONNECT: the rules for one client are made once
//! (`AclFile::for_client`) and then only matched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::topic::{TopicFilter, TopicName};

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages on it (subscribe, and each message delivered).
    Read,
    /// Publish to it (and have its will published there).
    Write,
}

/// What a rule says of the topics its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Deny,
    Read,
    Write,
    ReadWrite,
}

impl Grant {
    fn parse(word: &str) -> Option<Grant> {
        Some(match word {
            "read" => Grant::Read,
            "write" => Grant::Write,
            "readwrite" => Grant::ReadWrite,
            "deny" => Grant::Deny,
            _ => return None,
        })
    }

    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Grant::ReadWrite, _) | (Grant::Read, Access::Read) | (Grant::Write, Access::Write)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    filter: TopicFilter,
}

/// A `pattern` line: a filter with `%c` and `%u` still in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    grant: Grant,
    text: String,
}

/// An ACL file as read: the rules of each user and the patterns, each list
/// with its `deny` rules first, as mosquitto keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclFile {
    /// By user name; `None` holds the rules before any `user` line, which
    /// are for clients without one.
    users: BTreeMap<Option<String>, Arc<[Rule]>>,
    patterns: Vec<Pattern>,
}

/// The rules that judge one client, its patterns filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAcl {
    user: Option<Arc<[Rule]>>,
    /// `None` when there are patterns and the client's id or user name
    /// holds `+` or `#`, which could make a pattern match more than it
    /// names: mosquitto denies such a client all the patterns would judge
    /// (and so do we one whose name makes a pattern too long a filter).
    patterns: Option<Box<[Rule]>>,
}

impl AclFile {
    /// Reads `path`; an error names the file and the line.
    pub fn load(path: &Path) -> Result<AclFile, String> {
        super::load("acl file", path, AclFile::parse)
    }

    /// Blank lines and `#` comments are skipped. A rule's access word may
    /// be left out (`topic a/b` is `topic readwrite a/b`), and its filter
    /// is the rest of the line, spaces and all, as in mosquitto.
    pub fn parse(text: &str) -> Result<AclFile, (usize, String)> {
        let mut users: BTreeMap<Option<String>, Vec<Rule>> = BTreeMap::new();
        let mut patterns = Vec::new();
        let mut user = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" if rest.is_empty() => return Err((i + 1, "user with no name".into())),
                "user" => user = Some(rest.to_owned()),
                "topic" | "pattern" => {
                    let (grant, filter) = parse_rule(rest).map_err(|e| (i + 1, e))?;
                    if keyword == "pattern" {
                        let text = filter.as_str().to_owned();
                        patterns.push(Pattern { grant, text });
                    } else {
                        let rule = Rule { grant, filter };
                        users.entry(user.clone()).or_default().push(rule);
                    }
                }
                _ => return Err((i + 1, format!("{keyword:?} is not user, topic or pattern"))),
            }
        }
        patterns.sort_by_key(|p| p.grant != Grant::Deny);
        let users = users
            .into_iter()
            .map(|(user, mut rules)| {
                rules.sort_by_key(|r| r.grant != Grant::Deny);
                (user, Arc::from(rules))
            })
            .collect();
        Ok(AclFile { users, patterns })
    }

    /// The rules for a client with this user name and client id.
    pub fn for_client(&self, user: Option<&str>, client_id: &str) -> ClientAcl {
        let dangerous = |name: &str| name.contains(['+', '#']);
        let patterns = if self.patterns.is_empty() {
            Some(Box::default())
        } else if user.is_some_and(dangerous) || dangerous(client_id) {
            None
        } else {
            self.patterns
                .iter()
                .filter_map(|p| fill(p, user, client_id).transpose())
                .collect::<Result<Box<[Rule]>, TooLong>>()
                .ok()
        };
        ClientAcl {
            user: self.users.get(&user.map(str::to_owned)).cloned(),
            patterns,
        }
    }
}

impl ClientAcl {
    /// Whether the client may read or write `topic`.
    pub fn allows(&self, topic: &TopicName, access: Access) -> bool {
        self.decide(
            |rule| rule.filter.matches(topic),
            |rule| rule.grant.allows(access) && rule.filter.matches(topic),
        )
    }

    /// Whether the client may subscribe to `filter`: refused only where it
    /// could receive nothing, for no rule grants reading any topic it
    /// matches or a `deny` matches all of them. What a filter granted
    /// matches is still judged message by message (`allows`), as mosquitto
    /// does, so `#` gets only what the client may read.
    pub fn may_subscribe(&self, filter: &TopicFilter) -> bool {
        self.decide(
            |rule| rule.filter.covers(filter),
            |rule| rule.grant.allows(Access::Read) && rule.filter.overlaps(filter),
        )
    }

    /// mosquitto's order: the client's own rules, then the patterns, and in
    /// each the first rule that `denies` or `grants` decides (the `deny`
    /// rules come first); none: denied.
    fn decide(&self, denies: impl Fn(&Rule) -> bool, grants: impl Fn(&Rule) -> bool) -> bool {
        let own = self.user.as_deref().unwrap_or_default();
        for rules in [Some(own), self.patterns.as_deref()] {
            let Some(rules) = rules else {
                return false;
            };
            for rule in rules {
                if rule.grant == Grant::Deny {
                    if denies(rule) {
                        return false;
                    }
                } else if grants(rule) {
                    return true;
                }
            }
        }
        false
    }
}

/// The first word of `line` and the rest, trimmed.
fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    }
}

/// `[read|write|readwrite|deny] FILTER`.
fn parse_rule(rest: &str) -> Result<(Grant, TopicFilter), String> {
    let (first, after) = split_word(rest);
    let (grant, filter) = match (Grant::parse(first), after) {
        _ if rest.is_empty() => return Err("a rule with no topic".into()),
        (_, "") => (Grant::ReadWrite, first),
        (Some(grant), filter) => (grant, filter),
        (None, _) => return Err(format!("{first:?} is not read, write, readwrite or deny")),
    };
    let filter = TopicFilter::new(filter).map_err(|e| format!("{filter:?}: {e}"))?;
    Ok((grant, filter))
}

/// A client id or user name that makes a pattern longer than a filter
/// may be; such a client is judged as a dangerous one.
struct TooLong;

/// A pattern with `%c` and `%u` replaced; `None` for a pattern with `%u`
/// and a client without a user name, which it does not apply to.
fn fill(pattern: &Pattern, user: Option<&str>, client_id: &str) -> Result<Option<Rule>, TooLong> {
    let text = &pattern.text;
    if user.is_none() && text.contains("%u") {
        return Ok(None);
    }
    let mut filled = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('%') {
        filled.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let name = match rest.as_bytes().first() {
            Some(b'c') => Some(client_id),
            Some(b'u') => user,
            _ => None,
        };
        match name {
            Some(name) => {
                filled.push_str(name);
                rest = &rest[1..];
            }
            None => filled.push('%'),
        }
    }
    filled.push_str(rest);
    let filter = TopicFilter::new(&filled).map_err(|_| TooLong)?;
    Ok(Some(Rule {
        grant: pattern.grant,
        filter,
    }))
}

#[cfg(test)]
mod tests;
