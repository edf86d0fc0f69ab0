//! How a record is laid out in a value of the store. A message, a will and a
//! retained message are kept as the MQTT 5.0 PUBLISH our codec writes, so
//! that their topic, payload and properties have one encoding, checked by
//! the same decoder that checks clients; the fields around it are fixed
//! width. Times are milliseconds since the Unix epoch (`Clock`), so that
//! time the broker was down counts.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;

use crate::broker::{Granted, Message, Published, Retained, SessionRecord, Stored};
use crate::codec::{
    decode, encode_publish_as, DecodeOptions, LastWill, Packet, PacketId, Property,
    ProtocolVersion, Publish, QoS, RetainHandling, SubscriptionOptions,
};
use crate::topic::TopicName;

/// The broker's clock (milliseconds since it started) against the wall
/// clock, for deadlines that must outlast a restart.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall-clock milliseconds at the broker's 0.
    pub epoch_ms: u64,
}

impl Clock {
    fn wall(self, at: u64) -> u64 {
        self.epoch_ms.saturating_add(at)
    }

    fn broker(self, wall: u64) -> u64 {
        wall.saturating_sub(self.epoch_ms)
    }
}

/// Why a stored value could not be read.
pub type Invalid = String;

/// Writes a record into a buffer that the store reuses from one record
/// to the next: a commit writes hundreds, and growing a fresh buffer for
/// each was a tenth of the store thread's time.
#[derive(Default)]
struct Writer(BytesMut);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.extend_from_slice(&[v]);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn time(&mut self, clock: Clock, at: Option<u64>) -> &mut Self {
        // 0 is "none": no deadline falls on the epoch.
        self.u64(at.map_or(0, |at| clock.wall(at).max(1)))
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("values are under 4 GiB");
        self.u32(len);
        self.0.extend_from_slice(v);
        self
    }
    /// The packet id is a placeholder: ids belong to a flow, kept apart.
    /// Laid out as `bytes` would, its length patched in once it is known.
    fn publish(&mut self, publish: &Publish) -> &mut Self {
        let id = (publish.qos != QoS::AtMostOnce).then(|| PacketId::new(1).expect("1"));
        let at = self.0.len();
        self.u32(0);
        encode_publish_as(publish, id, &mut self.0);
        let len = u32::try_from(self.0.len() - at - 4).expect("values are under 4 GiB");
        self.0[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if self.0.len() < n {
            return Err("record is shorter than its fields".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Invalid> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, Invalid> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn time(&mut self, clock: Clock) -> Result<Option<u64>, Invalid> {
        let wall = self.u64()?;
        Ok((wall != 0).then(|| clock.broker(wall)))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Invalid> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn publish(&mut self) -> Result<Publish, Invalid> {
        let mut buf = BytesMut::from(self.bytes()?);
        let publish = Self::decode(&mut buf)?;
        Ok(Publish {
            packet_id: None,
            ..publish
        })
    }

    fn decode(buf: &mut BytesMut) -> Result<Publish, Invalid> {
        let options = DecodeOptions {
            version: ProtocolVersion::V5,
            ..DecodeOptions::default()
        };
        match decode(buf, &options) {
            Ok(Some(Packet::Publish(publish))) if buf.is_empty() => Ok(publish),
            Ok(_) => Err("stored message is not one PUBLISH".into()),
            Err(error) => Err(format!("stored message: {error}")),
        }
    }
    fn end(&self) -> Result<(), Invalid> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err("record is longer than its fields".into()),
        }
    }
}

fn qos(v: u8) -> Result<QoS, Invalid> {
    QoS::from_u8(v).ok_or_else(|| format!("QoS {v}"))
}

fn packet_id(v: u16) -> Result<PacketId, Invalid> {
    PacketId::new(v).ok_or_else(|| "packet id 0".to_owned())
}

fn version(v: u8) -> Result<ProtocolVersion, Invalid> {
    match v {
        4 => Ok(ProtocolVersion::V311),
        5 => Ok(ProtocolVersion::V5),
        _ => Err(format!("protocol level {v}")),
    }
}

/// A will, as the PUBLISH it becomes (its delay is the record's deadline).
fn will_publish(will: &LastWill) -> Publish {
    let mut properties = will.properties.clone();
    properties.retain(|p| !matches!(p, Property::WillDelayInterval(_)));
    Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic.clone(),
        packet_id: None,
        payload: will.payload.clone(),
        properties,
    }
}

pub fn session(record: &SessionRecord, clock: Clock) -> BytesMut {
    let mut w = Writer::default();
    let level = match record.version {
        ProtocolVersion::V311 => 4,
        ProtocolVersion::V5 => 5,
    };
    w.u8(level)
        .u32(record.expiry_secs)
        .u8(u8::from(record.asked_no_expiry))
        .time(clock, record.expires_at)
        .bytes(record.client_id.as_bytes())
        .u8(u8::from(record.owner.is_some()))
        .bytes(record.owner.as_deref().unwrap_or("").as_bytes());
    match &record.delayed_will {
        Some((due, will)) => w.time(clock, Some(*due)).publish(&will_publish(will)),
        None => w.u64(0),
    };
    w.0
}

pub fn read_session(value: &[u8], clock: Clock) -> Result<SessionRecord, Invalid> {
    let mut r = Reader(value);
    let version = version(r.u8()?)?;
    let expiry_secs = r.u32()?;
    let asked_no_expiry = r.u8()? != 0;
    let expires_at = r.time(clock)?;
    let client_id = String::from_utf8(r.bytes()?.to_vec()).map_err(|e| e.to_string())?;
    let has_owner = r.u8()? != 0;
    let owner = std::str::from_utf8(r.bytes()?).map_err(|e| e.to_string())?;
    let delayed_will = match r.time(clock)? {
        Some(due) => {
            let p = r.publish()?;
            let will = LastWill {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                properties: p.properties,
            };
            Some((due, will))
        }
        None => None,
    };
    r.end()?;
    Ok(SessionRecord {
        client_id,
        owner: has_owner.then(|| owner.into()),
        version,
        expiry_secs,
        asked_no_expiry,
        expires_at,
        delayed_will,
    })
}

pub fn subscription(sub: &Granted) -> BytesMut {
    let o = sub.options;
    let options = o.qos as u8
        | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | (o.retain_handling as u8) << 4;
    let mut w = Writer::default();
    w.u8(options).u8(u8::from(sub.id.is_some()));
    w.u32(sub.id.unwrap_or(0));
    w.0
}

pub fn read_subscription(value: &[u8]) -> Result<Granted, Invalid> {
    let mut r = Reader(value);
    let options = r.u8()?;
    let has_id = r.u8()? != 0;
    let id = r.u32()?;
    r.end()?;
    let retain_handling = match options >> 4 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscription,
        2 => RetainHandling::Never,
        v => return Err(format!("retain handling {v}")),
    };
    Ok(Granted {
        options: SubscriptionOptions {
            qos: qos(options & 3)?,
            no_local: options & 4 != 0,
            retain_as_published: options & 8 != 0,
            retain_handling,
        },
        id: has_id.then_some(id),
    })
}

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const RELEASED: u8 = 2;

/// Appends the record of `stored` to `buf`.
pub fn message(stored: &Stored, clock: Clock, buf: &mut BytesMut) {
    let mut w = Writer(std::mem::take(buf));
    let (stage, id, message) = match stored {
        Stored::Queued(m) => (QUEUED, m.resend_id, Some(m)),
        Stored::Sent(id, m) => (SENT, Some(*id), Some(m)),
        Stored::Released(id) => (RELEASED, Some(*id), None),
    };
    w.u8(stage).u16(id.map_or(0, PacketId::get));
    if let Some(m) = message {
        w.time(clock, m.expires_at)
            .u8(m.published.qos as u8)
            .u8(u8::from(m.published.retain))
            .publish(&m.publish);
    }
    *buf = w.0;
}

/// Whether a stored message is one not yet sent, from its first byte.
pub fn is_queued(value: &[u8]) -> bool {
    value.first() == Some(&QUEUED)
}

/// About what a stored message weighs in memory (`Publish::weight`),
/// without decoding it: its stored bytes and the struct that holds it.
pub fn weight_of(value: &[u8]) -> usize {
    value.len() + std::mem::size_of::<Publish>()
}

pub fn read_message(value: &[u8], clock: Clock) -> Result<Stored, Invalid> {
    let mut r = Reader(value);
    let stage = r.u8()?;
    let id = r.u16()?;
    if stage == RELEASED {
        r.end()?;
        return Ok(Stored::Released(packet_id(id)?));
    }
    let expires_at = r.time(clock)?;
    let published = Published {
        qos: qos(r.u8()?)?,
        retain: r.u8()? != 0,
    };
    let publish = r.publish()?;
    r.end()?;
    let resend_id = match id {
        0 => None,
        id => Some(packet_id(id)?),
    };
    let message = Message {
        publish: Arc::new(publish),
        expires_at,
        // Groups are numbered anew at each start: a message rerouted when
        // its session ends goes to the group's filter, not its old number.
        group: None,
        resend_id: resend_id.filter(|_| stage == QUEUED),
        published,
        seq: 0,
    };
    match (stage, resend_id) {
        (QUEUED, _) => Ok(Stored::Queued(message)),
        (SENT, Some(id)) => Ok(Stored::Sent(id, message)),
        _ => Err(format!("message stage {stage} with packet id {id}")),
    }
}

pub fn retained(topic: &TopicName, retained: &Retained, clock: Clock) -> BytesMut {
    let publish = Publish {
        dup: false,
        qos: retained.qos,
        retain: true,
        topic: topic.clone(),
        packet_id: None,
        payload: retained.payload.clone(),
        properties: retained.properties.clone(),
    };
    let mut w = Writer::default();
    w.time(clock, retained.expires_at).publish(&publish);
    w.0
}

pub fn read_retained(value: &[u8], clock: Clock) -> Result<(TopicName, Retained), Invalid> {
    let mut r = Reader(value);
    let expires_at = r.time(clock)?;
    let publish = r.publish()?;
    r.end()?;
    let retained = Retained {
        payload: Bytes::copy_from_slice(&publish.payload),
        qos: publish.qos,
        properties: publish.properties,
        expires_at,
    };
    Ok((publish.topic, retained))
}

#[cfg(test)]
mod tests;
