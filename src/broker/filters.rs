//! A session's subscriptions, by filter. Most sessions hold one or a few:
//! for them a sorted slice of exactly their size, since a B-tree's first
//! node has room for eleven and cost an idle connection with one filter
//! about 320 bytes. Past `FEW` a B-tree, so that a session of 100,000
//! filters pays a logarithm per change, not a shift of them all.

use std::collections::BTreeMap;

use super::subscribe::Subscription;
use crate::topic::TopicFilter;

const FEW: usize = 8;

/// Read anywhere; changed only in `subscribe.rs`, each time together with
/// the index or group that finds it.
#[derive(Debug)]
pub enum Filters {
    /// Sorted by filter, at most `FEW`. A boxed slice and a boxed map fit
    /// the enum in 16 bytes, where a vector and a map inline took 32 of
    /// every session's.
    Few(Box<[(TopicFilter, Subscription)]>),
    #[allow(clippy::box_collection, reason = "one word, to fit beside `Few`")]
    Many(Box<BTreeMap<TopicFilter, Subscription>>),
}

impl Default for Filters {
    fn default() -> Filters {
        Filters::Few(Box::default())
    }
}

impl Filters {
    pub fn len(&self) -> usize {
        match self {
            Filters::Few(few) => few.len(),
            Filters::Many(many) => many.len(),
        }
    }

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (&TopicFilter, &Subscription)> + '_> {
        match self {
            Filters::Few(few) => Box::new(few.iter().map(|(f, s)| (f, s))),
            Filters::Many(many) => Box::new(many.iter()),
        }
    }

    pub fn contains(&self, filter: &TopicFilter) -> bool {
        self.get(filter).is_some()
    }

    pub(super) fn get(&self, filter: &TopicFilter) -> Option<&Subscription> {
        match self {
            Filters::Few(few) => few
                .binary_search_by(|(f, _)| f.cmp(filter))
                .ok()
                .map(|i| &few[i].1),
            Filters::Many(many) => many.get(filter),
        }
    }

    /// The filter's subscription before, if it had one.
    pub(super) fn insert(
        &mut self,
        filter: TopicFilter,
        subscription: Subscription,
    ) -> Option<Subscription> {
        let few = match self {
            Filters::Many(many) => return many.insert(filter, subscription),
            Filters::Few(few) => few,
        };
        match few.binary_search_by(|(f, _)| f.cmp(&filter)) {
            Ok(i) => Some(std::mem::replace(&mut few[i].1, subscription)),
            Err(_) if few.len() == FEW => {
                let few = std::mem::take(few).into_vec();
                let mut many: BTreeMap<_, _> = few.into_iter().collect();
                many.insert(filter, subscription);
                *self = Filters::Many(Box::new(many));
                None
            }
            Err(i) => {
                // Exactly its size: the common session never grows again.
                let mut grown = std::mem::take(few).into_vec();
                grown.reserve_exact(1);
                grown.insert(i, (filter, subscription));
                *few = grown.into_boxed_slice();
                None
            }
        }
    }

    pub(super) fn remove(&mut self, filter: &TopicFilter) -> Option<Subscription> {
        match self {
            Filters::Few(few) => {
                let i = few.binary_search_by(|(f, _)| f.cmp(filter)).ok()?;
                let mut left = std::mem::take(few).into_vec();
                let (_, subscription) = left.remove(i);
                *few = left.into_boxed_slice();
                Some(subscription)
            }
            Filters::Many(many) => many.remove(filter),
        }
    }

    /// Takes out the last filter: an ended session's are taken out one at
    /// a time, a slice per hold of the lock, without first collecting them
    /// all (`reaping.rs`).
    pub(super) fn pop_last(&mut self) -> Option<TopicFilter> {
        match self {
            Filters::Few(few) => {
                let mut left = std::mem::take(few).into_vec();
                let last = left.pop().map(|(f, _)| f);
                *few = left.into_boxed_slice();
                last
            }
            Filters::Many(many) => many.pop_last().map(|(f, _)| f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{QoS, SubscriptionOptions};

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions::qos(qos),
            id: None,
        }
    }

    /// The same answers as a B-tree through the move from few to many and
    /// back down below it.
    #[test]
    fn answers_as_a_map_would_past_few_and_back() {
        let mut filters = Filters::default();
        let mut model = BTreeMap::new();
        let name = |i: usize| TopicFilter::new(&format!("t/{}", (i * 7) % 13)).unwrap();
        for i in 0..40 {
            let (f, qos) = (name(i), [QoS::AtMostOnce, QoS::AtLeastOnce][i % 2]);
            if i % 3 == 2 {
                assert_eq!(filters.remove(&f), model.remove(&f), "remove {i}");
            } else {
                assert_eq!(
                    filters.insert(f.clone(), sub(qos)),
                    model.insert(f, sub(qos))
                );
            }
            assert_eq!(filters.len(), model.len());
            for j in 0..13 {
                assert_eq!(filters.get(&name(j)), model.get(&name(j)), "after {i}");
            }
        }
        assert!(matches!(filters, Filters::Many(_)), "went past FEW");
        let keys: Vec<_> = model.keys().rev().cloned().collect();
        let popped: Vec<_> = std::iter::from_fn(|| filters.pop_last()).collect();
        assert_eq!(popped, keys);
        assert_eq!(filters.len(), 0);
    }
}
