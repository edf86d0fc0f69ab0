//! MQTT 5.0 properties: typed values, each allowed on a fixed set of packets.
//! A packet's properties are a short list, not a struct of options: most
//! packets carry none, and an empty `Vec` costs no allocation, which matters
//! for the copies a fan-out queues.

use bytes::{BufMut, Bytes, BytesMut};

use super::user_properties::{UserProperties, USER_PROPERTY};

use crate::topic::TopicName;

/// One property. The variants are those of [MQTT-2.2.2.2], in identifier
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Property {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(String),
    ResponseTopic(TopicName),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(String),
    ServerKeepAlive(u16),
    AuthenticationMethod(String),
    AuthenticationData(Bytes),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(String),
    ServerReference(String),
    ReasonString(String),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    UserProperty(String, String),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

/// Where a property may appear. The will's properties sit in CONNECT's
/// payload and have their own set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    Connect,
    ConnAck,
    Publish,
    Will,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Property {
    pub fn id(&self) -> u8 {
        use Property::*;
        match self {
            PayloadFormatIndicator(_) => 0x01,
            MessageExpiryInterval(_) => 0x02,
            ContentType(_) => 0x03,
            ResponseTopic(_) => 0x08,
            CorrelationData(_) => 0x09,
            SubscriptionIdentifier(_) => 0x0B,
            SessionExpiryInterval(_) => 0x11,
            AssignedClientIdentifier(_) => 0x12,
            ServerKeepAlive(_) => 0x13,
            AuthenticationMethod(_) => 0x15,
            AuthenticationData(_) => 0x16,
            RequestProblemInformation(_) => 0x17,
            WillDelayInterval(_) => 0x18,
            RequestResponseInformation(_) => 0x19,
            ResponseInformation(_) => 0x1A,
            ServerReference(_) => 0x1C,
            ReasonString(_) => 0x1F,
            ReceiveMaximum(_) => 0x21,
            TopicAliasMaximum(_) => 0x22,
            TopicAlias(_) => 0x23,
            MaximumQos(_) => 0x24,
            RetainAvailable(_) => 0x25,
            UserProperty(..) => 0x26,
            MaximumPacketSize(_) => 0x27,
            WildcardSubscriptionAvailable(_) => 0x28,
            SubscriptionIdentifierAvailable(_) => 0x29,
            SharedSubscriptionAvailable(_) => 0x2A,
        }
    }

    /// Whether the spec allows this property in `context`.
    pub fn allowed_in(&self, context: PropertyContext) -> bool {
        use Property::*;
        use PropertyContext as C;
        match self {
            PayloadFormatIndicator(_)
            | MessageExpiryInterval(_)
            | ContentType(_)
            | ResponseTopic(_)
            | CorrelationData(_) => matches!(context, C::Publish | C::Will),
            SubscriptionIdentifier(_) => matches!(context, C::Publish | C::Subscribe),
            SessionExpiryInterval(_) => matches!(context, C::Connect | C::ConnAck | C::Disconnect),
            AssignedClientIdentifier(_)
            | ServerKeepAlive(_)
            | ResponseInformation(_)
            | MaximumQos(_)
            | RetainAvailable(_)
            | WildcardSubscriptionAvailable(_)
            | SubscriptionIdentifierAvailable(_)
            | SharedSubscriptionAvailable(_) => context == C::ConnAck,
            AuthenticationMethod(_) | AuthenticationData(_) => {
                matches!(context, C::Connect | C::ConnAck | C::Auth)
            }
            RequestProblemInformation(_) | RequestResponseInformation(_) => context == C::Connect,
            WillDelayInterval(_) => context == C::Will,
            ServerReference(_) => matches!(context, C::ConnAck | C::Disconnect),
            ReasonString(_) => matches!(
                context,
                C::ConnAck | C::Ack | C::SubAck | C::UnsubAck | C::Disconnect | C::Auth
            ),
            ReceiveMaximum(_) | TopicAliasMaximum(_) | MaximumPacketSize(_) => {
                matches!(context, C::Connect | C::ConnAck)
            }
            TopicAlias(_) => context == C::Publish,
            UserProperty(..) => true,
        }
    }

    /// The heap it holds beyond its own size.
    fn held_bytes(&self) -> usize {
        use Property::*;
        match self {
            ContentType(s)
            | AssignedClientIdentifier(s)
            | AuthenticationMethod(s)
            | ResponseInformation(s)
            | ServerReference(s)
            | ReasonString(s) => s.capacity(),
            ResponseTopic(t) => t.as_str().len(),
            CorrelationData(b) | AuthenticationData(b) => b.len(),
            UserProperty(k, v) => k.capacity() + v.capacity(),
            _ => 0,
        }
    }

    /// User Property may repeat anywhere; Subscription Identifier may repeat
    /// in a PUBLISH, one per matching subscription [MQTT-3.3.4-3].
    pub fn may_repeat(&self, context: PropertyContext) -> bool {
        match self {
            Property::UserProperty(..) => true,
            Property::SubscriptionIdentifier(_) => context == PropertyContext::Publish,
            _ => false,
        }
    }
}

/// A packet's properties. User Properties, the only ones a client may send
/// without number, are kept apart as their wire bytes: a packet of a
/// million small ones once took fifteen times its size as `String`s, and
/// that again for each session it was queued for; as bytes they take what
/// they took on the wire, shared by every copy. Their order among
/// themselves is kept, as the spec asks [MQTT-3.3.2-18]; they are written
/// after the others.
///
/// Boxed, and `None` while there are none, as for most messages: a QoS 1
/// copy of a message is moved several times on its way to a subscriber
/// (the broker's effects, their sort by connection, the session's window),
/// and an empty list and empty bytes in place made every copy 48 bytes
/// larger.
#[derive(Clone, Default)]
pub struct Properties {
    inner: Option<Box<Inner>>,
}

#[derive(Clone, Default)]
struct Inner {
    /// Every property but User Properties, in the order decoded or added.
    list: Vec<Property>,
    /// User Properties as on the wire (identifier, key, value, ...), their
    /// strings checked when decoded or added.
    user: Bytes,
}

/// What `user_bytes` lends when there are none.
static NO_BYTES: Bytes = Bytes::new();

/// None boxed and an empty box are the same properties.
impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        self.others() == other.others() && self.user_bytes() == other.user_bytes()
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self
            .user_properties()
            .map(|(k, v)| Property::UserProperty(k.into(), v.into()));
        f.debug_list()
            .entries(self.others().iter().cloned().chain(user))
            .finish()
    }
}

impl From<Vec<Property>> for Properties {
    fn from(list: Vec<Property>) -> Properties {
        list.into_iter().collect()
    }
}

/// The first property of one variant: `first!(self, ReceiveMaximum)`.
macro_rules! first {
    ($self:ident, $variant:ident) => {
        $self.others().iter().find_map(|p| match p {
            Property::$variant(v) => Some(v),
            _ => None,
        })
    };
}

impl Properties {
    pub fn new() -> Properties {
        Properties::default()
    }

    pub fn is_empty(&self) -> bool {
        self.others().is_empty() && self.user_bytes().is_empty()
    }

    fn inner_mut(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(Box::default)
    }

    /// Drops the box once nothing is in it.
    fn drop_if_empty(&mut self) {
        if self.is_empty() {
            self.inner = None;
        }
    }

    /// Every property, User Properties last.
    pub fn iter(&self) -> impl Iterator<Item = Property> + '_ {
        let user = self
            .user_properties()
            .map(|(k, v)| Property::UserProperty(k.into(), v.into()));
        self.others().iter().cloned().chain(user)
    }

    /// Every property but User Properties.
    pub fn others(&self) -> &[Property] {
        self.inner.as_ref().map_or(&[], |inner| &inner.list)
    }

    /// User Properties as on the wire.
    pub fn user_bytes(&self) -> &Bytes {
        self.inner.as_ref().map_or(&NO_BYTES, |inner| &inner.user)
    }

    pub fn push(&mut self, property: Property) {
        match property {
            Property::UserProperty(key, value) => {
                let inner = self.inner_mut();
                let mut user = BytesMut::from(std::mem::take(&mut inner.user));
                user.put_u8(USER_PROPERTY);
                for s in [key, value] {
                    let len = u16::try_from(s.len()).expect("a property string fits a u16 length");
                    user.put_u16(len);
                    user.put_slice(s.as_bytes());
                }
                inner.user = user.freeze();
            }
            other => self.inner_mut().list.push(other),
        }
    }

    /// User Properties decoded (and checked) by the decoder, as a slice of
    /// their packet where they were contiguous in it.
    pub(super) fn set_user_bytes(&mut self, user: Bytes) {
        self.inner_mut().user = user;
        self.drop_if_empty();
    }

    /// Keeps the properties other than User Properties for which `keep` is
    /// true; User Properties are always kept.
    pub fn retain(&mut self, keep: impl FnMut(&Property) -> bool) {
        if let Some(inner) = &mut self.inner {
            inner.list.retain(keep);
        }
        self.drop_if_empty();
    }

    /// Copies what is a slice of a larger buffer, so that keeping these
    /// does not keep that buffer.
    pub fn unshare(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.user = Bytes::copy_from_slice(&inner.user);
        }
    }

    /// About the memory they hold: the list and its strings, and the
    /// User Properties' bytes.
    pub fn held_bytes(&self) -> usize {
        let Some(inner) = &self.inner else {
            return 0;
        };
        let strings: usize = inner.list.iter().map(Property::held_bytes).sum();
        std::mem::size_of::<Inner>()
            + inner.list.capacity() * std::mem::size_of::<Property>()
            + strings
            + inner.user.len()
    }

    pub fn session_expiry_interval(&self) -> Option<u32> {
        first!(self, SessionExpiryInterval).copied()
    }

    pub fn receive_maximum(&self) -> Option<u16> {
        first!(self, ReceiveMaximum).copied()
    }

    pub fn maximum_packet_size(&self) -> Option<u32> {
        first!(self, MaximumPacketSize).copied()
    }

    pub fn topic_alias_maximum(&self) -> Option<u16> {
        first!(self, TopicAliasMaximum).copied()
    }

    pub fn topic_alias(&self) -> Option<u16> {
        first!(self, TopicAlias).copied()
    }

    pub fn message_expiry_interval(&self) -> Option<u32> {
        first!(self, MessageExpiryInterval).copied()
    }

    pub fn payload_format_indicator(&self) -> Option<u8> {
        first!(self, PayloadFormatIndicator).copied()
    }

    pub fn will_delay_interval(&self) -> Option<u32> {
        first!(self, WillDelayInterval).copied()
    }

    pub fn request_problem_information(&self) -> Option<u8> {
        first!(self, RequestProblemInformation).copied()
    }

    pub fn request_response_information(&self) -> Option<u8> {
        first!(self, RequestResponseInformation).copied()
    }

    pub fn authentication_method(&self) -> Option<&str> {
        first!(self, AuthenticationMethod).map(String::as_str)
    }

    pub fn reason_string(&self) -> Option<&str> {
        first!(self, ReasonString).map(String::as_str)
    }

    pub fn assigned_client_identifier(&self) -> Option<&str> {
        first!(self, AssignedClientIdentifier).map(String::as_str)
    }

    pub fn server_keep_alive(&self) -> Option<u16> {
        first!(self, ServerKeepAlive).copied()
    }

    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + '_ {
        self.others().iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(id) => Some(*id),
            _ => None,
        })
    }

    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        UserProperties(self.user_bytes())
    }
}

impl Extend<Property> for Properties {
    fn extend<I: IntoIterator<Item = Property>>(&mut self, iter: I) {
        for property in iter {
            self.push(property);
        }
    }
}

impl FromIterator<Property> for Properties {
    fn from_iter<I: IntoIterator<Item = Property>>(iter: I) -> Self {
        let mut properties = Properties::new();
        properties.extend(iter);
        properties
    }
}
