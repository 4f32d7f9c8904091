//! The Landlock layer: after start-up the daemon's threads reach files only beneath the shared
//! directory (and the few device files the configuration still opens), bind or connect no TCP
//! port, connect to no abstract UNIX socket and signal no process outside the daemon.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// `--landlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LandlockMode {
    /// Where the kernel has Landlock; a kernel without it is logged, not an error.
    Auto,
    /// Required: the daemon refuses to start where the kernel enforces none of it.
    On,
    /// No Landlock layer.
    Off,
}

/// The newest Landlock ABI whose rights this layer asks for (Linux 6.12): filesystem with
/// REFER, TRUNCATE and IOCTL_DEV, TCP bind and connect, and the abstract-socket and signal
/// scopes. Older kernels enforce what they have (best effort), newer ones add nothing here.
const ABI_ASKED: ABI = ABI::V6;

/// A file outside the share the daemon still opens after start-up, with the rights it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtraFile {
    pub(crate) path: PathBuf,
    pub(crate) write: bool,
}

/// What the layer enforces, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Enforced, fully or partly (an older ABI), with the running kernel's ABI.
    Enforced { abi: i32, full: bool },
    /// The kernel has no Landlock.
    Unavailable(&'static str),
}

/// Errors applying the layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandlockError {
    #[error(transparent)]
    Ruleset(#[from] landlock::RulesetError),
    #[error("{}", path.display())]
    Path {
        path: PathBuf,
        source: landlock::PathFdError,
    },
    #[error("the kernel cannot enforce it ({0}) and --landlock=on requires it")]
    Required(&'static str),
}

/// Restricts the calling thread (and the threads it starts from now on) to `share` and
/// `extra`. `mode` must not be `Off`.
pub(crate) fn restrict(
    share: &Path,
    extra: &[ExtraFile],
    mode: LandlockMode,
) -> Result<Outcome, LandlockError> {
    let all = AccessFs::from_all(ABI_ASKED);
    let open = |path: &Path| {
        PathFd::new(path).map_err(|source| LandlockError::Path {
            path: path.to_owned(),
            source,
        })
    };
    // Best effort: each right the kernel has is enforced (TCP came with ABI 4, the scopes with
    // 6); `--landlock=on` refuses only a kernel that enforces nothing.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .handle_access(AccessNet::from_all(ABI_ASKED))?
        .scope(Scope::from_all(ABI_ASKED))?
        .create()?
        .add_rule(PathBeneath::new(open(share)?, all))?;
    for file in extra {
        let rights = if file.write {
            AccessFs::from_file(ABI_ASKED)
        } else {
            AccessFs::from_read(ABI_ASKED) & AccessFs::from_file(ABI_ASKED)
        };
        ruleset = ruleset.add_rule(PathBeneath::new(open(&file.path)?, rights))?;
    }
    let status = ruleset.restrict_self()?;
    outcome(&status, mode)
}

fn outcome(status: &RestrictionStatus, mode: LandlockMode) -> Result<Outcome, LandlockError> {
    let why = match status.landlock {
        LandlockStatus::NotEnabled => "Landlock is not enabled in this kernel",
        LandlockStatus::NotImplemented => "this kernel has no Landlock",
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => {
            return match &status.ruleset {
                RulesetStatus::NotEnforced => {
                    if mode == LandlockMode::On {
                        Err(LandlockError::Required("ruleset not enforced"))
                    } else {
                        Ok(Outcome::Unavailable("ruleset not enforced"))
                    }
                }
                ruleset => Ok(Outcome::Enforced {
                    abi: kernel_abi.unwrap_or(effective_abi as i32),
                    full: *ruleset == RulesetStatus::FullyEnforced,
                }),
            };
        }
    };
    if mode == LandlockMode::On {
        return Err(LandlockError::Required(why));
    }
    Ok(Outcome::Unavailable(why))
}
