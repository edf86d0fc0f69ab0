//! Where the encoder's fields go. A packet's remaining length comes before
//! its body, so each body is laid out twice: once into a `Count` to learn its
//! length, once into the buffer. Writing both through one `Sink` keeps each
//! layout in a single function, so the length cannot drift from the bytes.
//! Both sinks are generic parameters, not trait objects: counting compiles
//! down to the sum of the field sizes.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::aliases_sent::ALIAS_PROPERTY_BYTES;
use super::{Properties, Property};

/// The wire's primitive fields, in MQTT's byte order (big-endian).
pub(super) trait Sink: Sized {
    fn u8(&mut self, value: u8);
    fn u16(&mut self, value: u16);
    fn u32(&mut self, value: u32);
    fn slice(&mut self, bytes: &[u8]);
    /// A Variable Byte Integer [MQTT-1.5.5].
    fn varint(&mut self, value: usize);

    /// A block whose varint length of `len` comes first, such as the
    /// properties. A `Count` needs only `len`, so it skips `write`: the
    /// block is not counted twice.
    fn prefixed(&mut self, len: usize, write: impl FnOnce(&mut Self));

    /// A two-byte length, then the bytes [MQTT-1.5.6].
    #[inline]
    fn binary(&mut self, bytes: &[u8]) {
        let len = u16::try_from(bytes.len()).expect("strings are validated to fit a u16 length");
        self.u16(len);
        self.slice(bytes);
    }

    /// Laid out as binary data; the validation of `Packet` made it fit.
    #[inline]
    fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

    /// Bytes a packet shares with others (a payload, User Properties):
    /// copied like any slice, unless the sink can keep them as they are.
    #[inline]
    fn shared(&mut self, bytes: &Bytes) {
        self.slice(bytes);
    }

    /// A 5.0 properties block: its length, then each property.
    #[inline]
    fn properties(&mut self, props: &Properties) {
        self.properties_aliased(props, None);
    }

    /// As `properties`, led by a Topic Alias that `props` do not hold.
    #[inline]
    fn properties_aliased(&mut self, props: &Properties, alias: Option<u16>) {
        let alias_len = alias.map_or(0, |_| ALIAS_PROPERTY_BYTES);
        self.prefixed(properties_len(props) + alias_len, |sink| {
            if let Some(alias) = alias {
                property(sink, &Property::TopicAlias(alias));
            }
            for p in props.others() {
                property(sink, p);
            }
            sink.shared(props.user_bytes());
        });
    }
}

/// Counts the bytes a layout would write.
pub(super) struct Count(usize);

/// How many bytes `layout` writes.
#[inline]
pub(super) fn count(layout: impl FnOnce(&mut Count)) -> usize {
    let mut sink = Count(0);
    layout(&mut sink);
    sink.0
}

impl Sink for Count {
    #[inline]
    fn u8(&mut self, _: u8) {
        self.0 += 1;
    }

    #[inline]
    fn u16(&mut self, _: u16) {
        self.0 += 2;
    }

    #[inline]
    fn u32(&mut self, _: u32) {
        self.0 += 4;
    }

    #[inline]
    fn slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    #[inline]
    fn varint(&mut self, value: usize) {
        self.0 += varint_len(value);
    }

    #[inline]
    fn prefixed(&mut self, len: usize, _: impl FnOnce(&mut Self)) {
        self.0 += varint_len(len) + len;
    }
}

impl Sink for BytesMut {
    #[inline]
    fn u8(&mut self, value: u8) {
        self.put_u8(value);
    }

    #[inline]
    fn u16(&mut self, value: u16) {
        self.put_u16(value);
    }

    #[inline]
    fn u32(&mut self, value: u32) {
        self.put_u32(value);
    }

    #[inline]
    fn slice(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }

    #[inline]
    fn varint(&mut self, mut value: usize) {
        loop {
            let mut byte = (value % 128) as u8;
            value /= 128;
            if value > 0 {
                byte |= 0x80;
            }
            self.put_u8(byte);
            if value == 0 {
                return;
            }
        }
    }

    #[inline]
    fn prefixed(&mut self, len: usize, write: impl FnOnce(&mut Self)) {
        self.varint(len);
        write(self);
    }
}

/// Lays a packet out in `buf`, except for shared bytes of `SHARED_MIN_BYTES`
/// or more: what `buf` holds so far goes to `parts`, then those bytes as
/// they are. A 16 MB payload is then written from where it already is,
/// not copied (and paged in) once more for each connection it goes to.
pub(super) struct Sharing<'a> {
    pub buf: &'a mut BytesMut,
    pub parts: &'a mut VecDeque<Bytes>,
}

/// Below this, a copy costs less than a part of its own: a write each.
pub const SHARED_MIN_BYTES: usize = 64 * 1024;

impl Sink for Sharing<'_> {
    #[inline]
    fn u8(&mut self, value: u8) {
        self.buf.u8(value);
    }

    #[inline]
    fn u16(&mut self, value: u16) {
        self.buf.u16(value);
    }

    #[inline]
    fn u32(&mut self, value: u32) {
        self.buf.u32(value);
    }

    #[inline]
    fn slice(&mut self, bytes: &[u8]) {
        self.buf.slice(bytes);
    }

    #[inline]
    fn varint(&mut self, value: usize) {
        self.buf.varint(value);
    }

    #[inline]
    fn prefixed(&mut self, len: usize, write: impl FnOnce(&mut Self)) {
        self.buf.varint(len);
        write(self);
    }

    fn shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_MIN_BYTES {
            return self.buf.slice(bytes);
        }
        if !self.buf.is_empty() {
            self.parts.push_back(self.buf.split().freeze());
        }
        self.parts.push_back(bytes.clone());
    }
}

pub(super) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

impl Properties {
    /// Their size on the wire, without the length prefix: what a queued
    /// message's properties weigh.
    pub fn wire_len(&self) -> usize {
        properties_len(self)
    }
}

fn properties_len(props: &Properties) -> usize {
    count(|sink| props.others().iter().for_each(|p| property(sink, p))) + props.user_bytes().len()
}

/// One property: its identifier, then its value [MQTT-2.2.2.2].
fn property<S: Sink>(sink: &mut S, property: &Property) {
    use Property::*;
    sink.u8(property.id());
    match property {
        PayloadFormatIndicator(v)
        | RequestProblemInformation(v)
        | RequestResponseInformation(v)
        | MaximumQos(v)
        | RetainAvailable(v)
        | WildcardSubscriptionAvailable(v)
        | SubscriptionIdentifierAvailable(v)
        | SharedSubscriptionAvailable(v) => sink.u8(*v),
        ServerKeepAlive(v) | ReceiveMaximum(v) | TopicAliasMaximum(v) | TopicAlias(v) => {
            sink.u16(*v)
        }
        MessageExpiryInterval(v)
        | SessionExpiryInterval(v)
        | WillDelayInterval(v)
        | MaximumPacketSize(v) => sink.u32(*v),
        SubscriptionIdentifier(v) => sink.varint(*v as usize),
        ContentType(s)
        | AssignedClientIdentifier(s)
        | AuthenticationMethod(s)
        | ResponseInformation(s)
        | ServerReference(s)
        | ReasonString(s) => sink.string(s),
        ResponseTopic(t) => sink.string(t.as_str()),
        CorrelationData(b) | AuthenticationData(b) => sink.binary(b),
        UserProperty(k, v) => {
            sink.string(k);
            sink.string(v);
        }
    }
}
