//! Provisioning for the guest tier (`cargo xtask e2e`): host tools, Debian guest kernels, the
//! test binaries from crates.io and a busybox initramfs, all cached idempotently under
//! `.cache/e2e/` at the repository root (`VIRTIOFS_CACHE` overrides the directory).
//!
//! Layout of the cache:
//!
//! ```text
//! apt-trixie-backports/      private apt configuration (sources list, lists, download cache)
//! kernels/<label>/           vmlinuz, config, modules/<name>.ko + modules/load, kernel.txt
//! tools/bin/                 pjdfstest, fsx (cargo install --root tools), virtiofsd (stand-in)
//! initramfs/<label>.cpio.gz  rebuilt on every run from the files below (cheap)
//! runs/<label>/              console.log, daemon.log, shared/ of the last run
//! ```
//!
//! Nothing names a mirror: bookworm kernels come through the machine's own apt, and trixie's
//! backports through a private apt configuration whose URI is derived at run time from the
//! machine's apt sources ([`crate::layout::apt::debian_mirror`]), signatures checked against
//! the same keyring the machine's sources use.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::layout::apt::debian_mirror;
use crate::util::{self, display, step};

/// Environment variable that moves the cache directory.
pub(crate) const CACHE_ENV: &str = "VIRTIOFS_CACHE";

/// Debian packages the guest tier needs on the host (`.ci/run` installs the same list).
pub(crate) const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86", // qemu-system-x86_64
    "busybox-static",  // the guest's userland
    "cpio",            // the initramfs archive
    "kmod",            // depmod, for modules.dep of the extracted kernels
    "xz-utils",        // compressed kernel modules
    "libacl1-dev",     // pjdfstest links -lacl when it is built
];

/// Extra host packages to build the stand-in daemon (virtiofsd from crates.io).
const STAND_IN_PACKAGES: &[&str] = &["libcap-ng-dev", "libseccomp-dev"];

/// Test binaries from crates.io, pinned.
const TOOLS: &[(&str, &str)] = &[("pjdfstest", "0.2.2"), ("fsx", "0.3.2")];

/// The stand-in vhost-user-fs daemon (dev only; not in bookworm's archive).
pub(crate) const STAND_IN: (&str, &str) = ("virtiofsd", "1.14.0");

/// Host binaries copied into the guest at the same path (the guest's PATH puts `/usr/bin`
/// before busybox's `/bin`). pjdfstest's ETXTBSY tests copy and execute `which sleep`: a copy of
/// busybox under another name is no `sleep` (it exits at once, and the tests race with it).
const HOST_BINARIES: &[&str] = &["/usr/bin/sleep"];

/// Modules the guest needs for virtio-fs over PCI, loaded with their dependencies unless the
/// kernel has them built in.
const GUEST_MODULES: &[&str] = &["virtio_pci", "virtiofs"];

/// Modules a guest with a Debian root on virtio-blk needs before it can mount that root
/// (`cargo xtask fstests`, [`crate::guest_root`]): the block driver and ext4 with their
/// dependencies, on top of [`GUEST_MODULES`], unless built in. ext4 asks the crypto API for
/// `crc32c` at mount (6.12), which modules.dep does not list; a name ending in `?` is loaded
/// when the kernel has it (7.3 computes crc32c in a library instead).
const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtiofs",
    "virtio_blk",
    "crc32c_generic?",
    "ext4",
];

/// The cache directory (created if missing).
pub(crate) fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => util::root().join(".cache").join("e2e"),
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Where a guest kernel comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The machine's own apt configuration (bookworm).
    Host,
    /// A private apt configuration for this suite of the machine's Debian mirror.
    Private(&'static str),
}

/// One guest kernel the tier boots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelSpec {
    /// What `--kernel` calls it: `6.1`, `6.12`, `7.3`.
    pub(crate) label: &'static str,
    /// The meta-package that names the current image package.
    meta: &'static str,
    source: Source,
}

/// Every guest kernel, in boot order.
pub(crate) const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        label: "6.1",
        meta: "linux-image-amd64",
        source: Source::Host,
    },
    KernelSpec {
        label: "6.12",
        meta: "linux-image-6.12-amd64",
        source: Source::Host,
    },
    KernelSpec {
        label: "7.3",
        meta: "linux-image-amd64",
        source: Source::Private("trixie-backports"),
    },
];

/// A provisioned kernel.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    /// `--kernel` label.
    pub(crate) label: &'static str,
    /// The kernel release (`uname -r` in the guest).
    pub(crate) release: String,
    /// The bootable image.
    pub(crate) vmlinuz: PathBuf,
    /// Directory with the modules to insmod and `load`, their order (empty when built in).
    pub(crate) modules: PathBuf,
    /// The same for a guest whose root is an ext4 image on virtio-blk ([`ROOT_MODULES`]).
    pub(crate) root_modules: PathBuf,
}

/// The test binaries in the cache.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// Binaries to put in the guest's `/bin`.
    pub(crate) binaries: Vec<PathBuf>,
}

/// Installs the missing host packages with apt-get (we run as root in CI).
pub(crate) fn ensure_host_packages() -> Result<()> {
    ensure_packages(HOST_PACKAGES)
}

pub(crate) fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("host packages: {}", missing.join(" ")));
    let install = || {
        let mut cmd = util::cmd("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing);
        util::run(cmd)
    };
    if install().is_err() {
        util::run(apt_get_update_cmd())?;
        install().with_context(|| {
            format!(
                "cannot install {} (run as root, or install them yourself)",
                missing.join(" ")
            )
        })?;
    }
    Ok(())
}

fn apt_get_update_cmd() -> Command {
    let mut cmd = util::cmd("apt-get");
    cmd.args(["update", "-q"]);
    cmd
}

fn package_installed(package: &str) -> bool {
    util::cmd("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The stdout of `cmd`, failing with its stderr.
pub(crate) fn output(mut cmd: Command) -> Result<String> {
    let shown = display(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An apt configuration: the machine's own, or a private one in the cache.
struct Apt {
    /// The private configuration's directory; `None` for the machine's.
    private: Option<PathBuf>,
}

impl Apt {
    /// The private configuration for `suite` of the machine's Debian mirror, lists updated.
    fn private(cache: &Path, suite: &str) -> Result<Self> {
        let dir = cache.join(format!("apt-{suite}"));
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mirror = debian_mirror()?;
        if !mirror.keyring.is_file() {
            bail!(
                "keyring {} is missing: apt-get install debian-archive-keyring",
                mirror.keyring.display()
            );
        }
        let list = format!(
            "# Written by cargo xtask e2e from the machine's apt sources.\n\
             deb [signed-by={}] {} {suite} main\n",
            mirror.keyring.display(),
            mirror.uri
        );
        fs::write(dir.join("sources.list"), list)?;
        let apt = Self { private: Some(dir) };
        let mut update = apt.command("apt-get");
        update.arg("update");
        util::run(update).context(
            "apt-get update of the private sources failed; if it is a signature error, \
             install or upgrade debian-archive-keyring",
        )?;
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = util::cmd(program);
        if let Some(dir) = &self.private {
            for (key, sub) in [
                ("Dir::Etc::SourceList", "sources.list"),
                ("Dir::Etc::SourceParts", "sources.list.d"),
                ("Dir::State::Lists", "lists"),
                ("Dir::Cache", "cache"),
            ] {
                cmd.arg("-o")
                    .arg(format!("{key}={}", dir.join(sub).display()));
            }
        }
        // Our download directory belongs to whoever runs us; apt's `_apt` sandbox user could
        // not write it and would only warn before downloading as root anyway.
        cmd.args(["-o", "APT::Sandbox::User=root", "-q"]);
        cmd
    }

    /// The `Depends:` of `package`, as apt-cache prints them (virtual ones skipped).
    fn depends(&self, package: &str) -> Result<Vec<String>> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["depends", package]);
        let text = output(cmd)?;
        Ok(text
            .lines()
            .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends: "))
            .filter(|d| !d.starts_with('<'))
            .map(str::to_owned)
            .collect())
    }

    /// Package names starting with `prefix`.
    fn pkgnames(&self, prefix: &str) -> Result<Vec<String>> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["pkgnames", prefix]);
        Ok(output(cmd)?.lines().map(str::to_owned).collect())
    }

    /// `apt-get download packages` into `into`.
    fn download(&self, packages: &[String], into: &Path) -> Result<()> {
        let mut cmd = self.command("apt-get");
        cmd.current_dir(into).arg("download").args(packages);
        util::run(cmd)
    }
}

/// The image package of `spec`: the meta-package's dependency when it still has the wanted
/// `major.minor`, else the newest `linux-image-<label>.*-amd64` the lists have.
fn resolve_image(apt: &Apt, spec: &KernelSpec) -> Result<String> {
    let prefix = format!("linux-image-{}.", spec.label);
    let plain = |name: &str| {
        name.starts_with(&prefix)
            && name.ends_with("-amd64")
            && !["-cloud-", "-rt-", "-dbg", "-unsigned"]
                .iter()
                .any(|w| name.contains(w))
    };
    if let Some(found) = apt.depends(spec.meta)?.into_iter().find(|d| plain(d)) {
        return Ok(found);
    }
    let mut names: Vec<String> = apt
        .pkgnames(&prefix)?
        .into_iter()
        .filter(|n| plain(n))
        .collect();
    names.sort_by_key(|n| version_key(n));
    names
        .pop()
        .with_context(|| format!("no {prefix}*-amd64 package in the apt lists"))
}

/// A numeric sort key for version-like strings: every run of digits, in order.
fn version_key(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Provisions the guest kernel `spec` (idempotent: a complete kernel directory is reused).
pub(crate) fn ensure_kernel(cache: &Path, spec: &KernelSpec) -> Result<Kernel> {
    let dir = cache.join("kernels").join(spec.label);
    // A kernel provisioned before the root modules existed is provisioned again.
    if let Ok(release) = fs::read_to_string(dir.join("ready"))
        && dir.join("modules-root/load").is_file()
    {
        return Ok(Kernel {
            label: spec.label,
            release: release.trim().to_owned(),
            vmlinuz: dir.join("vmlinuz"),
            modules: dir.join("modules"),
            root_modules: dir.join("modules-root"),
        });
    }
    step(&format!("guest kernel {}", spec.label));
    let apt = match spec.source {
        Source::Host => Apt { private: None },
        Source::Private(suite) => Apt::private(cache, suite)?,
    };
    let image = match resolve_image(&apt, spec) {
        Ok(image) => image,
        Err(first) if apt.private.is_none() => {
            // The machine's lists may be missing or stale (a fresh machine): update, retry.
            util::run(apt_get_update_cmd())?;
            resolve_image(&apt, spec).context(first)?
        }
        Err(e) => return Err(e),
    };
    let release = image
        .strip_prefix("linux-image-")
        .context("image package name")?
        .to_owned();
    // Newer Debian kernels split the image into linux-binary-/linux-modules-/linux-base-<rel>.
    let mut packages = vec![image.clone()];
    packages.extend(
        apt.depends(&image)?
            .into_iter()
            .filter(|d| d.ends_with(&release) && *d != image),
    );
    println!("{}: {} ({})", spec.label, release, packages.join(", "));

    let work = cache
        .join("kernels")
        .join(format!("{}.partial", spec.label));
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let debs = work.join("debs");
    let tree = work.join("root");
    fs::create_dir_all(&debs)?;
    fs::create_dir_all(&tree)?;
    apt.download(&packages, &debs)?;
    for deb in fs::read_dir(&debs)? {
        let mut cmd = util::cmd("dpkg-deb");
        cmd.arg("-x").arg(deb?.path()).arg(&tree);
        util::run(cmd)?;
    }

    // Where this kernel keeps its files: /lib/modules (bookworm) or /usr/lib/modules (newer).
    let (base, moddir) = ["usr", ""]
        .iter()
        .map(|sub| {
            let base = if sub.is_empty() {
                tree.clone()
            } else {
                tree.join(sub)
            };
            let moddir = base.join("lib/modules").join(&release);
            (base, moddir)
        })
        .find(|(_, moddir)| moddir.is_dir())
        .with_context(|| format!("no lib/modules/{release} in {}", tree.display()))?;
    let pick = |names: &[PathBuf]| names.iter().find(|p| p.is_file()).cloned();
    let vmlinuz = pick(&[
        tree.join(format!("boot/vmlinuz-{release}")),
        moddir.join("vmlinuz"),
    ])
    .with_context(|| format!("no vmlinuz for {release} in {}", tree.display()))?;
    let config = pick(&[
        tree.join(format!("boot/config-{release}")),
        moddir.join("config"),
    ])
    .with_context(|| format!("no config for {release} in {}", tree.display()))?;

    let out = work.join("out");
    let modules = out.join("modules");
    fs::create_dir_all(&modules)?;
    fs::copy(&vmlinuz, out.join("vmlinuz"))?;
    fs::copy(&config, out.join("config"))?;
    let loaded = collect_modules(&base, &moddir, &release, GUEST_MODULES, &modules)?;
    let root_modules = out.join("modules-root");
    fs::create_dir_all(&root_modules)?;
    let root_loaded = collect_modules(&base, &moddir, &release, ROOT_MODULES, &root_modules)?;
    let config_text = fs::read_to_string(&config)?;
    let mut info = format!("package {image}\nrelease {release}\n");
    for option in ["VIRTIO", "VIRTIO_PCI", "FUSE_FS", "VIRTIO_FS", "FUSE_DAX"] {
        let key = format!("CONFIG_{option}=");
        let value = config_text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or("n");
        info.push_str(&format!("CONFIG_{option}={value}\n"));
    }
    info.push_str(&format!("insmod {}\n", loaded.join(" ")));
    info.push_str(&format!("insmod-root {}\n", root_loaded.join(" ")));
    print!("{info}");
    fs::write(out.join("kernel.txt"), info)?;
    fs::write(out.join("ready"), format!("{release}\n"))?;

    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&out, &dir)?;
    fs::remove_dir_all(&work)?;
    ensure_kernel(cache, spec)
}

/// Copies the modules of `modules` that are not built in, with their dependencies (from
/// `modules.dep`, generated with depmod since the packages ship none), into `into`,
/// decompressed, and writes their load order to `into/load`. Returns that order.
fn collect_modules(
    base: &Path,
    moddir: &Path,
    release: &str,
    modules: &[&str],
    into: &Path,
) -> Result<Vec<String>> {
    let module_name = |path: &str| -> String {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.split(".ko").next().unwrap_or(file);
        stem.replace('-', "_")
    };
    let builtin: BTreeSet<String> = fs::read_to_string(moddir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect();
    let wanted: Vec<(&str, bool)> = modules
        .iter()
        .map(|m| match m.strip_suffix('?') {
            Some(name) => (name, true),
            None => (*m, false),
        })
        .filter(|(m, _)| !builtin.contains(*m))
        .collect();
    let mut order: Vec<String> = Vec::new();
    fs::write(into.join("load"), "")?;
    if wanted.is_empty() {
        return Ok(order);
    }
    if !moddir.join("modules.dep").is_file() {
        let mut cmd = util::cmd("depmod");
        cmd.arg("-b").arg(base).arg(release);
        util::run(cmd).context("depmod (apt-get install kmod)")?;
    }
    let dep = fs::read_to_string(moddir.join("modules.dep"))?;
    let entries: Vec<(String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| {
            let (module, deps) = l.split_once(':')?;
            Some((
                module.to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect();
    for (name, optional) in wanted {
        let found = entries.iter().find(|(p, _)| module_name(p) == name);
        let Some((path, deps)) = found else {
            if optional {
                continue;
            }
            bail!("module {name} is neither built in nor in modules.dep");
        };
        // modules.dep lists dependencies so that the last one loads first.
        for file in deps.iter().rev().chain(std::iter::once(path)) {
            let module = module_name(file);
            if order.contains(&module) {
                continue;
            }
            let src = moddir.join(file);
            let dst = into.join(format!("{module}.ko"));
            let decompress = match file.rsplit('.').next() {
                Some("xz") => Some("xz"),
                Some("zst") => Some("zstd"),
                Some("gz") => Some("gzip"),
                _ => None,
            };
            match decompress {
                Some(tool) => {
                    let mut cmd = util::cmd(tool);
                    cmd.arg("-dc").arg(&src);
                    let out = cmd
                        .output()
                        .with_context(|| format!("cannot run {tool} on {}", src.display()))?;
                    if !out.status.success() {
                        bail!("{tool} -dc {} failed", src.display());
                    }
                    fs::write(&dst, out.stdout)?;
                }
                None => {
                    fs::copy(&src, &dst)
                        .with_context(|| format!("cannot copy {}", src.display()))?;
                }
            }
            order.push(module);
        }
    }
    let load: String = order.iter().map(|m| format!("{m}.ko\n")).collect();
    fs::write(into.join("load"), load)?;
    Ok(order)
}

/// `cargo install`s `name@version` into `<cache>/tools` unless that version is there.
fn ensure_crate(cache: &Path, name: &str, version: &str) -> Result<PathBuf> {
    let root = cache.join("tools");
    let binary = root.join("bin").join(name);
    let registered = fs::read_to_string(root.join(".crates.toml"))
        .is_ok_and(|t| t.contains(&format!("\"{name} {version} ")));
    if binary.is_file() && registered {
        return Ok(binary);
    }
    step(&format!("{name} {version} from crates.io"));
    let mut cmd = util::cargo();
    // Outside the workspace, so that nothing of ours (config, toolchain) applies to it.
    cmd.current_dir(cache)
        .args(["install", "--locked", "--root"])
        .arg(&root)
        .arg(format!("{name}@{version}"));
    util::run(cmd)?;
    Ok(binary)
}

/// pjdfstest and fsx, installed from crates.io into the cache.
pub(crate) fn ensure_tools(cache: &Path) -> Result<Tools> {
    let binaries = TOOLS
        .iter()
        .map(|(name, version)| ensure_crate(cache, name, version))
        .collect::<Result<_>>()?;
    Ok(Tools { binaries })
}

/// The stand-in daemon (virtiofsd from crates.io), for developing the harness before our own
/// daemon exists. Needs libcap-ng and libseccomp headers, installed here if missing.
pub(crate) fn ensure_stand_in(cache: &Path) -> Result<PathBuf> {
    ensure_packages(STAND_IN_PACKAGES)?;
    ensure_crate(cache, STAND_IN.0, STAND_IN.1)
}

/// Builds `<cache>/initramfs/<label>.cpio.gz`: static busybox, the guest scripts of
/// `xtask/guest/` (`init` at the root, the rest in `/e2e`), the kernel's modules, the test
/// binaries and the shared libraries they need.
pub(crate) fn build_initramfs(cache: &Path, kernel: &Kernel, tools: &Tools) -> Result<PathBuf> {
    build_initramfs_in(&cache.join("initramfs"), kernel, tools)
}

/// [`build_initramfs`] into `out_dir` (`<out_dir>/<label>.cpio.gz`), so that `cargo xtask demo`
/// builds its own image without racing an e2e run over the cache's.
pub(crate) fn build_initramfs_in(
    out_dir: &Path,
    kernel: &Kernel,
    tools: &Tools,
) -> Result<PathBuf> {
    let stage = out_dir.join(format!("{}.d", kernel.label));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    for dir in [
        "bin", "sbin", "dev", "proc", "sys", "tmp", "mnt", "root", "etc", "e2e",
    ] {
        fs::create_dir_all(stage.join(dir))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: apt-get install busybox-static");
    }
    copy_exec(busybox, &stage.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", stage.join("bin/sh"))?;

    let guest = util::root().join("xtask").join("guest");
    for entry in fs::read_dir(&guest).with_context(|| format!("cannot read {}", guest.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let dst = if name == "init" {
            stage.join("init")
        } else {
            stage.join("e2e").join(name)
        };
        copy_exec(&path, &dst)?;
    }
    // Users and groups pjdfstest switches to (its default dummy_auth entries).
    fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         tests:x:1000:1000:tests:/tmp:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    )?;
    fs::write(
        stage.join("etc/group"),
        "root:x:0:\ntests:x:1000:tests\nnobody:x:65534:nobody\n",
    )?;

    let modules = stage.join("lib/modules/e2e");
    fs::create_dir_all(&modules)?;
    for entry in fs::read_dir(&kernel.modules)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, modules.join(name))?;
        }
    }

    let mut libraries = BTreeSet::new();
    for binary in &tools.binaries {
        let name = binary.file_name().context("binary name")?;
        copy_exec(binary, &stage.join("bin").join(name))?;
        libraries.extend(shared_libraries(binary)?);
    }
    for binary in HOST_BINARIES {
        let binary = Path::new(binary);
        let relative = binary.strip_prefix("/").unwrap_or(binary);
        fs::create_dir_all(stage.join(relative).parent().context("parent")?)?;
        copy_exec(binary, &stage.join(relative))?;
        libraries.extend(shared_libraries(binary)?);
    }
    for library in libraries {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        let dst = stage.join(relative);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        // fs::copy follows symbolic links: the guest gets the real file under the linked name.
        fs::copy(&library, &dst).with_context(|| format!("cannot copy {}", library.display()))?;
    }

    let image = out_dir.join(format!("{}.cpio.gz", kernel.label));
    let mut cmd = util::cmd("bash");
    cmd.current_dir(&stage).arg("-c").arg(format!(
        "set -o pipefail; find . -mindepth 1 | LC_ALL=C sort | \
         cpio --quiet -o -H newc -R 0:0 | gzip -1 > '{}'",
        image.display()
    ));
    let shown = display(&cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !status.success() {
        bail!("building the initramfs failed: `{shown}` ({status}); is cpio installed?");
    }
    fs::remove_dir_all(&stage)?;
    Ok(image)
}

/// Copies an executable, keeping it executable.
pub(crate) fn copy_exec(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::copy(src, dst).with_context(|| format!("cannot copy {}", src.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The absolute paths `ldd` resolves for `binary` (libraries and the dynamic loader).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = util::cmd("ldd");
    cmd.arg(binary);
    let text = output(cmd)?;
    Ok(text
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn version_key_orders_numerically() {
        let mut names = [
            "linux-image-7.3.10+deb13-amd64",
            "linux-image-7.3.4+deb13-amd64",
            "linux-image-7.3.9+deb13-amd64",
        ];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names[2], "linux-image-7.3.10+deb13-amd64");
    }
}
