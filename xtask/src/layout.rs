//! `cargo xtask layout`: prove that fuse-abi's wire types have the kernel's layouts.
//!
//! The proof itself is the test `fuse-abi/tests/c_layout.rs`: it compiles a small C program
//! against a `linux/fuse.h` (from the include directory in `FUSE_ABI_C_INCLUDE`, default
//! `/usr/include`) and compares every `sizeof` and `offsetof` with the Rust types. This command
//! runs it twice: against the system's header (Debian bookworm: protocol 7.38) and against the
//! newest header Debian has, the `linux-libc-dev` of [`NEWEST_SUITE`], which it downloads with
//! `apt-get download` into `.cache/` through a private apt configuration whose mirror is derived
//! from the machine's own apt sources (see [`apt`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::util::{self, cargo, step};

/// The Debian suite that carries the newest `linux-libc-dev` (7.3.x: FUSE protocol 7.46).
pub(crate) const NEWEST_SUITE: &str = "trixie-backports";
/// The package that ships `/usr/include/linux/fuse.h`.
const HEADERS_PACKAGE: &str = "linux-libc-dev";
/// The newest-header check is pointless below this protocol minor: fail instead.
const MIN_NEWEST_MINOR: u32 = 45;
/// The include directory of the system's kernel headers.
const SYSTEM_INCLUDE: &str = "/usr/include";

const USAGE: &str = "\
usage: cargo xtask layout [--header-dir DIR]...

Runs fuse-abi's C layout test (fuse-abi/tests/c_layout.rs) against the system's linux/fuse.h
and against the newest Debian linux-libc-dev (downloaded into .cache/ on first use).

  --header-dir DIR   check only against DIR/linux/fuse.h (an include directory such as
                     /usr/include); may be given more than once; nothing is downloaded
";

/// `cargo xtask layout [--header-dir DIR]...`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut dirs = Vec::new();
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("header-dir") => dirs.push(PathBuf::from(p.value()?)),
            other => return Err(p.unexpected(other)),
        }
    }
    if dirs.is_empty() {
        return run_all();
    }
    for dir in &dirs {
        check_against(dir)?;
    }
    Ok(())
}

/// The CI step: the system header, then the newest Debian header.
pub(crate) fn run_all() -> Result<()> {
    check_against(Path::new(SYSTEM_INCLUDE))?;
    let newest = newest_debian_headers()?;
    check_against(&newest)
}

/// Runs the C layout test against `include/linux/fuse.h`.
fn check_against(include: &Path) -> Result<()> {
    let include = fs::canonicalize(include)
        .with_context(|| format!("include directory {} not found", include.display()))?;
    let minor = header_minor(&include)?;
    step(&format!(
        "C layout of fuse-abi vs {}/linux/fuse.h (FUSE_KERNEL_MINOR_VERSION {minor})",
        include.display()
    ));
    let mut test = cargo();
    test.env("FUSE_ABI_C_INCLUDE", &include).args([
        "test",
        "--locked",
        "--package",
        "fuse-abi",
        "--test",
        "c_layout",
        "--",
        "--nocapture",
    ]);
    util::run(test)?;
    println!(
        "layout proof passed against protocol 7.{minor} ({}/linux/fuse.h)",
        include.display()
    );
    Ok(())
}

/// `FUSE_KERNEL_MINOR_VERSION` of `include/linux/fuse.h`.
pub(crate) fn header_minor(include: &Path) -> Result<u32> {
    let path = include.join("linux/fuse.h");
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (on Debian: apt-get install linux-libc-dev)",
            path.display()
        )
    })?;
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some("FUSE_KERNEL_MINOR_VERSION"))
                .then(|| words.next())
                .flatten()
        })
        .find_map(|value| value.parse().ok())
        .with_context(|| format!("no FUSE_KERNEL_MINOR_VERSION in {}", path.display()))
}

/// Downloads (once) and extracts the newest Debian `linux-libc-dev`; returns its include dir.
fn newest_debian_headers() -> Result<PathBuf> {
    step(&format!(
        "newest Debian {HEADERS_PACKAGE} (from {NEWEST_SUITE}, cached in .cache/)"
    ));
    let store = util::root().join(".cache").join(HEADERS_PACKAGE);
    let found = apt::debian_mirror().and_then(|mirror| {
        let apt = apt::PrivateApt::new("debian-newest", &mirror, &[NEWEST_SUITE])?;
        apt.update()?;
        let version = apt.version(HEADERS_PACKAGE, NEWEST_SUITE)?;
        Ok((apt, version))
    });
    let (apt, version) = match found {
        Ok(found) => found,
        Err(err) => {
            // Offline, or the mirror is unreachable: a previous download still proves the point.
            let Some(cached) = newest_cached(&store)? else {
                return Err(err.context(format!(
                    "cannot find {HEADERS_PACKAGE} in {NEWEST_SUITE}, and nothing is cached in {}",
                    store.display()
                )));
            };
            println!("warning: {err:#}");
            println!("warning: using the cached {}", cached.display());
            return Ok(cached.join("usr/include"));
        }
    };
    let dest = store.join(format!("{NEWEST_SUITE}_{}", file_safe(&version)));
    let include = dest.join("usr/include");
    if include.join("linux/fuse.h").is_file() {
        println!(
            "{HEADERS_PACKAGE} {version} from {NEWEST_SUITE}: cached in {}",
            dest.display()
        );
    } else {
        let deb = apt.download(HEADERS_PACKAGE, NEWEST_SUITE)?;
        apt::extract(&deb, &dest)?;
        println!(
            "{HEADERS_PACKAGE} {version} from {NEWEST_SUITE}: extracted to {}",
            dest.display()
        );
    }
    let minor = header_minor(&include)?;
    if minor < MIN_NEWEST_MINOR {
        bail!(
            "{HEADERS_PACKAGE} {version} from {NEWEST_SUITE} is only protocol 7.{minor}; \
             the newest-header check needs 7.{MIN_NEWEST_MINOR} or later (update NEWEST_SUITE \
             in xtask/src/layout.rs)"
        );
    }
    Ok(include)
}

/// The cached header tree in `store` with the highest protocol minor, if any.
fn newest_cached(store: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(store) else {
        return Ok(None);
    };
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in entries {
        let path = entry?.path();
        let Ok(minor) = header_minor(&path.join("usr/include")) else {
            continue;
        };
        if best.as_ref().is_none_or(|(m, _)| minor > *m) {
            best = Some((minor, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// A Debian version as a file name component (`:` of an epoch is not welcome everywhere).
fn file_safe(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '~' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Fetching Debian packages with a private apt configuration.
///
/// Nothing here touches the machine's apt state: the sources list, the package lists and the
/// download cache live under `.cache/apt-<name>/`. The mirror comes from the machine's own apt
/// sources at run time (the repository names no host); `XTASK_DEBIAN_MIRROR` overrides it.
/// Signatures are verified as usual, against the keyring the machine's sources use (by default
/// `/usr/share/keyrings/debian-archive-keyring.gpg`; bookworm's `debian-archive-keyring`
/// already carries the trixie keys).
pub(crate) mod apt {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{Context, Result, bail};

    use crate::util::{self, display};

    /// The keyring used when the machine's source entry names none.
    const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
    /// Environment variable that overrides the mirror URI.
    const MIRROR_ENV: &str = "XTASK_DEBIAN_MIRROR";

    /// A Debian archive: where it is and which keyring signs it.
    #[derive(Debug, Clone)]
    pub(crate) struct Mirror {
        /// The archive's base URI, as in a sources list (`<scheme>://<host>/debian`).
        pub(crate) uri: String,
        /// The keyring apt verifies the archive's Release files with.
        pub(crate) keyring: PathBuf,
    }

    /// One `deb` source entry of the machine.
    struct Entry {
        uri: String,
        suites: Vec<String>,
        signed_by: Option<String>,
    }

    /// The Debian main archive the machine itself uses.
    ///
    /// Chosen as the first `deb` entry whose suites include the running release's codename (or
    /// `<codename>-updates`), or else `stable`/`testing`/`unstable`/`sid`; `-security` archives
    /// are never chosen. `XTASK_DEBIAN_MIRROR` overrides the URI.
    pub(crate) fn debian_mirror() -> Result<Mirror> {
        if let Some(uri) = std::env::var_os(MIRROR_ENV) {
            return Ok(Mirror {
                uri: uri.to_string_lossy().trim_end_matches('/').to_owned(),
                keyring: PathBuf::from(DEFAULT_KEYRING),
            });
        }
        let entries = machine_entries();
        let codename = os_codename();
        let wanted = |suite: &str| {
            codename
                .as_deref()
                .is_some_and(|c| suite == c || suite == format!("{c}-updates"))
        };
        let generic = |suite: &str| matches!(suite, "stable" | "testing" | "unstable" | "sid");
        let entry = entries
            .iter()
            .find(|e| e.suites.iter().any(|s| wanted(s)))
            .or_else(|| entries.iter().find(|e| e.suites.iter().any(|s| generic(s))))
            .with_context(|| {
                format!(
                    "no Debian archive found in /etc/apt/sources.list{{,.d/*}} \
                     (release codename: {}); set {MIRROR_ENV} to the archive's URI",
                    codename.as_deref().unwrap_or("unknown")
                )
            })?;
        let keyring = entry
            .signed_by
            .as_deref()
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_file())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
        Ok(Mirror {
            uri: entry.uri.trim_end_matches('/').to_owned(),
            keyring,
        })
    }

    /// `VERSION_CODENAME` of `/etc/os-release`.
    fn os_codename() -> Option<String> {
        let text = fs::read_to_string("/etc/os-release").ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix("VERSION_CODENAME=")
                .map(|v| v.trim_matches('"').to_owned())
        })
    }

    /// Every enabled `deb` entry of `/etc/apt/sources.list` and `/etc/apt/sources.list.d/`.
    fn machine_entries() -> Vec<Entry> {
        let mut entries = Vec::new();
        if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
            entries.extend(parse_one_line(&text));
        }
        let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            match file.extension().and_then(|e| e.to_str()) {
                Some("sources") => entries.extend(parse_deb822(&text)),
                Some("list") => entries.extend(parse_one_line(&text)),
                _ => {}
            }
        }
        entries
    }

    /// `deb [opts] uri suite component...` lines.
    fn parse_one_line(text: &str) -> Vec<Entry> {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some(rest) = line.strip_prefix("deb ") else {
                continue;
            };
            let mut rest = rest.trim_start();
            let mut signed_by = None;
            if let Some(opts) = rest.strip_prefix('[') {
                let Some((opts, after)) = opts.split_once(']') else {
                    continue;
                };
                signed_by = opts
                    .split_whitespace()
                    .find_map(|o| o.strip_prefix("signed-by="))
                    .map(str::to_owned);
                rest = after.trim_start();
            }
            let mut words = rest.split_whitespace();
            let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
                continue;
            };
            entries.push(Entry {
                uri: uri.to_owned(),
                suites: vec![suite.to_owned()],
                signed_by,
            });
        }
        entries
    }

    /// deb822 paragraphs (`Types:`, `URIs:`, `Suites:`, `Signed-By:`, `Enabled:`).
    fn parse_deb822(text: &str) -> Vec<Entry> {
        let mut entries = Vec::new();
        for paragraph in text.split("\n\n") {
            let field = |name: &str| {
                paragraph.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    (!line.starts_with('#') && key.trim().eq_ignore_ascii_case(name))
                        .then(|| value.trim().to_owned())
                })
            };
            let types = field("Types").unwrap_or_default();
            if !types.split_whitespace().any(|t| t == "deb")
                || field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"))
            {
                continue;
            }
            let suites: Vec<String> = field("Suites")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            let signed_by = field("Signed-By").filter(|s| !s.is_empty());
            for uri in field("URIs").unwrap_or_default().split_whitespace() {
                entries.push(Entry {
                    uri: uri.to_owned(),
                    suites: suites.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
        entries
    }

    /// An apt configuration of our own, under `.cache/apt-<name>/`.
    #[derive(Debug)]
    pub(crate) struct PrivateApt {
        dir: PathBuf,
    }

    impl PrivateApt {
        /// Writes the private sources list for `suites` (component `main`) of `mirror`.
        pub(crate) fn new(name: &str, mirror: &Mirror, suites: &[&str]) -> Result<Self> {
            let dir = util::root().join(".cache").join(format!("apt-{name}"));
            for sub in [
                "lists/partial",
                "cache/archives/partial",
                "sources.list.d",
                "preferences.d",
                "download",
            ] {
                fs::create_dir_all(dir.join(sub))
                    .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
            }
            if !mirror.keyring.is_file() {
                bail!(
                    "keyring {} is missing: apt-get install debian-archive-keyring",
                    mirror.keyring.display()
                );
            }
            let mut list = String::from(
                "# Written by cargo xtask from the machine's apt sources; not the machine's config.\n",
            );
            for suite in suites {
                list.push_str(&format!(
                    "deb [signed-by={}] {} {suite} main\n",
                    mirror.keyring.display(),
                    mirror.uri
                ));
            }
            fs::write(dir.join("sources.list"), list)?;
            Ok(Self { dir })
        }

        /// An apt command that sees only this configuration.
        fn command(&self, program: &str) -> Command {
            let mut cmd = util::cmd(program);
            let opt = |key: &str, value: &Path| format!("{key}={}", value.display());
            for (key, sub) in [
                ("Dir::Etc::SourceList", "sources.list"),
                ("Dir::Etc::SourceParts", "sources.list.d"),
                ("Dir::Etc::Preferences", "preferences"),
                ("Dir::Etc::PreferencesParts", "preferences.d"),
                ("Dir::State::Lists", "lists"),
                ("Dir::Cache", "cache"),
            ] {
                cmd.arg("-o").arg(opt(key, &self.dir.join(sub)));
            }
            // The private directories belong to whoever runs us; apt's `_apt` sandbox user
            // could not write them and would only warn before downloading as root anyway.
            cmd.args(["-o", "APT::Sandbox::User=root", "-q"]);
            cmd
        }

        /// `apt-get update` of the private lists.
        pub(crate) fn update(&self) -> Result<()> {
            let mut cmd = self.command("apt-get");
            // A list that failed to download or to verify is an error, not a warning.
            cmd.args(["--error-on=any", "update"]);
            util::run(cmd).context(
                "apt-get update of the private sources failed; if it is a signature error, \
                 install or upgrade debian-archive-keyring",
            )
        }

        /// The version `apt-get download package/suite` would fetch.
        pub(crate) fn version(&self, package: &str, suite: &str) -> Result<String> {
            let mut cmd = self.command("apt-cache");
            cmd.args(["show", "--no-all-versions", &format!("{package}/{suite}")]);
            let shown = display(&cmd);
            let out = cmd
                .output()
                .with_context(|| format!("failed to start `{shown}`"))?;
            if !out.status.success() {
                bail!(
                    "`{shown}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
                .with_context(|| format!("`{shown}` printed no version"))
        }

        /// Downloads `package` from `suite` and returns the `.deb`.
        pub(crate) fn download(&self, package: &str, suite: &str) -> Result<PathBuf> {
            let into = self.dir.join("download");
            for entry in fs::read_dir(&into)? {
                fs::remove_file(entry?.path())?;
            }
            let mut cmd = self.command("apt-get");
            cmd.current_dir(&into)
                .args(["download", &format!("{package}/{suite}")]);
            util::run(cmd)?;
            let mut debs = fs::read_dir(&into)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()?;
            debs.retain(|p| p.extension().is_some_and(|e| e == "deb"));
            match debs.as_slice() {
                [deb] => Ok(deb.clone()),
                _ => bail!(
                    "expected one .deb in {} after apt-get download, found {}",
                    into.display(),
                    debs.len()
                ),
            }
        }
    }

    /// `dpkg-deb -x deb dest`, atomically: `dest` appears only complete.
    pub(crate) fn extract(deb: &Path, dest: &Path) -> Result<()> {
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let mut cmd = util::cmd("dpkg-deb");
        cmd.arg("-x").arg(deb).arg(&tmp);
        util::run(cmd)?;
        if dest.exists() {
            fs::remove_dir_all(dest)?;
        }
        fs::rename(&tmp, dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn deb822_entries() {
            let text = "Types: deb\n# comment: yes\nURIs: http://a.invalid/debian\n\
                        Suites: bookworm bookworm-updates\nComponents: main\n\
                        Signed-By: /k.gpg\n\nTypes: deb-src\nURIs: http://b.invalid/x\n\
                        Suites: bookworm\n\nTypes: deb\nEnabled: no\nURIs: http://c.invalid\n\
                        Suites: sid\n";
            let entries = parse_deb822(text);
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].uri, "http://a.invalid/debian");
            assert_eq!(entries[0].suites, ["bookworm", "bookworm-updates"]);
            assert_eq!(entries[0].signed_by.as_deref(), Some("/k.gpg"));
        }

        #[test]
        fn one_line_entries() {
            let text = "# deb http://x.invalid/ sid main\n\
                        deb [arch=amd64 signed-by=/k.gpg] http://a.invalid/debian trixie main\n\
                        deb-src http://b.invalid/debian trixie main\n\
                        deb http://c.invalid/debian-security bookworm-security main # tail\n";
            let entries = parse_one_line(text);
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[0].uri, "http://a.invalid/debian");
            assert_eq!(entries[0].suites, ["trixie"]);
            assert_eq!(entries[0].signed_by.as_deref(), Some("/k.gpg"));
            assert_eq!(entries[1].suites, ["bookworm-security"]);
            assert_eq!(entries[1].signed_by, None);
        }
    }
}
