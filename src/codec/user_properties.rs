//! User Properties kept as their wire bytes (see `Properties`): reading
//! them back, and gathering them from a decoded properties block.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

pub(super) const USER_PROPERTY: u8 = 0x26;

/// Reads User Properties' wire bytes, which were checked when they were
/// decoded or added; it stops at anything else.
pub(super) struct UserProperties<'a>(pub &'a [u8]);

impl<'a> UserProperties<'a> {
    fn string(&mut self) -> Option<&'a str> {
        let [hi, lo, rest @ ..] = self.0 else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (s, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }
}

impl<'a> Iterator for UserProperties<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (&USER_PROPERTY, rest) = self.0.split_first()? else {
            return None;
        };
        self.0 = rest;
        Some((self.string()?, self.string()?))
    }
}

/// User Properties' bytes: a slice of their properties block while they
/// are contiguous in it (as a client writes them), else a copy.
#[derive(Default)]
pub(super) struct UserBytes {
    range: Option<Range<usize>>,
    copied: Option<BytesMut>,
}

impl UserBytes {
    pub fn add(&mut self, block: &Bytes, range: Range<usize>) {
        if let Some(copied) = &mut self.copied {
            copied.extend_from_slice(&block[range]);
            return;
        }
        match &mut self.range {
            None => self.range = Some(range),
            Some(r) if r.end == range.start => r.end = range.end,
            Some(r) => {
                let mut copied = BytesMut::from(&block[r.clone()]);
                copied.extend_from_slice(&block[range]);
                self.copied = Some(copied);
            }
        }
    }

    pub fn into_bytes(self, block: &Bytes) -> Bytes {
        match (self.copied, self.range) {
            (Some(copied), _) => copied.freeze(),
            (None, Some(range)) => block.slice(range),
            (None, None) => Bytes::new(),
        }
    }
}
