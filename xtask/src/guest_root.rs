//! The Debian guest root: a bookworm userland with fstests, as an ext4 image a guest boots
//! over virtio-blk (`cargo xtask fstests`; the benchmarks can boot the same image).
//!
//! Everything is built under `<cache>/guest-root/` (the cache of [`provision::cache_dir`]) and
//! each stage is skipped when its inputs did not change (a stage's `*.stamp` file holds its
//! inputs, compared as text):
//!
//! ```text
//! fstests/             fstests built on the host from the release tarball (make)
//! rootfs/              mmdebstrap of the machine's Debian suite, fstests copied to /opt/xfstests
//! root.ext4            mke2fs -d rootfs/ (no loop mount); guests open it with snapshot=on
//! initramfs/<k>.cpio.gz  busybox, the modules of a virtio-blk root, xtask/guest-root/*
//! ```
//!
//! Why virtio-blk and not a read-only virtio-fs root: the daemon under test then serves only
//! the TEST and SCRATCH shares, so a root that misbehaves can never be mistaken for a daemon
//! bug (and virtiofsd and ours are compared on the very same root). The guest kernels build
//! `virtio_blk` and `ext4` as modules, so a small busybox initramfs loads them, mounts the
//! image and `switch_root`s into it; the image itself stays kernel-independent.
//!
//! Nothing names a mirror: mmdebstrap gets the machine's own Debian archive
//! ([`crate::layout::apt::debian_mirror`]) and release codename.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::layout::apt::debian_mirror;
use crate::provision::{self, Kernel};
use crate::util::{self, step};

/// The fstests release the tier builds, and its tarball's sha256.
pub(crate) const FSTESTS_TARBALL: &str = "xfstests-v2026.01.27.tar.xz";
const FSTESTS_SHA256: &str = "d2c1a254bd2eef1b411c2bae70a1d6935ea43d4852b83eb4d116209e9d9c3e68";
/// Environment variable naming the tarball when it is not in a `shared/third_party/` next to
/// the repository.
pub(crate) const FSTESTS_TARBALL_ENV: &str = "FSTESTS_TARBALL";

/// Host packages that build fstests (its README's list for Debian, build side) and the image.
pub(crate) const HOST_PACKAGES: &[&str] = &[
    "mmdebstrap",         // the guest root
    "e2fsprogs",          // mke2fs -d
    "make",               // fstests' build
    "gcc",                //
    "automake",           //
    "libtool-bin",        //
    "pkg-config",         //
    "gawk",               //
    "uuid-dev",           // fstests' build dependencies
    "xfslibs-dev",        //
    "libacl1-dev",        //
    "libaio-dev",         //
    "libcap-dev",         //
    "libgdbm-dev",        //
    "libgdbm-compat-dev", //
    "liburing-dev",       //
];

/// Debian packages of the guest root (on top of mmdebstrap's minbase variant): what fstests
/// runs (its README's list, run side) and what benchmarks need (fio).
const GUEST_PACKAGES: &[&str] = &[
    "acl",
    "attr",
    "bc",
    "bsdextrautils",
    "dbench",
    "e2fsprogs",
    "file",
    "fio",
    "gawk",
    "kmod",
    "libaio1",
    "libcap2-bin",
    "libgdbm-compat4",
    "libgdbm6",
    "liburing2",
    "perl",
    "procps",
    "psmisc",
    "python3",
    "quota",
    "sqlite3",
    "strace",
    "util-linux",
    "uuid-runtime",
    "xfsdump",
    "xfsprogs",
    "xz-utils",
];

/// The users and groups fstests switches to (README: fsgqa, 123456-fsgqa, fsgqa2): written
/// into passwd/group/shadow directly, since useradd refuses a name starting with a digit.
const GUEST_USERS: &[(&str, u32)] = &[("fsgqa", 1000), ("123456-fsgqa", 1001), ("fsgqa2", 1002)];

/// Where fstests lives in the guest.
pub(crate) const GUEST_FSTESTS: &str = "/opt/xfstests";

/// The built guest root.
#[derive(Debug, Clone)]
pub(crate) struct GuestRoot {
    /// The ext4 image (open it with `snapshot=on`: it is shared by every run).
    pub(crate) image: PathBuf,
    /// The fstests tree built on the host (the same as the guest's [`GUEST_FSTESTS`]): its
    /// `tests/*/*.out` are what the guest's `results/*.out.bad` are compared with.
    pub(crate) fstests: PathBuf,
}

/// `<cache>/guest-root` (created if missing).
fn dir(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("guest-root");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Installs the host packages, builds fstests and the root image unless they are current.
pub(crate) fn ensure(cache: &Path) -> Result<GuestRoot> {
    provision::ensure_packages(HOST_PACKAGES)?;
    let dir = dir(cache)?;
    let (fstests, fstests_stamp) = ensure_fstests(&dir)?;
    let (rootfs, rootfs_stamp) = ensure_rootfs(&dir)?;
    let image = dir.join("root.ext4");
    let stamp_path = dir.join("root.ext4.stamp");
    let stamp = format!("{rootfs_stamp}\n{fstests_stamp}\nimage 1\n");
    if image.is_file() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(GuestRoot { image, fstests });
    }
    step("guest root image");
    let _ = fs::remove_file(&stamp_path);
    // fstests into the root, afresh.
    let installed = rootfs.join(GUEST_FSTESTS.trim_start_matches('/'));
    if installed.exists() {
        fs::remove_dir_all(&installed)?;
    }
    let mut cp = util::cmd("cp");
    cp.arg("-a").arg(&fstests).arg(&installed);
    util::run(cp)?;
    let used = du_bytes(&rootfs)?;
    // Room for what the tests write on the root (results/, /tmp), on top of what is there.
    let size_mib = used / (1 << 20) * 5 / 4 + 1024;
    let partial = dir.join("root.ext4.partial");
    let _ = fs::remove_file(&partial);
    let mut mke2fs = util::cmd("mke2fs");
    // No metadata_csum: ext4 would need the crc32c crypto module first, which modules.dep
    // does not list as a dependency.
    mke2fs
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^metadata_csum,^metadata_csum_seed",
        ])
        .args(["-L", "guest-root", "-d"])
        .arg(&rootfs)
        .arg(&partial)
        .arg(format!("{size_mib}M"));
    util::run(mke2fs)?;
    fs::rename(&partial, &image)?;
    fs::write(&stamp_path, stamp)?;
    Ok(GuestRoot { image, fstests })
}

/// Bytes used under `path` (`du -sb`).
fn du_bytes(path: &Path) -> Result<u64> {
    let mut du = util::cmd("du");
    du.arg("-sb").arg(path);
    let text = provision::output(du)?;
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("du -sb {}: `{text}`", path.display()))
}

/// The fstests tarball: `$FSTESTS_TARBALL`, else `shared/third_party/<name>` in a parent of
/// the repository (the machine keeps third-party sources there, outside any clone).
pub(crate) fn tarball() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(FSTESTS_TARBALL_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let root = util::root();
    root.ancestors()
        .skip(1)
        .map(|a| a.join("shared/third_party").join(FSTESTS_TARBALL))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{FSTESTS_TARBALL} not found in a shared/third_party/ above {}; \
                 set {FSTESTS_TARBALL_ENV} to its path",
                root.display()
            )
        })
}

/// Builds fstests from the tarball into `<dir>/fstests` unless it was built from the same one.
/// Returns the tree and its stamp.
fn ensure_fstests(dir: &Path) -> Result<(PathBuf, String)> {
    let tree = dir.join("fstests");
    let stamp_path = dir.join("fstests.stamp");
    let stamp = format!("fstests {FSTESTS_TARBALL} sha256 {FSTESTS_SHA256} build 1");
    if tree.is_dir() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok((tree, stamp));
    }
    step(&format!("fstests from {FSTESTS_TARBALL}"));
    let tarball = tarball()?;
    let mut sha = util::cmd("sha256sum");
    sha.arg(&tarball);
    let sum = provision::output(sha)?;
    if sum.split_whitespace().next() != Some(FSTESTS_SHA256) {
        bail!(
            "{}: sha256 {} is not the expected {FSTESTS_SHA256}",
            tarball.display(),
            sum.split_whitespace().next().unwrap_or("?")
        );
    }
    let _ = fs::remove_file(&stamp_path);
    let partial = dir.join("fstests.partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(&partial)?;
    let mut tar = util::cmd("tar");
    tar.arg("-xJf")
        .arg(&tarball)
        .arg("--strip-components=1")
        .arg("-C")
        .arg(&partial);
    util::run(tar)?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut make = util::cmd("make");
    make.current_dir(&partial).arg(format!("-j{jobs}"));
    util::run(make).context("building fstests (its build dependencies: HOST_PACKAGES)")?;
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::rename(&partial, &tree)?;
    fs::write(&stamp_path, &stamp)?;
    Ok((tree, stamp))
}

/// The machine's Debian release codename (`VERSION_CODENAME` of /etc/os-release).
fn codename() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .context("no VERSION_CODENAME in /etc/os-release")
}

/// mmdebstrap's root into `<dir>/rootfs` unless it was made from the same recipe. Returns the
/// directory and its stamp (the recipe).
fn ensure_rootfs(dir: &Path) -> Result<(PathBuf, String)> {
    let rootfs = dir.join("rootfs");
    let stamp_path = dir.join("rootfs.stamp");
    let suite = codename()?;
    let mirror = debian_mirror()?;
    let sources: Vec<String> = [suite.clone(), format!("{suite}-updates")]
        .iter()
        .map(|s| {
            format!(
                "deb [signed-by={}] {} {s} main",
                mirror.keyring.display(),
                mirror.uri
            )
        })
        .collect();
    let hook = users_hook();
    let stamp = format!(
        "rootfs suite {suite}\nsources {}\npackages {}\nhook {hook}\n",
        sources.join(" | "),
        GUEST_PACKAGES.join(" ")
    );
    if rootfs.is_dir() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok((rootfs, stamp));
    }
    step(&format!("guest root: mmdebstrap {suite}"));
    let _ = fs::remove_file(&stamp_path);
    let partial = dir.join("rootfs.partial");
    for old in [&partial, &rootfs] {
        if old.exists() {
            fs::remove_dir_all(old)?;
        }
    }
    let mut cmd = util::cmd("mmdebstrap");
    cmd.args(["--variant=minbase", "--mode=root", "--format=directory"])
        .arg(format!("--include={}", GUEST_PACKAGES.join(",")))
        .arg(format!("--customize-hook={hook}"))
        .arg(&suite)
        .arg(&partial)
        .args(&sources);
    util::run(cmd)?;
    fs::rename(&partial, &rootfs)?;
    fs::write(&stamp_path, &stamp)?;
    Ok((rootfs, stamp))
}

/// The mmdebstrap hook (a shell command, `$1` the root) that adds [`GUEST_USERS`], their
/// groups and home directories, and a host name.
fn users_hook() -> String {
    let mut script = String::from("set -e; r=\"$1\"; echo fstests > \"$r/etc/hostname\";");
    for (name, id) in GUEST_USERS {
        script.push_str(&format!(
            " echo '{name}:x:{id}:{id}::/home/{name}:/bin/bash' >> \"$r/etc/passwd\";\
              echo '{name}:x:{id}:' >> \"$r/etc/group\";\
              echo '{name}:*:19000:0:99999:7:::' >> \"$r/etc/shadow\";\
              mkdir -p \"$r/home/{name}\"; chown {id}:{id} \"$r/home/{name}\";"
        ));
    }
    script
}

/// Builds `<cache>/guest-root/initramfs/<label>.cpio.gz`: busybox, the modules `kernel` needs
/// for a virtio-blk ext4 root, and the files of `xtask/guest-root/` (`init` at the root, the
/// rest in `/guest`, which `init` copies to the root image's `/opt/guest` before
/// `switch_root`). Cheap: rebuilt on every run.
pub(crate) fn build_initramfs(cache: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let out_dir = dir(cache)?.join("initramfs");
    let stage = out_dir.join(format!("{}.d", kernel.label));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    for sub in [
        "bin",
        "dev",
        "proc",
        "sys",
        "newroot",
        "guest",
        "lib/modules/root",
    ] {
        fs::create_dir_all(stage.join(sub))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: apt-get install busybox-static");
    }
    provision::copy_exec(busybox, &stage.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", stage.join("bin/sh"))?;
    let scripts = util::root().join("xtask").join("guest-root");
    let mut names = BTreeSet::new();
    for entry in
        fs::read_dir(&scripts).with_context(|| format!("cannot read {}", scripts.display()))?
    {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            names.insert(name.to_owned());
        }
    }
    for name in names {
        let dst = if name == "init" {
            stage.join("init")
        } else {
            stage.join("guest").join(&name)
        };
        provision::copy_exec(&scripts.join(&name), &dst)?;
    }
    for entry in fs::read_dir(&kernel.root_modules)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, stage.join("lib/modules/root").join(name))?;
        }
    }
    let image = out_dir.join(format!("{}.cpio.gz", kernel.label));
    let mut cmd = util::cmd("bash");
    cmd.current_dir(&stage).arg("-c").arg(format!(
        "set -o pipefail; find . -mindepth 1 | LC_ALL=C sort | \
         cpio --quiet -o -H newc -R 0:0 | gzip -1 > '{}'",
        image.display()
    ));
    util::run(cmd).context("building the guest-root initramfs (is cpio installed?)")?;
    fs::remove_dir_all(&stage)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_hook_adds_every_user() {
        let hook = users_hook();
        for (name, id) in GUEST_USERS {
            assert!(hook.contains(&format!("'{name}:x:{id}:{id}::")), "{hook}");
            assert!(hook.contains(&format!("'{name}:x:{id}:'")), "{hook}");
        }
        // The hook's shell quoting: no single quote inside a name.
        assert!(GUEST_USERS.iter().all(|(n, _)| !n.contains('\'')));
    }

    #[test]
    fn package_lists_have_no_duplicates() {
        for list in [GUEST_PACKAGES, HOST_PACKAGES] {
            let set: BTreeSet<&str> = list.iter().copied().collect();
            assert_eq!(set.len(), list.len());
        }
    }
}
