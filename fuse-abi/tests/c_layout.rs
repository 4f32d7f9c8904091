//! Proof that fuse-abi's wire types have the kernel's layouts.
//!
//! The test reads `linux/fuse.h` from the include directory in `FUSE_ABI_C_INCLUDE` (default
//! `/usr/include`), finds every struct and every field it declares, generates a C program that
//! prints `sizeof` and `offsetof` of each, compiles it with `cc` (or `$CC`), runs it, and compares
//! the numbers with `size_of`/`offset_of!` of the Rust types listed in [`table`].
//!
//! It fails, rather than skips, when the header declares a struct or a field the table does not
//! list, so a newer header cannot go unchecked; and when the table says a struct or field exists
//! since a minor the header has, yet the header lacks it. Fields that changed layout in a later
//! minor than the header's are not compared (they carry `@ minor` in the table).
//!
//! It skips, loudly, only without a C compiler or (with `FUSE_ABI_C_INCLUDE` unset) without
//! `/usr/include/linux/fuse.h`; with `CI` set it fails instead.
//!
//! `cargo xtask layout` runs this against the system header and the newest Debian header.
//!
//! Naming: C `struct fuse_foo_bar` is `fuse_abi::FooBar`; fields keep their C names except that
//! C `type` is `typ` and leading underscores are dropped; flexible array members are omitted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use fuse_abi as abi;

/// The oldest header this table describes precisely (its `@ minor` notes start here).
const OLDEST_HEADER_MINOR: u32 = 36;

/// One Rust wire struct and the C struct it mirrors.
#[derive(Debug)]
struct Layout {
    c: &'static str,
    rust: &'static str,
    /// The first minor from which every header declares the C struct.
    since: u32,
    /// The minor from which `size` is the C size (0: the struct's `since`).
    size_since: u32,
    size: usize,
    fields: Vec<FieldLayout>,
}

/// One field of a [`Layout`].
#[derive(Debug)]
struct FieldLayout {
    /// The Rust field name.
    name: &'static str,
    /// The minor from which the C field has this name, offset and size (0: the struct's).
    since: u32,
    /// The C field's name (normalised) before `since`, if it was renamed.
    was: Option<&'static str>,
    /// C members of an anonymous union that this Rust field stands for (they must lie inside it).
    covers: &'static [&'static str],
    offset: usize,
    size: usize,
}

/// `size_of` of a field, without a value of the struct.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

macro_rules! layouts {
    ($(
        $c:ident => $rust:ident @ $since:literal $(sized $size_since:literal)? {
            $(
                $field:ident $(@ $fsince:literal)? $(was $old:ident)?
                $(covers $($alias:ident)+)?
            ),* $(,)?
        }
    )*) => {
        vec![$(
            Layout {
                c: stringify!($c),
                rust: stringify!($rust),
                since: $since,
                size_since: 0 $(+ $size_since)?,
                size: std::mem::size_of::<abi::$rust>(),
                fields: vec![$(
                    FieldLayout {
                        name: stringify!($field),
                        since: 0 $(+ $fsince)?,
                        was: None $(.or(Some(stringify!($old))))?,
                        covers: &[$($(stringify!($alias)),+)?],
                        offset: std::mem::offset_of!(abi::$rust, $field),
                        size: field_size(|s: &abi::$rust| &s.$field),
                    },
                )*],
            },
        )*]
    };
}

/// Every C struct of `linux/fuse.h` (7.46), with the minor that introduced it.
///
/// `field @ N`: the field has its present name, offset and size since 7.N (older headers differ);
/// `was old`: before that minor the header called it `old`; `covers a b`: the C members `a`
/// and `b` of an anonymous union are represented by this one Rust field; `sized N`: the struct has its present
/// size since 7.N. Minors before [`OLDEST_HEADER_MINOR`] are not tracked (written as 0).
fn table() -> Vec<Layout> {
    layouts! {
        fuse_in_header => InHeader @ 0 {
            len, opcode, unique, nodeid, uid, gid, pid, total_extlen @ 38, padding @ 38,
        }
        fuse_out_header => OutHeader @ 0 { len, error, unique }
        fuse_attr => Attr @ 0 {
            ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink,
            uid, gid, rdev, blksize, flags,
        }
        fuse_sx_time => SxTime @ 39 { tv_sec, tv_nsec, reserved }
        fuse_statx => Statx @ 39 {
            mask, blksize, attributes, nlink, uid, gid, mode, spare0, ino, size, blocks,
            attributes_mask, atime, btime, ctime, mtime, rdev_major, rdev_minor, dev_major,
            dev_minor, spare2,
        }
        fuse_kstatfs => Kstatfs @ 0 {
            blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, padding, spare,
        }
        fuse_file_lock => FileLock @ 0 { start, end, typ, pid }
        fuse_entry_out => EntryOut @ 0 {
            nodeid, generation, entry_valid, attr_valid, entry_valid_nsec, attr_valid_nsec, attr,
        }
        fuse_forget_in => ForgetIn @ 0 { nlookup }
        fuse_forget_one => ForgetOne @ 0 { nodeid, nlookup }
        fuse_batch_forget_in => BatchForgetIn @ 0 { count, dummy }
        fuse_getattr_in => GetattrIn @ 0 { getattr_flags, dummy, fh }
        fuse_attr_out => AttrOut @ 0 { attr_valid, attr_valid_nsec, dummy, attr }
        fuse_statx_in => StatxIn @ 39 { getattr_flags, reserved, fh, sx_flags, sx_mask }
        fuse_statx_out => StatxOut @ 39 { attr_valid, attr_valid_nsec, flags, spare, stat }
        fuse_mknod_in => MknodIn @ 0 { mode, rdev, umask, padding }
        fuse_mkdir_in => MkdirIn @ 0 { mode, umask }
        fuse_rename_in => RenameIn @ 0 { newdir }
        fuse_rename2_in => Rename2In @ 0 { newdir, flags, padding }
        fuse_link_in => LinkIn @ 0 { oldnodeid }
        fuse_setattr_in => SetattrIn @ 0 {
            valid, padding, fh, size, lock_owner, atime, mtime, ctime, atimensec, mtimensec,
            ctimensec, mode, unused4, uid, gid, unused5,
        }
        fuse_open_in => OpenIn @ 0 { flags, open_flags }
        fuse_create_in => CreateIn @ 0 { flags, mode, umask, open_flags }
        fuse_open_out => OpenOut @ 0 { fh, open_flags, backing_id @ 40 was padding }
        fuse_release_in => ReleaseIn @ 0 { fh, flags, release_flags, lock_owner }
        fuse_flush_in => FlushIn @ 0 { fh, unused, padding, lock_owner }
        fuse_read_in => ReadIn @ 0 { fh, offset, size, read_flags, lock_owner, flags, padding }
        fuse_write_in => WriteIn @ 0 {
            fh, offset, size, write_flags, lock_owner, flags, padding,
        }
        fuse_write_out => WriteOut @ 0 { size, padding }
        fuse_statfs_out => StatfsOut @ 0 { st }
        fuse_fsync_in => FsyncIn @ 0 { fh, fsync_flags, padding }
        fuse_setxattr_in => SetxattrIn @ 0 { size, flags, setxattr_flags, padding }
        fuse_getxattr_in => GetxattrIn @ 0 { size, padding }
        fuse_getxattr_out => GetxattrOut @ 0 { size, padding }
        fuse_lk_in => LkIn @ 0 { fh, owner, lk, lk_flags, padding }
        fuse_lk_out => LkOut @ 0 { lk }
        fuse_access_in => AccessIn @ 0 { mask, padding }
        fuse_init_in => InitIn @ 0 { major, minor, max_readahead, flags, flags2, unused }
        fuse_init_out => InitOut @ 0 {
            major, minor, max_readahead, flags, max_background, congestion_threshold, max_write,
            time_gran, max_pages, map_alignment, flags2, max_stack_depth @ 40,
            request_timeout @ 43, unused @ 43,
        }
        cuse_init_in => CuseInitIn @ 0 { major, minor, unused, flags }
        cuse_init_out => CuseInitOut @ 0 {
            major, minor, unused, flags, max_read, max_write, dev_major, dev_minor, spare,
        }
        fuse_interrupt_in => InterruptIn @ 0 { unique }
        fuse_bmap_in => BmapIn @ 0 { block, blocksize, padding }
        fuse_bmap_out => BmapOut @ 0 { block }
        fuse_ioctl_in => IoctlIn @ 0 { fh, flags, cmd, arg, in_size, out_size }
        fuse_ioctl_iovec => IoctlIovec @ 0 { base, len }
        fuse_ioctl_out => IoctlOut @ 0 { result, flags, in_iovs, out_iovs }
        fuse_poll_in => PollIn @ 0 { fh, kh, flags, events }
        fuse_poll_out => PollOut @ 0 { revents, padding }
        fuse_notify_poll_wakeup_out => NotifyPollWakeupOut @ 0 { kh }
        fuse_fallocate_in => FallocateIn @ 0 { fh, offset, length, mode, padding }
        fuse_dirent => Dirent @ 0 { ino, off, namelen, typ }
        fuse_direntplus => Direntplus @ 0 { entry_out, dirent }
        fuse_notify_inval_inode_out => NotifyInvalInodeOut @ 0 { ino, off, len }
        fuse_notify_inval_entry_out => NotifyInvalEntryOut @ 0 {
            parent, namelen, flags @ 38 was padding,
        }
        fuse_notify_delete_out => NotifyDeleteOut @ 0 { parent, child, namelen, padding }
        fuse_notify_store_out => NotifyStoreOut @ 0 { nodeid, offset, size, padding }
        fuse_notify_retrieve_out => NotifyRetrieveOut @ 0 {
            notify_unique, nodeid, offset, size, padding,
        }
        fuse_notify_retrieve_in => NotifyRetrieveIn @ 0 {
            dummy1, offset, size, dummy2, dummy3, dummy4,
        }
        fuse_notify_prune_out => NotifyPruneOut @ 45 { count, padding, spare }
        fuse_backing_map => BackingMap @ 40 { fd, flags, padding }
        fuse_lseek_in => LseekIn @ 0 { fh, offset, whence, padding }
        fuse_lseek_out => LseekOut @ 0 { offset }
        fuse_copy_file_range_in => CopyFileRangeIn @ 0 {
            fh_in, off_in, nodeid_out, fh_out, off_out, len, flags,
        }
        fuse_copy_file_range_out => CopyFileRangeOut @ 45 { bytes_copied }
        fuse_setupmapping_in => SetupmappingIn @ 0 { fh, foffset, len, flags, moffset }
        fuse_removemapping_in => RemovemappingIn @ 0 { count }
        fuse_removemapping_one => RemovemappingOne @ 0 { moffset, len }
        fuse_syncfs_in => SyncfsIn @ 0 { padding }
        fuse_secctx => Secctx @ 36 { size, padding }
        fuse_secctx_header => SecctxHeader @ 36 { size, nr_secctx }
        fuse_ext_header => ExtHeader @ 38 { size, typ }
        // Upstream 7.38, but Linux 6.1-stable's 7.38 header (Debian bookworm) lacks it.
        fuse_supp_groups => SuppGroups @ 39 { nr_groups }
        fuse_uring_ent_in_out => UringEntInOut @ 42 {
            flags, commit_id, payload_sz, offset @ 46 was padding, reserved,
        }
        fuse_uring_req_header => UringReqHeader @ 42 { in_out, op_in, ring_ent_in_out }
        fuse_uring_cmd_req => UringCmdReq @ 42 sized 46 {
            flags, commit_id, qid, padding,
            bufpool @ 46 covers bufpool ent_zero_copy_buf_index,
        }
    }
}

/// A struct as the header declares it: its fields' C names, flexible array members excluded.
#[derive(Debug)]
struct CStruct {
    fields: Vec<String>,
}

/// Removes comments and preprocessor lines.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
        out.push(' ');
    }
    out.push_str(rest);
    let mut code = String::with_capacity(out.len());
    let mut continued = false;
    for line in out.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let directive = continued || line.trim_start().starts_with('#');
        continued = directive && line.trim_end().ends_with('\\');
        if !directive {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The text between the `{` at `open` and its matching `}`, and the index after that `}`.
fn braced(text: &str, open: usize) -> (&str, usize) {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&text[open + 1..open + i], open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in the header");
}

/// Top-level member names of a struct or union body; anonymous unions/structs are flattened, as
/// C does; flexible array members are left out.
fn members(body: &str, out: &mut Vec<String>) {
    let mut rest = body.trim();
    while !rest.is_empty() {
        let semi = rest.find(';').unwrap_or(rest.len());
        let brace = rest.find('{').filter(|&b| b < semi);
        if let Some(open) = brace {
            let (inner, after) = braced(rest, open);
            let tail_end = rest[after..].find(';').map_or(rest.len(), |t| after + t);
            let name = rest[after..tail_end].trim();
            if name.is_empty() {
                members(inner, out);
            } else {
                out.push(declarator_name(name).to_owned());
            }
            rest = rest.get(tail_end + 1..).unwrap_or_default().trim_start();
            continue;
        }
        let decl = &rest[..semi];
        rest = rest.get(semi + 1..).unwrap_or_default().trim_start();
        let mut parts = decl.split(',');
        let first = parts.next().unwrap_or_default();
        let first_name = first.split_whitespace().last().unwrap_or_default();
        for declarator in std::iter::once(first_name).chain(parts) {
            let declarator = declarator.trim();
            let flexible = declarator.ends_with("[]") || declarator.ends_with("[0]");
            if !declarator.is_empty() && !flexible {
                out.push(declarator_name(declarator).to_owned());
            }
        }
    }
}

fn declarator_name(declarator: &str) -> &str {
    declarator
        .split('[')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches('*')
}

/// Every `struct fuse_*`/`cuse_*` definition of the header, by name.
fn parse_header(text: &str) -> BTreeMap<String, CStruct> {
    let code = strip(text);
    let mut structs = BTreeMap::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("struct ") {
        let start = at + found;
        at = start + "struct ".len();
        let boundary = start == 0
            || !code[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = code[at..].trim_start();
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = after[name.len()..].trim_start();
        if !boundary || name.is_empty() || !after_name.starts_with('{') {
            continue;
        }
        let open = code.len() - after_name.len();
        let (body, end) = braced(&code, open);
        let mut fields = Vec::new();
        members(body, &mut fields);
        structs.insert(name, CStruct { fields });
        at = end;
    }
    structs
}

/// The Rust name of a C field: leading underscores dropped, `type` spelled `typ`.
fn rust_field(c: &str) -> &str {
    match c.trim_start_matches('_') {
        "type" => "typ",
        name => name,
    }
}

fn header_minor(text: &str) -> u32 {
    text.lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim_start();
            rest.strip_prefix("FUSE_KERNEL_MINOR_VERSION")?
                .trim()
                .parse()
                .ok()
        })
        .expect("the header has no FUSE_KERNEL_MINOR_VERSION")
}

/// A C program printing `minor N`, `S struct size` and `F struct field offset size` lines.
fn c_program(structs: &BTreeMap<String, CStruct>) -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/fuse.h>\n\n\
         int main(void)\n{\n\tprintf(\"minor %d\\n\", (int)FUSE_KERNEL_MINOR_VERSION);\n",
    );
    for (name, s) in structs {
        let _ = writeln!(c, "\tprintf(\"S {name} %zu\\n\", sizeof(struct {name}));");
        for f in &s.fields {
            let _ = writeln!(
                c,
                "\tprintf(\"F {name} {f} %zu %zu\\n\", offsetof(struct {name}, {f}), \
                 sizeof(((struct {name} *)0)->{f}));"
            );
        }
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// What the compiled program printed.
#[derive(Debug, Default)]
struct Measured {
    minor: u32,
    sizes: BTreeMap<String, usize>,
    fields: BTreeMap<(String, String), (usize, usize)>,
}

fn parse_output(out: &str) -> Measured {
    let mut m = Measured::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| {
            s.parse::<usize>()
                .expect("a number in the C program's output")
        };
        match words.as_slice() {
            ["minor", v] => m.minor = v.parse().expect("a minor version"),
            ["S", s, size] => {
                m.sizes.insert((*s).to_owned(), num(size));
            }
            ["F", s, f, off, size] => {
                m.fields
                    .insert(((*s).to_owned(), (*f).to_owned()), (num(off), num(size)));
            }
            _ => panic!("unexpected line from the C program: {line:?}"),
        }
    }
    m
}

/// `cc` (or `$CC`), or `None` if it is not installed.
fn c_compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    match Command::new(&cc).arg("--version").output() {
        Ok(_) => Some(cc),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => panic!("cannot run `{cc} --version`: {err}"),
    }
}

fn include_dir() -> PathBuf {
    std::env::var_os("FUSE_ABI_C_INCLUDE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/include"), PathBuf::from)
}

/// Compiles and runs the program; `include` goes first on the include path, with its multiarch
/// subdirectory (for `asm/types.h`) if it has one.
fn measure(cc: &str, include: &Path, program: &str, tag: &str) -> Measured {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("c_layout-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the C build directory");
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, program).expect("write the C program");

    let mut compile = Command::new(cc);
    compile
        .args(["-std=gnu11", "-Wall", "-o"])
        .arg(&binary)
        .arg(&source);
    compile.arg("-I").arg(include);
    let multiarch = Command::new(cc).arg("-print-multiarch").output();
    if let Ok(out) = multiarch {
        let triple = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !triple.is_empty() && include.join(&triple).is_dir() {
            compile.arg("-I").arg(include.join(&triple));
        }
    }
    let out = compile.output().expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling {} failed ({:?}):\n{}",
        source.display(),
        compile,
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&binary).output().expect("run the C program");
    assert!(run.status.success(), "{} failed", binary.display());
    let measured = parse_output(&String::from_utf8_lossy(&run.stdout));
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// Compares the table with the header's structs and the measured C layout; returns the problems
/// and the number of fields compared.
fn compare(
    header_minor: u32,
    header: &BTreeMap<String, CStruct>,
    c: &Measured,
    table: &[Layout],
) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut compared = 0;
    let m = header_minor;
    for s in header.keys() {
        if !table.iter().any(|t| t.c == s) {
            problems.push(format!(
                "struct {s} of the 7.{m} header is not in fuse-abi's layout table \
                 (fuse-abi/tests/c_layout.rs): add its Rust type there"
            ));
        }
    }
    for t in table {
        let Some(hs) = header.get(t.c) else {
            if m >= t.since {
                problems.push(format!(
                    "struct {} exists since 7.{} by the table, but the 7.{m} header lacks it",
                    t.c, t.since
                ));
            }
            continue;
        };
        let c_size = c.sizes[t.c];
        if m >= t.size_since.max(t.since) && c_size != t.size {
            problems.push(format!(
                "sizeof(struct {}) = {c_size}, but size_of::<{}>() = {}",
                t.c, t.rust, t.size
            ));
        }
        for cf in &hs.fields {
            let name = rust_field(cf);
            let by_name = t.fields.iter().find(|f| f.name == name);
            let by_old = t.fields.iter().find(|f| f.was == Some(name) && m < f.since);
            let by_cover = t.fields.iter().find(|f| f.covers.contains(&name));
            let measured = c.fields[&(t.c.to_owned(), cf.clone())];
            match (by_name, by_old, by_cover) {
                (Some(f), _, _) if m >= f.since.max(t.since) => {
                    compared += 1;
                    let (c_off, c_len) = measured;
                    if (c_off, c_len) != (f.offset, f.size) {
                        problems.push(format!(
                            "{}.{cf}: C offset {c_off} size {c_len}, but {}.{} has offset {} \
                             size {}",
                            t.c, t.rust, f.name, f.offset, f.size
                        ));
                    }
                }
                // An older layout of this field: not compared.
                (Some(_), _, _) | (None, Some(_), _) => {}
                (None, None, Some(f)) => {
                    if m >= f.since.max(t.since) {
                        compared += 1;
                        let (c_off, c_len) = measured;
                        if c_off < f.offset || c_off + c_len > f.offset + f.size {
                            problems.push(format!(
                                "{}.{cf}: C offset {c_off} size {c_len} lies outside {}.{} \
                                 (offset {} size {}), which stands for it",
                                t.c, t.rust, f.name, f.offset, f.size
                            ));
                        }
                    }
                }
                (None, None, None) => problems.push(format!(
                    "{}.{cf} (7.{m} header) has no Rust counterpart: {}.{name} is missing from \
                     fuse-abi or from the table",
                    t.c, t.rust
                )),
            }
        }
        for f in &t.fields {
            let since = f.since.max(t.since);
            if m >= since && !hs.fields.iter().any(|cf| rust_field(cf) == f.name) {
                problems.push(format!(
                    "{}.{} is in the table since 7.{since}, but the 7.{m} header's struct {} has \
                     no such field",
                    t.rust, f.name, t.c
                ));
            }
        }
    }
    (problems, compared)
}

#[test]
fn rust_layouts_match_the_c_header() {
    let include = include_dir();
    let path = include.join("linux/fuse.h");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let Some(cc) = c_compiler() else {
        assert!(
            !ci,
            "no C compiler (`cc`) in CI: the layout proof cannot run"
        );
        eprintln!("\n!!!!! c_layout SKIPPED: no C compiler (`cc`); install gcc to run it !!!!!\n");
        return;
    };
    let explicit = std::env::var_os("FUSE_ABI_C_INCLUDE").is_some_and(|v| !v.is_empty());
    if !path.is_file() && !explicit && !ci {
        // A host without Linux headers (macOS, say): only the default location is forgiven.
        eprintln!(
            "\n!!!!! c_layout SKIPPED: no {}; install linux-libc-dev or set \
             FUSE_ABI_C_INCLUDE !!!!!\n",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {} ({err}); install linux-libc-dev or set FUSE_ABI_C_INCLUDE",
            path.display()
        )
    });
    let minor = header_minor(&text);
    assert!(
        minor >= OLDEST_HEADER_MINOR,
        "{} is protocol 7.{minor}; the layout table tracks history only from 7.{}",
        path.display(),
        OLDEST_HEADER_MINOR
    );
    let header = parse_header(&text);
    assert!(
        header.len() > 50 && header.contains_key("fuse_in_header"),
        "parsed only {} structs from {}: the header parser is broken",
        header.len(),
        path.display()
    );
    let c = measure(&cc, &include, &c_program(&header), &minor.to_string());
    assert_eq!(
        c.minor,
        minor,
        "the compiler used a different linux/fuse.h than {}",
        path.display()
    );

    let table = table();
    let (problems, compared) = compare(minor, &header, &c, &table);
    println!(
        "c_layout: {} (FUSE_KERNEL_MINOR_VERSION {minor}): {} structs, {compared} fields \
         compared; fuse-abi describes 7.{}",
        path.display(),
        header.len(),
        abi::KERNEL_MINOR_VERSION
    );
    assert!(
        problems.is_empty(),
        "fuse-abi does not match {} (protocol 7.{minor}):\n  {}",
        path.display(),
        problems.join("\n  ")
    );
}

#[test]
fn the_parser_sees_through_unions_and_flexible_arrays() {
    let text = "/* struct fuse_fake { int x; }; */\n#define X(a) \\\n  struct fuse_no { int y; }\n\
                struct fuse_a {\n\tuint64_t x; // comment\n\tuint32_t type, b[2];\n\
                \tchar name[];\n};\nstruct fuse_b {\n\tunion {\n\t\tstruct {\n\t\t\tuint64_t u;\n\
                \t\t} pool;\n\t\tuint16_t idx;\n\t};\n\tstruct fuse_a a;\n};\n";
    let parsed = parse_header(text);
    let names: Vec<&str> = parsed.keys().map(String::as_str).collect();
    assert_eq!(names, ["fuse_a", "fuse_b"]);
    assert_eq!(parsed["fuse_a"].fields, ["x", "type", "b"]);
    assert_eq!(parsed["fuse_b"].fields, ["pool", "idx", "a"]);
    assert_eq!(rust_field("type"), "typ");
    assert_eq!(rust_field("__reserved"), "reserved");
}

#[test]
fn the_comparison_can_fail() {
    let table = table();
    let mut header = BTreeMap::new();
    header.insert(
        "fuse_out_header".to_owned(),
        CStruct {
            fields: vec![
                "len".into(),
                "error".into(),
                "unique".into(),
                "extra".into(),
            ],
        },
    );
    header.insert("fuse_new_thing".to_owned(), CStruct { fields: vec![] });
    let mut c = Measured {
        minor: 46,
        ..Measured::default()
    };
    c.sizes.insert("fuse_out_header".into(), 16);
    c.sizes.insert("fuse_new_thing".into(), 0);
    for (f, off, size) in [
        ("len", 0, 4),
        ("error", 4, 4),
        ("unique", 9, 8),
        ("extra", 16, 0),
    ] {
        c.fields
            .insert(("fuse_out_header".into(), f.into()), (off, size));
    }
    let (problems, _) = compare(46, &header, &c, &table);
    let all = problems.join("\n");
    assert!(all.contains("struct fuse_new_thing"), "{all}");
    assert!(all.contains("fuse_out_header.unique: C offset 9"), "{all}");
    assert!(all.contains("fuse_out_header.extra"), "{all}");
    assert!(
        all.contains("struct fuse_in_header exists since 7.0"),
        "{all}"
    );
}

#[test]
fn union_members_must_lie_inside_the_field_that_covers_them() {
    let table = [Layout {
        c: "fuse_u",
        rust: "U",
        since: 0,
        size_since: 0,
        size: 24,
        fields: vec![
            FieldLayout {
                name: "a",
                since: 0,
                was: None,
                covers: &[],
                offset: 0,
                size: 8,
            },
            FieldLayout {
                name: "pool",
                since: 0,
                was: None,
                covers: &["idx"],
                offset: 8,
                size: 16,
            },
        ],
    }];
    let mut header = BTreeMap::new();
    let fields = vec!["a".to_owned(), "pool".to_owned(), "idx".to_owned()];
    header.insert("fuse_u".to_owned(), CStruct { fields });
    let mut c = Measured {
        minor: 46,
        ..Measured::default()
    };
    c.sizes.insert("fuse_u".into(), 24);
    c.fields.insert(("fuse_u".into(), "a".into()), (0, 8));
    c.fields.insert(("fuse_u".into(), "pool".into()), (8, 16));
    c.fields.insert(("fuse_u".into(), "idx".into()), (8, 2));
    let (problems, compared) = compare(46, &header, &c, &table);
    assert_eq!((problems.len(), compared), (0, 3), "{problems:?}");
    c.fields.insert(("fuse_u".into(), "idx".into()), (23, 2));
    let (problems, _) = compare(46, &header, &c, &table);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("fuse_u.idx: C offset 23 size 2 lies outside U.pool"));
}
