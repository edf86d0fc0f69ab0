//! The fixed header a decoder reads first: the packet type and its flags,
//! checked on the first byte alone so that garbage is refused at once, and
//! the remaining length.

use super::DecodeError;

/// The variable-length body size: seven bits a byte, at most four bytes.
/// Returns the length and how many bytes encoded it.
pub(super) fn remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate() {
        if i == 4 {
            return Err(DecodeError::RemainingLengthTooLong);
        }
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::RemainingLengthTooLong);
    }
    Ok(None)
}

pub(super) fn kind_of(packet_type: u8) -> &'static str {
    const KINDS: [&str; 16] = [
        "reserved",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    KINDS[usize::from(packet_type & 0x0f)]
}

/// Checked on the first byte alone, so garbage is refused at once.
pub(super) fn check_fixed_flags(first: u8) -> Result<(), DecodeError> {
    let packet_type = first >> 4;
    let flags = first & 0x0f;
    let expected = match packet_type {
        0 => return Err(DecodeError::ReservedPacketType(packet_type)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQos);
            }
            // DUP must be 0 for QoS 0 [MQTT-3.3.1-2].
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::ReservedFlags {
                    kind: "PUBLISH",
                    flags,
                });
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::ReservedFlags {
            kind: kind_of(packet_type),
            flags,
        });
    }
    Ok(())
}
