//! RFC 6455 frames, read as a stream: a binary frame's payload is handed
//! on as it arrives, unmasked on the way, so a header announcing 16 MB
//! costs nothing until the bytes come (and then only as they are read).
//! Control frames (at most 125 bytes, section 5.5) are taken whole.

/// Opcodes of section 5.2.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Close codes of section 7.4.1.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The longest header: 2 bytes, 8 of length, 4 of mask.
pub const HEADER_MAX_BYTES: usize = 14;
/// The longest control frame, header and payload.
pub const CONTROL_MAX_BYTES: usize = HEADER_MAX_BYTES + 125;

/// Why the client's frames end its connection, and the close code that
/// tells it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub why: &'static str,
}

impl Violation {
    fn protocol(why: &'static str) -> Violation {
        Violation {
            code: CLOSE_PROTOCOL,
            why,
        }
    }
}

/// What the bytes at the front of the input were.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Not enough of them to say.
    More,
    /// A data frame's header: its payload follows.
    Header,
    /// This many payload bytes, unmasked into the output.
    Data(usize),
    Ping(Vec<u8>),
    Pong,
    /// The client's close, with its code if it gave one.
    Close(Option<u16>),
}

/// The reading side of a connection's frames, for a server: client frames
/// must be masked (section 5.1).
#[derive(Debug)]
pub struct FrameReader {
    /// The most a frame, or a message, may carry.
    limit: u64,
    /// What is left of the current data frame's payload.
    remaining: u64,
    mask: [u8; 4],
    /// Where in the mask the next payload byte is.
    phase: usize,
    /// A binary message has begun and its last frame has not.
    in_message: bool,
    /// The payload bytes announced so far for the current message.
    message_len: u64,
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    size: usize,
}

impl FrameReader {
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            limit: limit as u64,
            remaining: 0,
            mask: [0; 4],
            phase: 0,
            in_message: false,
            message_len: 0,
        }
    }

    /// Reads what it can from the front of `input`: how many of its bytes
    /// it took, and what they were. Payload goes into `out`, at most its
    /// length; `out` must not be empty.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, Event), Violation> {
        if self.remaining > 0 {
            let n = input
                .len()
                .min(out.len())
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            if n == 0 {
                return Ok((0, Event::More));
            }
            for (i, (to, from)) in out[..n].iter_mut().zip(&input[..n]).enumerate() {
                *to = from ^ self.mask[(self.phase + i) % 4];
            }
            self.phase = (self.phase + n) % 4;
            self.remaining -= n as u64;
            return Ok((n, Event::Data(n)));
        }
        let Some(header) = parse_header(input)? else {
            return Ok((0, Event::More));
        };
        if header.opcode >= CLOSE {
            return Ok(control(&header, input));
        }
        match header.opcode {
            // Refused from its header, as before: MQTT is binary only
            // [MQTT-6.0.0-1].
            TEXT => {
                return Err(Violation {
                    code: CLOSE_UNSUPPORTED,
                    why: "MQTT goes in binary frames",
                })
            }
            BINARY if self.in_message => {
                return Err(Violation::protocol("a new message inside another"))
            }
            BINARY => self.message_len = 0,
            CONTINUATION if !self.in_message => {
                return Err(Violation::protocol("a continuation without a message"))
            }
            _ => {}
        }
        self.message_len = self.message_len.saturating_add(header.len);
        if self.message_len > self.limit {
            return Err(Violation {
                code: CLOSE_TOO_BIG,
                why: "frame or message too large",
            });
        }
        self.in_message = !header.fin;
        self.remaining = header.len;
        self.mask = header.mask;
        self.phase = 0;
        Ok((header.size, Event::Header))
    }
}

/// A control frame, once it is all in `input`.
fn control(header: &Header, input: &[u8]) -> (usize, Event) {
    let len = header.len as usize;
    let Some(masked) = input.get(header.size..header.size + len) else {
        return (0, Event::More);
    };
    let payload: Vec<u8> = masked
        .iter()
        .enumerate()
        .map(|(i, byte)| byte ^ header.mask[i % 4])
        .collect();
    let event = match header.opcode {
        PING => Event::Ping(payload),
        PONG => Event::Pong,
        _ => Event::Close(
            payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]])),
        ),
    };
    (header.size + len, event)
}

/// A client frame's header, checked, if `input` holds all of it.
fn parse_header(input: &[u8]) -> Result<Option<Header>, Violation> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(Violation::protocol("reserved bits set"));
    }
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(Violation::protocol("reserved opcode"));
    }
    if second & 0x80 == 0 {
        return Err(Violation::protocol("unmasked client frame"));
    }
    let (len, at) = match second & 0x7F {
        126 => match input.get(2..4) {
            Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(bytes) => (u64::from_be_bytes(bytes.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if opcode >= CLOSE && (!fin || len > 125) {
        return Err(Violation::protocol("fragmented or long control frame"));
    }
    let Some(mask) = input.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        len,
        size: at + 4,
    }))
}

/// Appends a whole, unmasked server frame (section 5.1: servers do not
/// mask).
fn frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

pub fn binary(payload: &[u8], out: &mut Vec<u8>) {
    frame(BINARY, payload, out);
}

pub fn pong(payload: &[u8], out: &mut Vec<u8>) {
    frame(PONG, payload, out);
}

pub fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame's payload is at most 125 bytes; our reasons are short.
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    frame(CLOSE, &payload, out);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client's frame, masked with `mask`.
    pub fn masked(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        frame(first & 0x0F, payload, &mut out);
        out[0] = first;
        let at = out.len() - payload.len();
        out[1] |= 0x80;
        out.splice(at..at, mask);
        for (i, byte) in out[at + 4..].iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        out
    }

    /// Feeds `input` to a reader `step` bytes at a time, as a connection
    /// would (keeping what it did not take): the events, payload joined.
    fn feed(
        reader: &mut FrameReader,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<Event>), Violation> {
        let (mut data, mut events, mut held) = (Vec::new(), Vec::new(), Vec::new());
        let mut out = [0u8; 3];
        for chunk in input.chunks(step) {
            held.extend_from_slice(chunk);
            loop {
                let (taken, event) = reader.decode(&held, &mut out)?;
                held.drain(..taken);
                match event {
                    Event::More => break,
                    Event::Header => {}
                    Event::Data(n) => data.extend_from_slice(&out[..n]),
                    other => events.push(other),
                }
            }
        }
        assert!(held.is_empty(), "all taken");
        Ok((data, events))
    }

    #[test]
    fn a_masked_frame_delivered_a_byte_at_a_time_decodes() {
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut input = masked(0x82, &payload, mask);
        input.extend(masked(0x89, b"ping!", [9, 8, 7, 6]));
        let mut reader = FrameReader::new(1 << 20);
        let (data, events) = feed(&mut reader, &input, 1).unwrap();
        assert_eq!(data, payload);
        assert_eq!(events, [Event::Ping(b"ping!".to_vec())]);
    }

    #[test]
    fn a_ping_inside_a_fragmented_message_is_its_own() {
        let mut input = masked(0x02, b"abc", [1, 2, 3, 4]);
        input.extend(masked(0x89, b"hi", [5, 6, 7, 8]));
        input.extend(masked(0x80, b"def", [9, 10, 11, 12]));
        let (data, events) = feed(&mut FrameReader::new(100), &input, 5).unwrap();
        assert_eq!(
            (data, events),
            (b"abcdef".to_vec(), vec![Event::Ping(b"hi".to_vec())])
        );
    }

    #[test]
    fn bad_frames_are_refused_from_their_header() {
        let refused = |input: &[u8], limit: usize| {
            feed(&mut FrameReader::new(limit), input, 64)
                .unwrap_err()
                .code
        };
        let mut huge = vec![0x82, 0xFF];
        huge.extend(16_000_000u64.to_be_bytes());
        huge.extend([1, 2, 3, 4]);
        assert_eq!(refused(&huge, 1_000_000), CLOSE_TOO_BIG);
        let mut two = masked(0x02, &[0; 60], [1; 4]);
        two.extend(masked(0x80, &[0; 60], [1; 4]));
        assert_eq!(refused(&two, 100), CLOSE_TOO_BIG, "the message's total");
        assert_eq!(
            refused(&masked(0x81, b"text", [1; 4]), 100),
            CLOSE_UNSUPPORTED
        );
        assert_eq!(
            refused(&[0x82, 0x03, 1, 2, 3], 100),
            CLOSE_PROTOCOL,
            "unmasked"
        );
        assert_eq!(
            refused(&masked(0xC2, b"x", [1; 4]), 100),
            CLOSE_PROTOCOL,
            "RSV1"
        );
        assert_eq!(
            refused(&masked(0x83, b"x", [1; 4]), 100),
            CLOSE_PROTOCOL,
            "opcode 3"
        );
        assert_eq!(
            refused(&masked(0x80, b"x", [1; 4]), 100),
            CLOSE_PROTOCOL,
            "lone continuation"
        );
        assert_eq!(
            refused(&masked(0x09, b"x", [1; 4]), 100),
            CLOSE_PROTOCOL,
            "fragmented ping"
        );
        let mut nested = masked(0x02, b"x", [1; 4]);
        nested.extend(masked(0x82, b"y", [1; 4]));
        assert_eq!(
            refused(&nested, 100),
            CLOSE_PROTOCOL,
            "a message inside another"
        );
    }

    #[test]
    fn a_close_gives_its_code() {
        let input = masked(0x88, &[0x03, 0xE8, b'o', b'k'], [4, 3, 2, 1]);
        let (_, events) = feed(&mut FrameReader::new(100), &input, 2).unwrap();
        assert_eq!(events, [Event::Close(Some(1000))]);
    }
}
