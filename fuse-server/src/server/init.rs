//! INIT and DESTROY: the connection's state changes, under the INIT lock.

use super::Server;
use super::conn::Conn;
use super::encode::put;
use super::frame::{Args, HandlerReply, Out};
use crate::filesystem::FileSystem;
use crate::negotiate::{self, InitReply, KernelOffer};

impl<F: FileSystem> Server<F> {
    /// INIT: [`negotiate`](crate::negotiate::negotiate) on the whole body, then
    /// [`FileSystem::init`]; a second INIT re-initialises the backend.
    pub(super) fn init<'o>(&self, a: &Args<'o>, out: Out<'o>) -> HandlerReply<'o> {
        let guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = KernelOffer::parse(a.body).and_then(|offer| {
            let caps = self.fs.capabilities();
            negotiate::negotiate(
                &offer,
                &caps,
                &self.config.transport,
                &self.config.negotiation,
            )
        });
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                log::warn!("FUSE_INIT refused: {e}");
                return HandlerReply::Err(e.errno());
            }
        };
        if let InitReply::Accepted(n) = &reply {
            // A second INIT (guest reboot without DESTROY) re-initialises the backend.
            if let Err(e) = self.fs.init(&n.negotiated) {
                log::warn!("FUSE_INIT: the backend failed to initialise: {e}");
                self.conn.store(&guard, None);
                return HandlerReply::Err(e);
            }
            let max_request_len = usize::try_from(n.max_request_len()).unwrap_or(usize::MAX);
            self.conn.store(
                &guard,
                Some(Conn {
                    minor: n.negotiated.minor,
                    flags: n.negotiated.flags,
                    max_request_len,
                }),
            );
            log::debug!(
                "FUSE_INIT: 7.{} flags {:?} max_write {} max_pages {}",
                n.negotiated.minor,
                n.negotiated.flags,
                n.negotiated.max_write,
                n.max_pages
            );
        }
        let init_out = *reply.out();
        let bytes = put(out.fixed, &init_out);
        HandlerReply::Ok(bytes.get(..reply.reply_len()).unwrap_or(bytes))
    }

    /// DESTROY: [`FileSystem::destroy`] if a connection was set up; later requests get EIO
    /// until the next INIT.
    pub(super) fn destroy<'o>(&self) -> HandlerReply<'o> {
        let guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.conn.store(&guard, None).is_some() {
            self.fs.destroy();
        }
        HandlerReply::Ok(&[])
    }
}
