//! Running one request with the caller's identity: per-thread effective uid/gid, optional
//! supplementary group, and umask.
//!
//! Only the raw system calls are used (`SYS_setresuid`, `SYS_setresgid`, `SYS_setgroups`):
//! they change the calling thread alone, whereas libc's wrappers broadcast the change to every
//! thread of the process. The umask is per thread after `unshare(CLONE_FS)`, done once per
//! thread on first use; if that fails the umask is applied to the mode by hand instead (then a
//! default ACL on the parent cannot override it).

use std::cell::Cell;

use fuse_abi::{Errno, INVALID_UIDGID};

use crate::errno::errno;
use crate::sys;

thread_local! {
    /// Whether this thread has its own fs context (umask): None = not tried yet.
    static OWN_UMASK: Cell<Option<bool>> = const { Cell::new(None) };
}

fn thread_has_own_umask() -> bool {
    OWN_UMASK.with(|c| match c.get() {
        Some(v) => v,
        None => {
            let ok = sys::unshare_fs().is_ok();
            if !ok {
                log::warn!("unshare(CLONE_FS) failed: umask applied by hand");
            }
            c.set(Some(ok));
            ok
        }
    })
}

/// The identity of a creating request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    /// fsuid.
    pub(crate) uid: u32,
    /// fsgid.
    pub(crate) gid: u32,
    /// The supplementary group to add (CREATE_SUPP_GROUP).
    pub(crate) supp_gid: Option<u32>,
    /// The umask to apply (DONT_MASK), 0 when the kernel already did.
    pub(crate) umask: u32,
}

/// While alive, the thread acts as the caller; dropping restores root.
#[derive(Debug)]
pub(crate) struct CredGuard {
    switched_uid: bool,
    switched_gid: bool,
    set_groups: bool,
    /// Mode bits to clear by hand when the thread has no own umask.
    manual_umask: u32,
}

impl CredGuard {
    /// Becomes `caller` on this thread.
    ///
    /// # Errors
    ///
    /// EOVERFLOW for an unmapped (0xFFFFFFFF) uid or gid: an inode is never created with the
    /// daemon's identity by accident (`setresuid(-1, -1, -1)` would be "no change"). Otherwise
    /// the errno of the failed switch.
    pub(crate) fn become_caller(caller: Caller, switch: bool) -> Result<CredGuard, Errno> {
        if caller.uid == INVALID_UIDGID || caller.gid == INVALID_UIDGID {
            return Err(Errno::EOVERFLOW);
        }
        let mut guard = CredGuard {
            switched_uid: false,
            switched_gid: false,
            set_groups: false,
            manual_umask: 0,
        };
        if thread_has_own_umask() {
            sys::umask(caller.umask & 0o7777);
        } else {
            guard.manual_umask = caller.umask & 0o777;
        }
        if !switch {
            return Ok(guard);
        }
        if let Some(g) = caller.supp_gid.filter(|&g| g != INVALID_UIDGID) {
            sys::set_thread_groups(&[g]).map_err(errno)?;
            guard.set_groups = true;
        }
        if caller.gid != 0 {
            sys::set_thread_egid(caller.gid).map_err(errno)?;
            guard.switched_gid = true;
        }
        if caller.uid != 0 {
            sys::set_thread_euid(caller.uid).map_err(errno)?;
            guard.switched_uid = true;
        }
        Ok(guard)
    }

    /// `mode` with the umask applied when the kernel of this thread cannot do it.
    pub(crate) fn mask_mode(&self, mode: u32) -> u32 {
        mode & !self.manual_umask
    }
}

impl Drop for CredGuard {
    fn drop(&mut self) {
        // Going back to root cannot fail for a root daemon; if it does the thread would keep
        // serving with a guest's identity, so the process stops instead.
        let restored = (!self.switched_uid || sys::set_thread_euid(0).is_ok())
            && (!self.switched_gid || sys::set_thread_egid(0).is_ok())
            && (!self.set_groups || sys::set_thread_groups(&[]).is_ok());
        if !restored {
            log::error!("cannot restore the daemon's credentials; aborting");
            std::process::abort();
        }
        if thread_has_own_umask() {
            sys::umask(0);
        }
    }
}
