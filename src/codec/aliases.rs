//! The topic aliases that a 5.0 client sets on one connection
//! [MQTT-3.3.2-7..12]. The decoder resolves them as it reads, so that every
//! decoded PUBLISH names its topic; they last as long as the connection.

use std::collections::BTreeMap;

use super::DecodeError;
use crate::topic::TopicName;

#[derive(Debug, Default)]
pub struct TopicAliases {
    /// The Topic Alias Maximum we announced: 0 allows none.
    max: u16,
    topics: BTreeMap<u16, TopicName>,
}

impl TopicAliases {
    pub fn new(max: u16) -> TopicAliases {
        TopicAliases {
            max,
            topics: BTreeMap::new(),
        }
    }

    /// The topic a PUBLISH with `topic` (empty when the alias stands in for
    /// it) and Topic Alias `alias` is sent to; a named topic sets the alias.
    pub(super) fn resolve(&mut self, topic: &str, alias: u16) -> Result<TopicName, DecodeError> {
        if alias > self.max {
            return Err(DecodeError::TopicAliasInvalid(alias));
        }
        if topic.is_empty() {
            return self
                .topics
                .get(&alias)
                .cloned()
                .ok_or(DecodeError::TopicAliasUnknown(alias));
        }
        let name = TopicName::new(topic)?;
        self.topics.insert(alias, name.clone());
        Ok(name)
    }
}
