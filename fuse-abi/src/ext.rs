//! Request extensions (7.36+): the trailing `total_extlen × 8` bytes of a creation request.
//!
//! Each extension is an [`ExtHeader`] whose `size` counts the header and is a multiple of 8,
//! then its payload. The security-context block has no header of its own: its
//! [`SecctxHeader`] (`size`, `nr_secctx`) *is* the extension header, so a `type` of 0..=31 is
//! the number of contexts ([`Secctx`] entries) that follow, and a kernel without an LSM label
//! sends the 8 bytes {8, 0}. Type [`EXT_GROUPS`] is [`SuppGroups`] followed by `nr_groups`
//! gids.

use zerocopy::FromBytes;

#[cfg(doc)]
use crate::SecctxHeader;
use crate::{ExtHeader, Secctx, SuppGroups};

/// `FUSE_MAX_NR_SECCTX` / security contexts use types 0..=31.
pub const EXT_SECCTX_MAX_TYPE: u32 = 31;
/// `FUSE_EXT_GROUPS`: the supplementary-groups extension.
pub const EXT_GROUPS: u32 = 32;

/// Why an extension area could not be parsed. Every variant means a malformed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtError {
    /// Fewer bytes left than an extension header.
    Truncated,
    /// An extension `size` that is 0, not a multiple of 8, or past the end of the area.
    BadSize,
    /// A payload that is inconsistent with its own counts.
    BadPayload,
}

impl core::fmt::Display for ExtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ExtError::Truncated => "truncated request extension",
            ExtError::BadSize => "request extension size out of bounds",
            ExtError::BadPayload => "request extension payload inconsistent",
        })
    }
}

impl core::error::Error for ExtError {}

/// One request extension, borrowing from a host-owned copy of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension<'a> {
    /// Security contexts: the raw area after the [`SecctxHeader`] (the extension header);
    /// see [`secctx_entries`].
    SecurityContexts {
        /// How many contexts follow.
        count: u32,
        /// The contexts.
        raw: &'a [u8],
    },
    /// Supplementary groups: the gid array, little-endian u32s.
    SuppGroups(&'a [u8]),
    /// An extension type this crate does not know; its payload.
    Unknown {
        /// The type.
        typ: u32,
        /// The payload.
        payload: &'a [u8],
    },
}

/// Iterates over the extensions in `area` (exactly `total_extlen × 8` bytes).
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    rest: &'a [u8],
}

/// Parses the extension area of a request.
pub fn extensions(area: &[u8]) -> Extensions<'_> {
    Extensions { rest: area }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<Extension<'a>, ExtError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.parse_one();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

impl<'a> Extensions<'a> {
    fn parse_one(&mut self) -> Result<Extension<'a>, ExtError> {
        let (hdr, _) = ExtHeader::read_from_prefix(self.rest).map_err(|_| ExtError::Truncated)?;
        let size = usize::try_from(hdr.size.get()).map_err(|_| ExtError::BadSize)?;
        if size < core::mem::size_of::<ExtHeader>() || size % 8 != 0 || size > self.rest.len() {
            return Err(ExtError::BadSize);
        }
        let (this, rest) = self.rest.split_at(size);
        self.rest = rest;
        let payload = this
            .get(core::mem::size_of::<ExtHeader>()..)
            .ok_or(ExtError::BadSize)?;
        let typ = hdr.typ.get();
        if typ <= EXT_SECCTX_MAX_TYPE {
            // `fuse_secctx_header` { size, nr_secctx } in the place of the extension header.
            Ok(Extension::SecurityContexts {
                count: typ,
                raw: payload,
            })
        } else if typ == EXT_GROUPS {
            let (g, gids) =
                SuppGroups::read_from_prefix(payload).map_err(|_| ExtError::BadPayload)?;
            let n = usize::try_from(g.nr_groups.get()).map_err(|_| ExtError::BadPayload)?;
            let bytes = n.checked_mul(4).ok_or(ExtError::BadPayload)?;
            let gids = gids.get(..bytes).ok_or(ExtError::BadPayload)?;
            Ok(Extension::SuppGroups(gids))
        } else {
            Ok(Extension::Unknown { typ, payload })
        }
    }
}

/// One security context: an LSM attribute name and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityContext<'a> {
    /// The xattr name, e.g. `security.selinux`, without the NUL.
    pub name: &'a [u8],
    /// The context value, exactly `size` bytes.
    pub value: &'a [u8],
}

/// Parses the entries of a security-context extension: each is a [`Secctx`], the
/// NUL-terminated name, then `size` bytes of context, padded to 8 bytes.
pub fn secctx_entries(
    count: u32,
    mut raw: &[u8],
) -> impl Iterator<Item = Result<SecurityContext<'_>, ExtError>> + '_ {
    let mut left = count;
    core::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left = left.saturating_sub(1);
        let parsed = (|| {
            let (hdr, after) = Secctx::read_from_prefix(raw).map_err(|_| ExtError::BadPayload)?;
            let nul = after
                .iter()
                .position(|&b| b == 0)
                .ok_or(ExtError::BadPayload)?;
            let (name, after_name) = after.split_at(nul);
            let value_len = usize::try_from(hdr.size.get()).map_err(|_| ExtError::BadPayload)?;
            let value = after_name.get(1..).and_then(|v| v.get(..value_len));
            let value = value.ok_or(ExtError::BadPayload)?;
            let used = core::mem::size_of::<Secctx>()
                .checked_add(nul)
                .and_then(|v| v.checked_add(1))
                .and_then(|v| v.checked_add(value_len))
                .and_then(crate::dirent::align8)
                .ok_or(ExtError::BadPayload)?;
            raw = raw.get(used..).unwrap_or(&[]);
            Ok(SecurityContext { name, value })
        })();
        if parsed.is_err() {
            left = 0;
        }
        Some(parsed)
    })
}

/// The gids of a [`Extension::SuppGroups`] payload.
pub fn supp_group_ids(gids: &[u8]) -> impl Iterator<Item = u32> + '_ {
    gids.chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn groups_extension_parses() {
        let mut area = [0u8; 16];
        area[0..4].copy_from_slice(&16u32.to_le_bytes());
        area[4..8].copy_from_slice(&EXT_GROUPS.to_le_bytes());
        area[8..12].copy_from_slice(&1u32.to_le_bytes());
        area[12..16].copy_from_slice(&1234u32.to_le_bytes());
        let exts: Vec<_> = extensions(&area).collect();
        assert_eq!(exts.len(), 1);
        let Ok(Extension::SuppGroups(g)) = exts[0] else {
            panic!("{exts:?}")
        };
        assert_eq!(supp_group_ids(g).collect::<Vec<_>>(), vec![1234]);
    }

    #[test]
    fn oversized_extension_is_rejected() {
        let mut area = [0u8; 16];
        area[0..4].copy_from_slice(&24u32.to_le_bytes());
        assert_eq!(extensions(&area).next(), Some(Err(ExtError::BadSize)));
    }

    #[test]
    fn zero_size_extension_is_rejected_not_looped() {
        let area = [0u8; 16];
        let all: Vec<_> = extensions(&area).collect();
        assert_eq!(all, vec![Err(ExtError::BadSize)]);
    }

    /// What a kernel without an LSM label sends on every creation once SECURITY_CTX is
    /// negotiated (Linux 6.18 over /dev/fuse, seen live): the bare header {8, 0}.
    #[test]
    fn empty_security_context_block_parses() {
        let mut area = [0u8; 8];
        area[0..4].copy_from_slice(&8u32.to_le_bytes());
        let exts: Vec<_> = extensions(&area).collect();
        assert_eq!(
            exts,
            vec![Ok(Extension::SecurityContexts { count: 0, raw: &[] })]
        );
    }

    /// The kernel's layout: `fuse_secctx_header` { size, nr_secctx = 1 }, then one
    /// `fuse_secctx` { size, padding }, the NUL-terminated name, the value, padded to 8; a
    /// groups extension may follow.
    #[test]
    fn one_security_context_then_groups_parse() {
        let mut block = Vec::new();
        block.extend_from_slice(&0u32.to_le_bytes()); // size, set below
        block.extend_from_slice(&1u32.to_le_bytes()); // nr_secctx
        block.extend_from_slice(&4u32.to_le_bytes());
        block.extend_from_slice(&0u32.to_le_bytes());
        block.extend_from_slice(b"security.selinux\0ctx\0");
        while block.len() % 8 != 0 {
            block.push(0);
        }
        let size = u32::try_from(block.len()).unwrap();
        block[0..4].copy_from_slice(&size.to_le_bytes());
        block.extend_from_slice(&16u32.to_le_bytes());
        block.extend_from_slice(&EXT_GROUPS.to_le_bytes());
        block.extend_from_slice(&1u32.to_le_bytes());
        block.extend_from_slice(&77u32.to_le_bytes());
        let exts: Vec<_> = extensions(&block).collect();
        assert_eq!(exts.len(), 2, "{exts:?}");
        let Ok(Extension::SecurityContexts { count: 1, raw }) = exts[0] else {
            panic!("{exts:?}")
        };
        let got: Vec<_> = secctx_entries(1, raw).collect();
        assert_eq!(
            got,
            vec![Ok(SecurityContext {
                name: b"security.selinux",
                value: b"ctx\0"
            })]
        );
        let Ok(Extension::SuppGroups(g)) = exts[1] else {
            panic!("{exts:?}")
        };
        assert_eq!(supp_group_ids(g).collect::<Vec<_>>(), vec![77]);
    }

    #[test]
    fn selinux_context_parses() {
        // secctx header + secctx{size=4} + "security.selinux\0" + "ctx\0", padded.
        let name = b"security.selinux\0";
        let mut entry = Vec::new();
        entry.extend_from_slice(&4u32.to_le_bytes());
        entry.extend_from_slice(&0u32.to_le_bytes());
        entry.extend_from_slice(name);
        entry.extend_from_slice(b"ctx\0");
        while entry.len() % 8 != 0 {
            entry.push(0);
        }
        let got: Vec<_> = secctx_entries(1, &entry).collect();
        assert_eq!(
            got,
            vec![Ok(SecurityContext {
                name: b"security.selinux",
                value: b"ctx\0"
            })]
        );
    }
}
