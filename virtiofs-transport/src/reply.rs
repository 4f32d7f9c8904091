//! The used length: a value only a checked, finished reply can produce.

use fuse_abi::{InHeaderPrefix, Opcode, OutHeader};

use crate::error::{Error, Result};

/// The first 16 bytes of `fuse_in_header`, copied from the request when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub(crate) opcode: u32,
    pub(crate) unique: u64,
}

impl RequestHead {
    /// Decodes the first 16 bytes of a request.
    pub(crate) fn decode(bytes: &[u8; 16]) -> Self {
        let prefix: InHeaderPrefix = zerocopy::transmute!(*bytes);
        Self {
            opcode: prefix.opcode.get(),
            unique: prefix.unique.get(),
        }
    }

    /// Whether the kernel expects no reply (FORGET, BATCH_FORGET; INTERRUPT may go unanswered).
    fn no_reply(self) -> bool {
        Opcode::try_from(self.opcode).is_ok_and(|op| op.is_noreply() || op == Opcode::Interrupt)
    }
}

/// A reply that passed every check: its used length is the bytes written, which equal
/// `out_header.len`, and `out_header.unique` echoes the request.
///
/// The only way to get one is `Request::finish` (virtqueue) or the `/dev/fuse` writer's own
/// check; the device reports [`used_len`](Self::used_len) and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinishedReply {
    used_len: u32,
}

impl FinishedReply {
    /// The length to put in the used ring (bytes written == `out_header.len`).
    pub fn used_len(&self) -> u32 {
        self.used_len
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the used ring needs the completion's used length"]
pub enum Completion {
    /// A checked reply.
    Reply(FinishedReply),
    /// No reply: FORGET and BATCH_FORGET, INTERRUPT, or a request too short to answer.
    NoReply,
}

impl Completion {
    /// The used length: the reply's length, or 0 without a reply.
    pub fn used_len(&self) -> u32 {
        match self {
            Completion::Reply(r) => r.used_len,
            Completion::NoReply => 0,
        }
    }
}

/// Judges a reply of `written` bytes whose first 16 bytes are `out` (present when `written`
/// ≥ 16) to `request` (absent when the request was shorter than 16 bytes).
pub(crate) fn check(
    request: Option<RequestHead>,
    written: usize,
    out: Option<[u8; 16]>,
) -> Result<Completion> {
    if written == 0 {
        return match request {
            Some(req) if !req.no_reply() => Err(Error::MissingReply { opcode: req.opcode }),
            _ => Ok(Completion::NoReply),
        };
    }
    let Some(req) = request else {
        return Err(Error::ReplyWithoutRequest);
    };
    let Some(out) = out.filter(|_| written >= 16) else {
        return Err(Error::ReplyTooShort { written });
    };
    // The `fuse_out_header` the server wrote.
    let out: OutHeader = zerocopy::transmute!(out);
    let header = out.len.get();
    let used_len = u32::try_from(written).map_err(|_| Error::ReplyLength { header, written })?;
    if header != used_len {
        return Err(Error::ReplyLength { header, written });
    }
    if out.unique.get() != req.unique {
        return Err(Error::ReplyUnique {
            request: req.unique,
            reply: out.unique.get(),
        });
    }
    let error = out.error.get();
    if !(-511..=0).contains(&error) {
        return Err(Error::ReplyErrno { error });
    }
    if req.no_reply() && Opcode::try_from(req.opcode) != Ok(Opcode::Interrupt) {
        return Err(Error::UnexpectedReply { opcode: req.opcode });
    }
    Ok(Completion::Reply(FinishedReply { used_len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(len: u32, error: i32, unique: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&len.to_le_bytes());
        b[4..8].copy_from_slice(&error.to_le_bytes());
        b[8..].copy_from_slice(&unique.to_le_bytes());
        b
    }

    const GETATTR: RequestHead = RequestHead {
        opcode: 3,
        unique: 0x42,
    };

    #[test]
    fn used_len_is_the_checked_length() {
        let c = check(Some(GETATTR), 120, Some(out(120, 0, 0x42))).unwrap();
        assert_eq!(c.used_len(), 120);
        let c = check(Some(GETATTR), 16, Some(out(16, -2, 0x42))).unwrap();
        assert_eq!(c.used_len(), 16);
    }

    #[test]
    fn every_broken_rule_is_refused() {
        assert!(matches!(
            check(Some(GETATTR), 120, Some(out(100, 0, 0x42))),
            Err(Error::ReplyLength {
                header: 100,
                written: 120
            })
        ));
        assert!(matches!(
            check(Some(GETATTR), 16, Some(out(16, 0, 0x43))),
            Err(Error::ReplyUnique { .. })
        ));
        assert!(matches!(
            check(Some(GETATTR), 16, Some(out(16, -512, 0x42))),
            Err(Error::ReplyErrno { error: -512 })
        ));
        assert!(matches!(
            check(Some(GETATTR), 16, Some(out(16, 1, 0x42))),
            Err(Error::ReplyErrno { error: 1 })
        ));
        assert!(matches!(
            check(Some(GETATTR), 8, None),
            Err(Error::ReplyTooShort { written: 8 })
        ));
        assert!(matches!(
            check(Some(GETATTR), 0, None),
            Err(Error::MissingReply { opcode: 3 })
        ));
        assert!(matches!(
            check(None, 16, Some(out(16, 0, 0))),
            Err(Error::ReplyWithoutRequest)
        ));
        let forget = RequestHead {
            opcode: 2,
            unique: 7,
        };
        assert_eq!(check(Some(forget), 0, None).unwrap(), Completion::NoReply);
        assert!(matches!(
            check(Some(forget), 16, Some(out(16, 0, 7))),
            Err(Error::UnexpectedReply { opcode: 2 })
        ));
        assert_eq!(check(None, 0, None).unwrap(), Completion::NoReply);
    }
}
