//! The used length: a value only a checked, finished reply can produce.

use fuse_abi::{InHeaderPrefix, Opcode, OutHeader};
use fuse_server::Completion;

use crate::error::{Error, Result};

/// The first 16 bytes of a request (`len`, `opcode`, `unique`), copied out when it was taken.
pub(crate) fn decode_head(bytes: [u8; 16]) -> InHeaderPrefix {
    zerocopy::transmute!(bytes)
}

/// Whether the kernel expects no reply to `request` (FORGET, BATCH_FORGET; INTERRUPT may go
/// unanswered).
fn takes_no_reply(request: &InHeaderPrefix) -> bool {
    Opcode::try_from(request.opcode.get())
        .is_ok_and(|op| op.is_noreply() || op == Opcode::Interrupt)
}

/// A request's [`Completion`] that passed the transport's check: a reply's used length is the
/// bytes written, which equal `out_header.len`, and `out_header.unique` echoes the request.
///
/// The only way to get one is [`ChainRequest::finish`](crate::ChainRequest::finish) (virtqueue),
/// the `/dev/fuse` channel's own check, or a chain the transport answers without a reply
/// (malformed, or its reply refused); the device reports [`used_len`](Self::used_len) and
/// nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the used ring needs the completion's used length"]
pub struct CheckedCompletion {
    /// The checked length; 0 without a reply (a reply is never empty: it holds its 16-byte
    /// out header).
    used_len: u32,
}

impl CheckedCompletion {
    /// No reply: FORGET and BATCH_FORGET, INTERRUPT, a request too short to answer, or a chain
    /// the transport drops.
    pub(crate) const NO_REPLY: CheckedCompletion = CheckedCompletion { used_len: 0 };

    /// The length to put in the used ring: the reply's length (bytes written ==
    /// `out_header.len`), or 0 without a reply.
    pub fn used_len(&self) -> u32 {
        self.used_len
    }

    /// What became of the request.
    pub fn completion(&self) -> Completion {
        match self.used_len {
            0 => Completion::NoReply,
            len => Completion::Replied { len: len as usize },
        }
    }
}

/// Judges a reply of `written` bytes whose first 16 bytes are `out` (present when `written`
/// ≥ 16) to `request` (absent when the request was shorter than 16 bytes).
pub(crate) fn check(
    request: Option<InHeaderPrefix>,
    written: usize,
    out: Option<[u8; 16]>,
) -> Result<CheckedCompletion> {
    if written == 0 {
        return match request {
            Some(req) if !takes_no_reply(&req) => Err(Error::MissingReply {
                opcode: req.opcode.get(),
            }),
            _ => Ok(CheckedCompletion::NO_REPLY),
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
    if out.unique != req.unique {
        return Err(Error::ReplyUnique {
            request: req.unique.get(),
            reply: out.unique.get(),
        });
    }
    let error = out.error.get();
    if !(-511..=0).contains(&error) {
        return Err(Error::ReplyErrno { error });
    }
    let opcode = req.opcode.get();
    if takes_no_reply(&req) && Opcode::try_from(opcode) != Ok(Opcode::Interrupt) {
        return Err(Error::UnexpectedReply { opcode });
    }
    Ok(CheckedCompletion { used_len })
}

#[cfg(test)]
mod tests {
    use fuse_abi::{U32, U64};

    use super::*;

    fn out(len: u32, error: i32, unique: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&len.to_le_bytes());
        b[4..8].copy_from_slice(&error.to_le_bytes());
        b[8..].copy_from_slice(&unique.to_le_bytes());
        b
    }

    /// The first 16 bytes of a request (its `len` plays no part in the check).
    const fn head(opcode: u32, unique: u64) -> InHeaderPrefix {
        InHeaderPrefix {
            len: U32::new(0),
            opcode: U32::new(opcode),
            unique: U64::new(unique),
        }
    }

    const GETATTR: InHeaderPrefix = head(3, 0x42);

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
        let forget = head(2, 7);
        assert_eq!(
            check(Some(forget), 0, None).unwrap().completion(),
            Completion::NoReply
        );
        assert!(matches!(
            check(Some(forget), 16, Some(out(16, 0, 7))),
            Err(Error::UnexpectedReply { opcode: 2 })
        ));
        assert_eq!(
            check(None, 0, None).unwrap().completion(),
            Completion::NoReply
        );
    }
}
