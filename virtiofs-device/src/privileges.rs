//! Capabilities: the set the configuration needs, `--modcaps`, and dropping the rest from the
//! bounding, permitted, effective, inheritable and ambient sets.

use anyhow::{Context, Result, bail};
use caps::{CapSet, Capability, CapsHashSet};

use crate::cli::{Backend, Cli, FileHandles};

/// What the configuration needs when the daemon runs as root:
///
/// - `linux` backend: the per-request credential switch (SETUID, SETGID), ownership changes
///   (CHOWN), acting on files whatever their mode or owner (DAC_OVERRIDE, FOWNER), keeping
///   set-id bits the guest sets (FSETID), device nodes (MKNOD); SETFCAP only when the guest's
///   `security.capability` reaches host files under that name (`host_fcaps`: an `--xattrmap`
///   that passes it through; the default map stores it as `user.virtiofs.security.capability`,
///   which needs no capability); DAC_READ_SEARCH for `--inode-file-handles`
///   (`open_by_handle_at`). With `--readonly` nothing is written: CHOWN, FSETID, MKNOD and
///   SETFCAP are not kept.
/// - `macos-logic` backend: no credential switch and no ownership change (ownership lives in
///   attributes); DAC_OVERRIDE, FOWNER, FSETID, DAC_READ_SEARCH (`linkat(AT_EMPTY_PATH)`) and
///   SYS_ADMIN, which `trusted.*` attributes need (where it keeps a symlink's or special
///   file's attributes).
///
/// `trusted.*` attributes through the linux backend's `--xattrmap` need `--modcaps=+sys_admin`,
/// as with virtiofsd.
pub(crate) fn needed(cli: &Cli, host_fcaps: bool) -> CapsHashSet {
    use Capability::*;
    let mut set = CapsHashSet::new();
    match cli.backend {
        Backend::Linux => {
            set.extend([CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_SETGID, CAP_SETUID]);
            if !cli.readonly {
                set.extend([CAP_CHOWN, CAP_FSETID, CAP_MKNOD]);
                if host_fcaps {
                    set.insert(CAP_SETFCAP);
                }
            }
            if cli.inode_file_handles != FileHandles::Never {
                set.insert(CAP_DAC_READ_SEARCH);
            }
        }
        Backend::MacosLogic => {
            set.extend([
                CAP_DAC_OVERRIDE,
                CAP_DAC_READ_SEARCH,
                CAP_FOWNER,
                CAP_FSETID,
                CAP_SYS_ADMIN,
            ]);
        }
    }
    set
}

/// Applies `--modcaps`: comma- or colon-separated `+name` (add) and `-name` (remove); a name
/// with or without `cap_`, in any case (`+sys_admin`, `-CAP_MKNOD`).
///
/// # Errors
///
/// An entry without a sign or with an unknown name.
pub(crate) fn modify(set: &mut CapsHashSet, spec: &str) -> Result<()> {
    for entry in spec
        .split([',', ':'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (add, name) = if let Some(name) = entry.strip_prefix('+') {
            (true, name)
        } else if let Some(name) = entry.strip_prefix('-') {
            (false, name)
        } else {
            bail!("--modcaps {entry}: each entry is +name or -name")
        };
        let cap: Capability = caps::to_canonical(name)
            .parse()
            .map_err(|_| anyhow::anyhow!("--modcaps {entry}: no capability {name:?}"))?;
        if add {
            set.insert(cap);
        } else {
            set.remove(&cap);
        }
    }
    Ok(())
}

/// `set`'s names, lowercase without `cap_`, in kernel order (`chown,dac_override,...`), or
/// `none`.
pub(crate) fn names(set: &CapsHashSet) -> String {
    let mut caps: Vec<Capability> = set.iter().copied().collect();
    caps.sort_by_key(Capability::index);
    if caps.is_empty() {
        return "none".to_owned();
    }
    caps.iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps only `keep`: the bounding set first (that needs CAP_SETPCAP, dropped after), then the
/// effective and permitted sets; the ambient and inheritable sets emptied (the daemon runs no
/// program). Only capabilities
/// the process has are kept, of course.
///
/// # Errors
///
/// A failing `prctl`/`capset`.
pub(crate) fn keep_only(keep: &CapsHashSet) -> Result<()> {
    let bounding = caps::read(None, CapSet::Bounding).context("reading the bounding set")?;
    for cap in bounding.difference(keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .with_context(|| format!("dropping {cap} from the bounding set"))?;
    }
    caps::clear(None, CapSet::Ambient).context("clearing the ambient set")?;
    let permitted = caps::read(None, CapSet::Permitted).context("reading the permitted set")?;
    let kept: CapsHashSet = permitted.intersection(keep).copied().collect();
    for set in [CapSet::Effective, CapSet::Permitted] {
        caps::set(None, set, &kept).with_context(|| format!("setting the {set:?} set"))?;
    }
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable set")?;
    Ok(())
}

/// The effective set now.
pub(crate) fn effective() -> CapsHashSet {
    caps::read(None, CapSet::Effective).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    fn cli(extra: &[&str]) -> Cli {
        let args = ["virtiofs-device", "--fd=3", "--shared-dir=/d"];
        crate::cli::parse(args.iter().chain(extra)).unwrap()
    }

    #[test]
    fn what_each_configuration_keeps() {
        let base = needed(&cli(&[]), false);
        let expected: CapsHashSet = [
            CAP_CHOWN,
            CAP_DAC_OVERRIDE,
            CAP_FOWNER,
            CAP_FSETID,
            CAP_SETGID,
            CAP_SETUID,
            CAP_MKNOD,
        ]
        .into();
        assert_eq!(base, expected);
        assert_eq!(
            names(&base),
            "chown,dac_override,fowner,fsetid,setgid,setuid,mknod"
        );
        let fcaps = needed(&cli(&["--xattr", "--xattrmap=:ok:all:::"]), true);
        assert_eq!(fcaps.difference(&base).collect::<Vec<_>>(), [&CAP_SETFCAP]);
        let handles = needed(&cli(&["--inode-file-handles=prefer"]), false);
        assert_eq!(
            handles.difference(&base).collect::<Vec<_>>(),
            [&CAP_DAC_READ_SEARCH]
        );
        let ro = needed(&cli(&["--readonly"]), true);
        assert!(ro.is_subset(&base) && !ro.contains(&CAP_CHOWN) && !ro.contains(&CAP_MKNOD));
        let macos = needed(&cli(&["--backend=macos-logic"]), false);
        assert!(macos.contains(&CAP_SYS_ADMIN) && !macos.contains(&CAP_SETUID));
        assert!(!base.contains(&CAP_SYS_ADMIN) && !base.contains(&CAP_SETPCAP));
    }

    #[test]
    fn modcaps_adds_and_removes() {
        let mut set = needed(&cli(&[]), false);
        modify(&mut set, "+sys_admin,-mknod:-CAP_CHOWN, +Cap_Kill").unwrap();
        assert!(set.contains(&CAP_SYS_ADMIN) && set.contains(&CAP_KILL));
        assert!(!set.contains(&CAP_MKNOD) && !set.contains(&CAP_CHOWN));
        modify(&mut set, "").unwrap();
        for bad in ["sys_admin", "+nonsense", "*chown", "é"] {
            let err = modify(&mut set, bad).unwrap_err().to_string();
            assert!(err.starts_with("--modcaps "), "{bad}: {err}");
        }
        assert_eq!(names(&CapsHashSet::new()), "none");
    }
}
