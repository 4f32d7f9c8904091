//! Interim stand-in for `fuse_server::Server` (same shape as the contract) until the real
//! dispatcher lands: FORGET and BATCH_FORGET get no reply, every other request ENOSYS.

use std::io;

use fuse_abi::{Errno, InHeader, Opcode, OutHeader};
use fuse_server::{FileSystem, Reader, Writer};
use zerocopy::{FromZeros, IntoBytes};

/// What a request produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A reply of `len` bytes was written.
    Replied {
        /// Bytes written.
        len: usize,
    },
    /// The request takes no reply.
    NoReply,
}

/// The server's configuration (placeholder).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerConfig;

/// The dispatcher.
#[derive(Debug)]
pub(crate) struct Server<F> {
    fs: F,
}

impl<F: FileSystem> Server<F> {
    pub(crate) fn new(fs: F, _config: ServerConfig) -> Server<F> {
        Server { fs }
    }

    pub(crate) fn handle_message<R: Reader, W: Writer>(
        &self,
        r: &mut R,
        w: &mut W,
    ) -> io::Result<Outcome> {
        let mut ih = InHeader::new_zeroed();
        r.read_exact(ih.as_mut_bytes())?;
        if Opcode::try_from(ih.opcode.get()).is_ok_and(Opcode::is_noreply) {
            return Ok(Outcome::NoReply);
        }
        let oh = OutHeader {
            len: 16.into(),
            error: Errno::ENOSYS.to_wire().into(),
            unique: ih.unique,
        };
        w.write_all(oh.as_bytes())?;
        Ok(Outcome::Replied { len: 16 })
    }

    pub(crate) fn reset(&self) {
        self.fs.destroy();
    }
}
