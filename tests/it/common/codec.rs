//! Bytes in and out of the codec for the snapshot and property tests of both
//! protocol versions, written once so that a 3.1.1 test and its 5.0 twin
//! build and read their inputs the same way and differ only in the version.

use bytes::BytesMut;
use tern::codec::{
    decode, encode, DecodeError, DecodeOptions, Packet, ProtocolVersion,
    PACKET_SIZE_PROTOCOL_MAX_BYTES,
};

/// A connection of `version` with no packet size limit but the protocol's.
pub const fn decode_options(version: ProtocolVersion) -> DecodeOptions {
    DecodeOptions {
        version,
        packet_size_max_bytes: PACKET_SIZE_PROTOCOL_MAX_BYTES,
    }
}

pub const V311: DecodeOptions = decode_options(ProtocolVersion::V311);
pub const V5: DecodeOptions = decode_options(ProtocolVersion::V5);

/// The 27 property identifiers of [MQTT-2.2.2.2].
pub const PROPERTY_IDS: [u8; 27] = [
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C,
    0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
];

/// `packets` back to back, as a connection of `version` sends them.
pub fn encoded<'a>(
    packets: impl IntoIterator<Item = &'a Packet>,
    version: ProtocolVersion,
) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(packet, version, &mut buf);
    }
    buf
}

/// A named input: what it is meant to show, and its bytes.
pub type Case = (&'static str, Vec<u8>);

/// Bytes from a compact spec: whitespace-separated tokens, each hex digits,
/// a `"quoted"` UTF-8 string that becomes a length-prefixed field, or `[`
/// ... `]` around a property list, which becomes its Variable Byte Integer
/// length and then its bytes. The length is worked out here, not by the
/// encoder under test; the cases that lie about it write it in hex.
pub fn body(spec: &str) -> Vec<u8> {
    let mut stack = vec![Vec::new()];
    for token in spec.split_whitespace() {
        match token {
            "[" => stack.push(Vec::new()),
            "]" => {
                let inner = stack.pop().expect("a `[` before each `]`");
                let out = stack.last_mut().expect("a `]` after each `[`");
                out.extend(varint(inner.len()));
                out.extend(inner);
            }
            _ => {
                let out = stack.last_mut().unwrap();
                if let Some(s) = token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                } else {
                    out.extend(hex(token));
                }
            }
        }
    }
    assert_eq!(stack.len(), 1, "unclosed `[` in {spec:?}");
    stack.pop().unwrap()
}

fn hex(digits: &str) -> Vec<u8> {
    assert!(digits.len().is_multiple_of(2), "odd hex token {digits:?}");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// A Variable Byte Integer, seven bits a byte, least significant first.
fn varint(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value % 128) as u8;
        value /= 128;
        out.push(if value > 0 { byte | 0x80 } else { byte });
        if value == 0 {
            return out;
        }
    }
}

/// A whole packet: the first byte, the remaining length (computed here, not
/// by the encoder under test), then the body.
pub fn frame(first: u8, spec: &str) -> Vec<u8> {
    frame_bytes(first, &body(spec))
}

pub fn frame_bytes(first: u8, body: &[u8]) -> Vec<u8> {
    [vec![first], varint(body.len()), body.to_vec()].concat()
}

pub fn decode_all(bytes: &[u8], opts: &DecodeOptions) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), opts)
}

/// The packet `bytes` hold, all of them; panics, naming the case, otherwise.
pub fn decoded(name: &str, bytes: &[u8], opts: &DecodeOptions) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, opts)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: incomplete"));
    assert!(buf.is_empty(), "{name}: {} bytes left", buf.len());
    packet
}

pub fn spaced_hex(bytes: &[u8]) -> String {
    let digits: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    digits.join(" ")
}

/// One entry per case: its name, its bytes, and what decoding them gave.
pub fn render(cases: &[Case], opts: &DecodeOptions, pretty: bool) -> String {
    render_cases(cases, opts, pretty, false)
}

/// As `render`, with the bytes the encoder writes for each packet decoded,
/// for inputs the encoder would not have written that way.
pub fn render_reencoded(cases: &[Case], opts: &DecodeOptions) -> String {
    render_cases(cases, opts, false, true)
}

fn render_cases(cases: &[Case], opts: &DecodeOptions, pretty: bool, reencode: bool) -> String {
    let mut out = String::new();
    for (name, bytes) in cases {
        let result = decode_all(bytes, opts);
        let shown = if pretty {
            format!("{result:#?}")
        } else {
            format!("{result:?}")
        };
        out += &format!("{name}\n    {}\n => {shown}\n", spaced_hex(bytes));
        if let (true, Ok(Some(p))) = (reencode, &result) {
            out += &format!(" <= {}\n", spaced_hex(&encoded([p], opts.version)));
        }
        out += "\n";
    }
    out
}
