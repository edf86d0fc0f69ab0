//! Shared-subscription groups (`$share/{group}/{filter}`): who is in each,
//! and whose turn it is. A group lives exactly as long as it has members, so
//! the groups, their ids and their index entries change only together, here.

use std::collections::BTreeMap;

use super::subscribe::Subscription;
use super::{GroupId, SessionId, SubscriptionIndex};
use crate::topic::{TopicFilter, TopicName};

/// The sessions subscribed to one `$share/{group}/{filter}`; each message
/// goes to one of them, in turn.
#[derive(Debug, Default)]
struct Group {
    members: BTreeMap<SessionId, Subscription>,
    /// The member that got the last message.
    cursor: Option<SessionId>,
}

/// `$share/{group}/{filter}` split into its group name and filter; `None` for
/// a filter that is not shared, `Some(Err)` for one that is malformed.
pub fn parse_shared(filter: &TopicFilter) -> Option<Result<(&str, TopicFilter), ()>> {
    let rest = filter.as_str().strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Some(Err(()));
    }
    Some(TopicFilter::new(inner).map(|f| (group, f)).map_err(|_| ()))
}

/// A shared filter a session holds, split into its group name and filter
/// without a copy: it was checked when it was granted, so `None` means it
/// is not shared.
pub fn split_held(filter: &TopicFilter) -> Option<(&str, &str)> {
    filter.as_str().strip_prefix("$share/")?.split_once('/')
}

#[derive(Debug, Default)]
pub struct SharedGroups {
    /// Groups by their filter.
    index: SubscriptionIndex<GroupId, ()>,
    groups: BTreeMap<GroupId, Group>,
    /// By group name, then filter: found by `&str`s, so that a member
    /// leaves with no key allocated (a slice of a session's end is 16,384
    /// levels of them).
    ids: BTreeMap<String, BTreeMap<TopicFilter, GroupId>>,
    next_group: u64,
}

impl SharedGroups {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Members of all groups: each is one of a session's subscriptions.
    pub fn members(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }

    /// Adds or replaces the session's membership of group `name` on `filter`.
    pub fn join(&mut self, sid: SessionId, name: &str, filter: TopicFilter, sub: Subscription) {
        let found = self.ids.get(name).and_then(|ids| ids.get(&filter));
        let gid = match found {
            Some(&gid) => gid,
            None => {
                self.next_group += 1;
                let gid = GroupId(self.next_group);
                self.index.insert(&filter, gid, ());
                match self.ids.get_mut(name) {
                    Some(ids) => ids.insert(filter, gid),
                    None => self
                        .ids
                        .insert(name.to_owned(), BTreeMap::from([(filter, gid)]))
                        .and(None),
                };
                gid
            }
        };
        self.groups.entry(gid).or_default().members.insert(sid, sub);
    }

    /// Takes the session out of group `name` on `filter`; a group left
    /// empty is gone.
    pub fn leave(&mut self, sid: SessionId, name: &str, filter: &str) {
        let Some(ids) = self.ids.get_mut(name) else {
            return;
        };
        let Some(&gid) = ids.get(filter) else {
            return;
        };
        let group = self
            .groups
            .get_mut(&gid)
            .expect("group ids point at groups");
        group.members.remove(&sid);
        if group.members.is_empty() {
            self.groups.remove(&gid);
            let (filter, _) = ids.remove_entry(filter).expect("found above");
            self.index.remove(&filter, gid);
            if ids.is_empty() {
                self.ids.remove(name);
            }
        }
    }

    /// Appends the groups whose filter matches `topic`; returns the work
    /// it took (`SubscriptionIndex::matches`).
    pub fn matching(&self, topic: &TopicName, out: &mut Vec<(GroupId, ())>) -> u64 {
        self.index.matches(topic, out)
    }

    pub fn len_of(&self, group: GroupId) -> usize {
        self.groups[&group].members.len()
    }

    /// What `member` subscribed to the group with.
    pub fn subscription(&self, group: GroupId, member: SessionId) -> Subscription {
        self.groups[&group].members[&member]
    }

    /// The next member of `group` in turn that `may` have the message (its
    /// ACL lets it read the topic), preferring one that is online.
    pub fn pick(
        &mut self,
        group: GroupId,
        may: impl Fn(SessionId) -> bool,
        online: impl Fn(SessionId) -> bool,
    ) -> Option<SessionId> {
        let group = self.groups.get_mut(&group)?;
        let after = group.cursor;
        let in_turn = || {
            let later = group
                .members
                .range(after.map_or(SessionId(0), |c| SessionId(c.0 + 1))..);
            let members = later.chain(group.members.range(..));
            members.map(|(sid, _)| *sid).filter(|sid| may(*sid))
        };
        let chosen = in_turn()
            .find(|sid| online(*sid))
            .or_else(|| in_turn().next())?;
        group.cursor = Some(chosen);
        Some(chosen)
    }
}
