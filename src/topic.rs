//! Topic names (what a PUBLISH is sent to) and topic filters (what a SUBSCRIBE
//! asks for), validated once at the edge so that the rest of the broker can
//! never mistake one for the other.

use std::fmt;
use std::sync::Arc;

/// The longest string MQTT can carry: a two-byte length prefix.
pub const STRING_MAX_BYTES: usize = u16::MAX as usize;

/// Why a string is not a valid topic name or topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    #[error("topic contains U+0000")]
    Null,
    #[error("topic name contains a wildcard")]
    WildcardInName,
    #[error("'#' is not alone in the last level of the filter")]
    MultiLevelMisplaced,
    #[error("'+' does not fill a whole level of the filter")]
    SingleLevelMisplaced,
}

/// A topic a message is published to: no wildcards, at least one character.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(Arc<str>);

/// A filter a client subscribes with: `+` fills one level, `#` the rest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(Arc<str>);

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > STRING_MAX_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Null);
    }
    Ok(())
}

/// A topic's or a filter's levels, split at each `/`. A byte search: a
/// routed message splits its topic twice or more (the subscription index,
/// the retained store), and `str::split('/')` went through its UTF-8
/// searcher at some 70 instructions a level.
#[derive(Debug, Clone)]
pub struct Levels<'a> {
    /// What is left, `None` once the last level is taken.
    rest: Option<&'a str>,
}

impl<'a> Levels<'a> {
    fn of(text: &'a str) -> Levels<'a> {
        Levels { rest: Some(text) }
    }
}

impl<'a> Iterator for Levels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == b'/') {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl std::iter::FusedIterator for Levels<'_> {}

impl TopicName {
    pub fn new(s: &str) -> Result<Self, TopicError> {
        // One pass over the bytes for the usual name; the checks that say
        // what is wrong only for a name that has something wrong.
        let suspect = s.bytes().any(|b| matches!(b, 0 | b'+' | b'#'));
        if suspect || s.is_empty() || s.len() > STRING_MAX_BYTES {
            check_common(s)?;
            if s.contains(['+', '#']) {
                return Err(TopicError::WildcardInName);
            }
        }
        Ok(TopicName(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn levels(&self) -> Levels<'_> {
        Levels::of(&self.0)
    }

    /// `$`-topics (`$SYS/...`) are the server's; a filter starting with a
    /// wildcard must not match them [MQTT-4.7.2-1].
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// Looked up by its text in maps keyed by filter (`broker/shared.rs`): the
/// derived order and hash are those of the text.
impl std::borrow::Borrow<str> for TopicFilter {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TopicFilter {
    pub fn new(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        let mut levels = s.split('/').peekable();
        while let Some(level) = levels.next() {
            if level.contains('#') && (level != "#" || levels.peek().is_some()) {
                return Err(TopicError::MultiLevelMisplaced);
            }
            if level.contains('+') && level != "+" {
                return Err(TopicError::SingleLevelMisplaced);
            }
        }
        Ok(TopicFilter(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn levels(&self) -> Levels<'_> {
        Levels::of(&self.0)
    }

    /// Whether a message published to `name` is for this filter. The
    /// subscription index answers the same question for many filters at once;
    /// this is the reference it is tested against.
    pub fn matches(&self, name: &TopicName) -> bool {
        if name.is_dollar() && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut names = name.levels();
        for filter_level in self.levels() {
            match (filter_level, names.next()) {
                ("#", _) => return true,
                ("+", Some(_)) => {}
                (f, Some(n)) if f == n => {}
                _ => return false,
            }
        }
        names.next().is_none()
    }

    /// Whether some topic name matches both this filter and `other`: a
    /// rule of an ACL that grants this filter may let `other` read something.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        if self.escapes_dollar(other) || other.escapes_dollar(self) {
            return false;
        }
        let (mut a, mut b) = (self.levels(), other.levels());
        loop {
            match (a.next(), b.next()) {
                (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
                (Some(x), Some(y)) if x == y || x == "+" || y == "+" => {}
                _ => return false,
            }
        }
    }

    /// Whether every topic name `other` matches, this filter matches too:
    /// a rule of an ACL that denies this filter leaves `other` nothing.
    pub fn covers(&self, other: &TopicFilter) -> bool {
        if self.escapes_dollar(other) {
            return false;
        }
        let (mut a, mut b) = (self.levels(), other.levels());
        loop {
            match (a.next(), b.next()) {
                (Some("#"), _) | (None, None) => return true,
                (Some("+"), Some(y)) if y != "#" => {}
                (Some(x), Some(y)) if x == y && x != "+" => {}
                _ => return false,
            }
        }
    }

    /// This filter starts with a wildcard and `other` with a `$` level,
    /// whose topics the wildcard does not match [MQTT-4.7.2-1].
    fn escapes_dollar(&self, other: &TopicFilter) -> bool {
        self.0.starts_with(['+', '#']) && other.0.starts_with('$')
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, name: &str) -> bool {
        TopicFilter::new(filter)
            .unwrap()
            .matches(&TopicName::new(name).unwrap())
    }

    #[test]
    fn levels_are_those_of_a_split_at_each_slash() {
        for text in [
            "a", "/", "//", "a/", "/a", "a//b", "a/b/c/d", "é/ü/ø", "$SYS/x/", "", "+/#",
        ] {
            let levels: Vec<&str> = Levels::of(text).collect();
            assert_eq!(levels, text.split('/').collect::<Vec<_>>(), "{text:?}");
        }
    }

    #[test]
    fn names_are_refused_for_what_is_wrong_first() {
        assert_eq!(TopicName::new("a\0+").err(), Some(TopicError::Null));
        assert_eq!(
            TopicName::new("a/+").err(),
            Some(TopicError::WildcardInName)
        );
        assert_eq!(TopicName::new("#").err(), Some(TopicError::WildcardInName));
        assert_eq!(TopicName::new("").err(), Some(TopicError::Empty));
        let long = "a".repeat(STRING_MAX_BYTES + 1);
        assert_eq!(TopicName::new(&long).err(), Some(TopicError::TooLong));
        assert!(TopicName::new("a/b c/é").is_ok());
    }

    #[test]
    fn filters_are_validated() {
        for ok in [
            "a", "#", "+", "a/+/b", "a/#", "+/+", "/", "a//b", "+/#", "$SYS/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            TopicFilter::new("a/#/b"),
            Err(TopicError::MultiLevelMisplaced)
        );
        assert_eq!(TopicFilter::new("a#"), Err(TopicError::MultiLevelMisplaced));
        assert_eq!(
            TopicFilter::new("a+"),
            Err(TopicError::SingleLevelMisplaced)
        );
        assert_eq!(
            TopicFilter::new("+a/b"),
            Err(TopicError::SingleLevelMisplaced)
        );
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a\0"), Err(TopicError::Null));
    }

    #[test]
    fn names_are_validated() {
        assert!(TopicName::new("a/b/c").is_ok());
        assert!(TopicName::new("/").is_ok());
        assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(
            TopicName::new(&"x".repeat(STRING_MAX_BYTES + 1)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn matching_follows_the_spec_examples() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    #[test]
    fn filters_overlap_where_a_topic_matches_both() {
        let overlap = |a: &str, b: &str| {
            let (a, b) = (filter(a), filter(b));
            assert_eq!(a.overlaps(&b), b.overlaps(&a), "symmetric");
            a.overlaps(&b)
        };
        assert!(overlap("#", "a/b"));
        assert!(overlap("a/+/c", "a/b/+"));
        assert!(overlap("a/#", "a"), "a/# matches a");
        assert!(overlap("+/+", "a/#"));
        assert!(overlap("$SYS/#", "$SYS/+/x"));
        assert!(!overlap("a/+", "a"));
        assert!(!overlap("a/b", "a/c"));
        assert!(!overlap("a/b", "a/b/c"));
        assert!(!overlap("#", "$SYS/#"));
        assert!(!overlap("+/x", "$SYS/x"));
    }

    #[test]
    fn a_filter_covers_what_matches_only_topics_it_matches() {
        let covers = |a: &str, b: &str| filter(a).covers(&filter(b));
        assert!(covers("#", "a/+/#"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/#"));
        assert!(covers("a/+", "a/+"));
        assert!(covers("a/+/c", "a/b/c"));
        assert!(covers("$SYS/#", "$SYS/broker/+"));
        assert!(!covers("a/+", "a/#"), "a/# matches a/b/c");
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/+", "a"));
        assert!(!covers("a", "a/#"));
        assert!(!covers("#", "$SYS/x"));
        assert!(!covers("+/x", "$SYS/x"));
    }

    #[test]
    fn dollar_topics_escape_leading_wildcards() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
    }
}
