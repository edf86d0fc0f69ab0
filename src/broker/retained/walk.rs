//! Finding the retained messages a filter matches, in slices: a walk looks
//! at a bounded number of trie nodes, in level order, and leaves a cursor
//! where it stopped, so that the next slice goes on from there. Level order
//! is the order of a topic's levels compared one by one (`a` < `a/b` <
//! `a-b`), which is the trie's own order; the cursor holds levels, not a
//! node, so topics stored or cleared between slices never leave it dangling.

use std::ops::Bound;

use super::{Node, Retained, RetainedStore};
use crate::topic::{TopicFilter, TopicName};

/// Where a filter's walk stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cursor {
    #[default]
    Start,
    /// The levels of the first node not yet looked at.
    At(Vec<Box<str>>),
    Done,
}

impl Cursor {
    /// Whether `topic` is still ahead of the walk: its message, if it has
    /// one then, is yet to be found.
    pub fn is_before(&self, topic: &TopicName) -> bool {
        match self {
            Cursor::Start => true,
            Cursor::At(levels) => topic.levels().cmp(levels.iter().map(|l| &**l)).is_ge(),
            Cursor::Done => false,
        }
    }

    /// Bytes it holds, for the census of what backlogs cost.
    pub fn weight(&self) -> usize {
        match self {
            Cursor::At(levels) => levels.iter().map(|l| l.len() + 16).sum(),
            Cursor::Start | Cursor::Done => 0,
        }
    }
}

/// What to do with a message a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand it out.
    Take,
    /// Pass over it (expired, or already sent).
    Skip,
    /// Stop before it: no room for it now; the next slice starts with it.
    Stop,
}

/// A message a walk handed out.
pub type Found = (TopicName, Retained);

impl RetainedStore {
    /// Goes on with `filter`'s walk from `cursor`, looking at `visits` trie
    /// nodes at most (those on the way back to the cursor are free: a
    /// topic's depth), and appends to `out` each message `decide` takes.
    /// Leaves `cursor` where it stopped. Returns the nodes looked at.
    pub fn walk(
        &mut self,
        filter: &TopicFilter,
        cursor: &mut Cursor,
        visits: usize,
        decide: impl FnMut(&TopicName, &Retained) -> Decision,
        out: &mut Vec<Found>,
    ) -> usize {
        let from = match cursor {
            Cursor::Start => None,
            Cursor::At(levels) => Some(levels.iter().map(|l| &**l).collect::<Vec<_>>()),
            Cursor::Done => return 0,
        };
        let filter: Vec<&str> = filter.levels().collect();
        let mut walker = Walker {
            filter: &filter,
            path: Vec::new(),
            visits_left: visits,
            visited: 0,
            decide,
            out,
            stopped: None,
        };
        walker.visit(&self.root, from.as_deref(), false);
        let visited = walker.visited;
        *cursor = walker.stopped.map_or(Cursor::Done, Cursor::At);
        self.visited += visited as u64;
        visited
    }
}

struct Walker<'a, 'o, F> {
    filter: &'a [&'a str],
    /// Levels from the root to the node being looked at.
    path: Vec<&'a str>,
    visits_left: usize,
    visited: usize,
    decide: F,
    out: &'o mut Vec<Found>,
    /// Where the walk stopped, if it did before the end.
    stopped: Option<Vec<Box<str>>>,
}

impl<'a, F: FnMut(&TopicName, &Retained) -> Decision> Walker<'a, '_, F> {
    /// Looks at `node` and below it; false once the walk has stopped.
    /// `from` is the rest of the cursor's levels below this node: `Some`
    /// and not empty while this node is an ancestor of where the walk
    /// resumes, so it is not looked at again. `rest` is true below a `#`.
    fn visit(&mut self, node: &'a Node, from: Option<&[&str]>, rest: bool) -> bool {
        let depth = self.path.len();
        let filter_level = self.filter.get(depth).copied();
        let rest_here = rest || filter_level == Some("#");
        if !matches!(from, Some([_, ..])) {
            if self.visits_left == 0 {
                return self.stop();
            }
            self.visits_left -= 1;
            self.visited += 1;
            let matches = rest_here || (depth > 0 && depth == self.filter.len());
            if let Some(stored) = node.message.as_ref().filter(|_| matches) {
                match (self.decide)(&stored.topic, &stored.retained) {
                    Decision::Take => self
                        .out
                        .push((stored.topic.clone(), stored.retained.clone())),
                    Decision::Skip => {}
                    Decision::Stop => return self.stop(),
                }
            }
        }
        // [MQTT-4.7.2-1]: a leading wildcard does not match `$` topics.
        let no_dollar = depth == 0;
        let (resume, below) = match from {
            Some([level, below @ ..]) => (Some(*level), below),
            _ => (None, &[][..]),
        };
        match filter_level {
            _ if rest_here => self.children(node, resume, below, no_dollar, true),
            Some("+") => self.children(node, resume, below, no_dollar, false),
            Some(literal) => match node.children.get_key_value(literal) {
                Some((key, child)) => match resume.map(|r| literal.cmp(r)) {
                    Some(std::cmp::Ordering::Less) => true,
                    Some(std::cmp::Ordering::Equal) => self.child(key, child, Some(below), false),
                    _ => self.child(key, child, None, false),
                },
                None => true,
            },
            None => true,
        }
    }

    /// Every child of `node`, in order, from `resume` on if the walk
    /// resumes below this node.
    fn children(
        &mut self,
        node: &'a Node,
        resume: Option<&str>,
        below: &[&str],
        no_dollar: bool,
        rest: bool,
    ) -> bool {
        let wanted = |key: &str| !(no_dollar && key.starts_with('$'));
        let later = match resume {
            Some(resume) => {
                if let Some((key, child)) = node.children.get_key_value(resume) {
                    if wanted(key) && !self.child(key, child, Some(below), rest) {
                        return false;
                    }
                }
                node.children
                    .range::<str, _>((Bound::Excluded(resume), Bound::Unbounded))
            }
            None => node.children.range::<str, _>(..),
        };
        for (key, child) in later {
            if wanted(key) && !self.child(key, child, None, rest) {
                return false;
            }
        }
        true
    }

    fn child(&mut self, key: &'a str, child: &'a Node, from: Option<&[&str]>, rest: bool) -> bool {
        self.path.push(key);
        let go_on = self.visit(child, from, rest);
        self.path.pop();
        go_on
    }

    fn stop(&mut self) -> bool {
        self.stopped = Some(self.path.iter().map(|l| Box::from(*l)).collect());
        false
    }
}
