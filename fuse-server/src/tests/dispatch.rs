//! Every opcode reaches the backend or its documented server-side handling; bad input gets the
//! errno the kernel expects and never a panic.

use std::io::Write as _;
use std::os::unix::fs::FileExt;

use fuse_abi::{Errno, InitFlags, Opcode, OutHeader, U16, U32};
use zerocopy::{FromBytes, IntoBytes};

use crate::mem::{MemReader, MemWriter};
use crate::test_utils::{
    RecordingFs, TestFs, all_capabilities, init_payload, request, request_ext, sample_args,
};
use crate::{Capabilities, Completion, Error, Server, ServerConfig};

pub(crate) struct Sent {
    pub(crate) result: Result<Completion, Error>,
    pub(crate) reply: Vec<u8>,
}

impl Sent {
    pub(crate) fn header(&self) -> OutHeader {
        OutHeader::read_from_prefix(&self.reply)
            .map(|(h, _)| h)
            .unwrap_or_default()
    }

    pub(crate) fn error(&self) -> i32 {
        self.header().error.get()
    }

    pub(crate) fn body(&self) -> &[u8] {
        self.reply.get(16..).unwrap_or(&[])
    }

    /// The reply is consistent: `out_header.len` == bytes written == `Completion::Replied.len`,
    /// `unique` echoed, error in −511..=0.
    fn check(&self, unique: u64) {
        match &self.result {
            Ok(Completion::Replied { len }) => {
                let h = self.header();
                assert_eq!(*len, self.reply.len());
                assert_eq!(h.len.get() as usize, self.reply.len());
                assert_eq!(h.unique.get(), unique);
                assert!((-511..=0).contains(&h.error.get()), "{}", h.error.get());
                if h.error.get() != 0 {
                    assert_eq!(self.reply.len(), 16, "an error reply carries no payload");
                }
            }
            Ok(Completion::NoReply | Completion::Pending) => assert!(self.reply.is_empty()),
            Err(e) => panic!("no reply: {e}"),
        }
    }
}

pub(crate) fn send_raw<F: crate::FileSystem>(server: &Server<F>, msg: &[u8], space: usize) -> Sent {
    let mut buf = vec![0u8; space];
    let mut r = MemReader::new(msg);
    let mut w = MemWriter::new(&mut buf);
    let result = server.handle_message(&mut r, &mut w);
    let reply = w.written().to_vec();
    Sent { result, reply }
}

fn send<F: crate::FileSystem>(server: &Server<F>, op: u32, unique: u64, args: &[u8]) -> Sent {
    let sent = send_raw(server, &request(op, unique, 1, args), 1 << 20);
    sent.check(unique);
    sent
}

fn init<F: crate::FileSystem>(server: &Server<F>) -> Sent {
    let sent = send(
        server,
        Opcode::Init as u32,
        2,
        &init_payload(46, InitFlags::all(), 131072),
    );
    assert_eq!(sent.error(), 0);
    sent
}

fn server(caps: Capabilities) -> Server<RecordingFs> {
    Server::new(TestFs::recording(caps), ServerConfig::default())
}

/// What each opcode must lead to.
enum Expect {
    /// This backend method is called and the reply succeeds (or there is none).
    Call(&'static str),
    /// The server answers this errno itself and calls nothing.
    Errno(Errno),
    /// The server drops the request: no reply, no call.
    Dropped,
}

fn expect(op: Opcode) -> Expect {
    use Opcode as O;
    match op {
        O::Interrupt | O::CuseInit => Expect::Errno(Errno::ENOSYS),
        O::NotifyReply => Expect::Dropped,
        O::Setlkw => Expect::Call("setlkw"),
        O::Rename2 => Expect::Call("rename"),
        O::CopyFileRange64 => Expect::Call("copy_file_range"),
        O::Lookup => Expect::Call("lookup"),
        O::Forget => Expect::Call("forget"),
        O::Getattr => Expect::Call("getattr"),
        O::Setattr => Expect::Call("setattr"),
        O::Readlink => Expect::Call("readlink"),
        O::Symlink => Expect::Call("symlink"),
        O::Mknod => Expect::Call("mknod"),
        O::Mkdir => Expect::Call("mkdir"),
        O::Unlink => Expect::Call("unlink"),
        O::Rmdir => Expect::Call("rmdir"),
        O::Rename => Expect::Call("rename"),
        O::Link => Expect::Call("link"),
        O::Open => Expect::Call("open"),
        O::Read => Expect::Call("read"),
        O::Write => Expect::Call("write"),
        O::Statfs => Expect::Call("statfs"),
        O::Release => Expect::Call("release"),
        O::Fsync => Expect::Call("fsync"),
        O::Setxattr => Expect::Call("setxattr"),
        O::Getxattr => Expect::Call("getxattr"),
        O::Listxattr => Expect::Call("listxattr"),
        O::Removexattr => Expect::Call("removexattr"),
        O::Flush => Expect::Call("flush"),
        O::Init => Expect::Call("init"),
        O::Opendir => Expect::Call("opendir"),
        O::Readdir => Expect::Call("readdir"),
        O::Releasedir => Expect::Call("releasedir"),
        O::Fsyncdir => Expect::Call("fsyncdir"),
        O::Getlk => Expect::Call("getlk"),
        O::Setlk => Expect::Call("setlk"),
        O::Access => Expect::Call("access"),
        O::Create => Expect::Call("create"),
        O::Bmap => Expect::Call("bmap"),
        O::Destroy => Expect::Call("destroy"),
        O::Ioctl => Expect::Call("ioctl"),
        O::Poll => Expect::Call("poll"),
        O::BatchForget => Expect::Call("batch_forget"),
        O::Fallocate => Expect::Call("fallocate"),
        O::Readdirplus => Expect::Call("readdirplus"),
        O::Lseek => Expect::Call("lseek"),
        O::CopyFileRange => Expect::Call("copy_file_range"),
        O::Setupmapping => Expect::Call("setupmapping"),
        O::Removemapping => Expect::Call("removemapping"),
        O::Syncfs => Expect::Call("syncfs"),
        O::Tmpfile => Expect::Call("tmpfile"),
        O::Statx => Expect::Call("statx"),
    }
}

#[test]
fn every_opcode_reaches_the_backend_or_documented_handling() {
    for &op in Opcode::ALL {
        let s = server(all_capabilities());
        init(&s);
        s.filesystem().clear();
        let sent = send(&s, op as u32, 100, &sample_args(op));
        let methods = s.filesystem().methods();
        match expect(op) {
            Expect::Call(method) => {
                assert_eq!(methods, vec![method], "{op}");
                if !op.is_noreply() {
                    assert_eq!(sent.error(), 0, "{op}");
                } else {
                    assert_eq!(sent.result.ok(), Some(Completion::NoReply), "{op}");
                }
            }
            Expect::Errno(e) => {
                assert!(methods.is_empty(), "{op}: {methods:?}");
                assert_eq!(sent.error(), e.to_wire(), "{op}");
            }
            Expect::Dropped => {
                assert!(methods.is_empty(), "{op}: {methods:?}");
                assert_eq!(sent.result.ok(), Some(Completion::NoReply), "{op}");
            }
        }
    }
}

#[test]
fn replies_have_the_sizes_the_kernel_expects() {
    let s = server(all_capabilities());
    init(&s);
    let sizes = [
        (Opcode::Lookup, 128),
        (Opcode::Getattr, 104),
        (Opcode::Setattr, 104),
        (Opcode::Create, 144),
        (Opcode::Tmpfile, 144),
        (Opcode::Open, 16),
        (Opcode::Statfs, 80),
        (Opcode::Write, 8),
        (Opcode::Getxattr, 8),
        (Opcode::Getlk, 24),
        (Opcode::Statx, 288),
        (Opcode::Lseek, 8),
        (Opcode::CopyFileRange, 8),
        (Opcode::CopyFileRange64, 8),
        (Opcode::Ioctl, 16 + 3),
        (Opcode::Readlink, 6),
        (Opcode::Listxattr, 7),
        (Opcode::Unlink, 0),
    ];
    for (op, size) in sizes {
        let sent = send(&s, op as u32, 8, &sample_args(op));
        assert_eq!(sent.body().len(), size, "{op}");
    }
}

#[test]
fn init_reply_is_64_bytes_and_second_init_reinitialises() {
    let s = server(all_capabilities());
    let first = init(&s);
    assert_eq!(first.reply.len(), 80);
    let out = fuse_abi::InitOut::read_from_bytes(first.body()).unwrap_or_default();
    assert_eq!((out.major.get(), out.minor.get()), (7, 46));
    init(&s);
    assert_eq!(s.filesystem().init_destroy_counts(), (2, 0));
    let sent = send(&s, Opcode::Getattr as u32, 4, &sample_args(Opcode::Getattr));
    assert_eq!(sent.error(), 0);
}

#[test]
fn requests_before_init_and_after_destroy_get_eio() {
    let s = server(all_capabilities());
    let sent = send(&s, Opcode::Getattr as u32, 4, &sample_args(Opcode::Getattr));
    assert_eq!(sent.error(), Errno::EIO.to_wire());
    init(&s);
    let sent = send(&s, Opcode::Destroy as u32, 6, &[]);
    assert_eq!(sent.error(), 0);
    assert_eq!(s.filesystem().init_destroy_counts(), (1, 1));
    let sent = send(&s, Opcode::Getattr as u32, 8, &sample_args(Opcode::Getattr));
    assert_eq!(sent.error(), Errno::EIO.to_wire());
    init(&s);
    s.reset();
    assert_eq!(s.filesystem().init_destroy_counts(), (2, 2));
    assert_eq!(s.negotiated(), None);
}

#[test]
fn old_kernels_are_refused_and_new_majors_get_our_version() {
    let s = server(all_capabilities());
    let sent = send(
        &s,
        Opcode::Init as u32,
        2,
        &init_payload(22, InitFlags::empty(), 0),
    );
    assert_eq!(sent.error(), Errno::EPROTO.to_wire());
    assert_eq!(s.negotiated(), None);
    let mut payload = init_payload(46, InitFlags::empty(), 0);
    payload[0] = 8;
    let sent = send(&s, Opcode::Init as u32, 2, &payload);
    assert_eq!(sent.error(), 0);
    let out = fuse_abi::InitOut::read_from_bytes(sent.body()).unwrap_or_default();
    assert_eq!(
        (out.major.get(), out.minor.get(), out.flags.get()),
        (7, 46, 0)
    );
    assert_eq!(s.negotiated(), None);
    // An 8-byte payload from an old-style kernel parses.
    let sent = send(&s, Opcode::Init as u32, 2, &[7, 0, 0, 0, 23, 0, 0, 0]);
    assert_eq!(sent.error(), 0);
    assert_eq!(s.negotiated().map(|n| n.0), Some(23));
}

#[test]
fn unknown_opcodes_get_enosys() {
    let s = server(all_capabilities());
    init(&s);
    for op in [0, 7, 19, 54, 4095, 1 << 20, u32::MAX] {
        let sent = send(&s, op, 10, &[1, 2, 3]);
        assert_eq!(sent.error(), Errno::ENOSYS.to_wire(), "{op}");
    }
}

#[test]
fn served_counts_each_request_past_the_header_checks() {
    let s = server(all_capabilities());
    assert_eq!(s.served().total(), 0);
    init(&s);
    for unique in 0..3 {
        send(
            &s,
            Opcode::Getattr as u32,
            20 + unique,
            &sample_args(Opcode::Getattr),
        );
    }
    // Refused before decoding: an unknown opcode, a header shorter than 40 bytes.
    send(&s, 54, 30, &[]);
    let msg = request(Opcode::Getattr as u32, 31, 1, &[]);
    send_raw(&s, &msg[..24], 4096);
    assert_eq!(s.served().get(Opcode::Init), 1);
    assert_eq!(s.served().get(Opcode::Getattr), 3);
    assert_eq!(s.served().total(), 4);
    assert_eq!(s.served().to_string(), "Getattr 3, Init 1");
}

fn header_with_len(op: Opcode, len: u32, args: &[u8]) -> Vec<u8> {
    let mut msg = request(op as u32, 12, 1, args);
    msg[0..4].copy_from_slice(&len.to_le_bytes());
    msg
}

#[test]
fn bad_lengths_get_einval() {
    let s = server(all_capabilities());
    init(&s);
    let args = sample_args(Opcode::Getattr);
    let real = u32::try_from(40 + args.len()).unwrap_or(0);
    for len in [0, 1, 39, 40, real - 1, real + 1, u32::MAX] {
        let sent = send_raw(&s, &header_with_len(Opcode::Getattr, len, &args), 4096);
        sent.check(12);
        assert_eq!(sent.error(), Errno::EINVAL.to_wire(), "len {len}");
    }
    // Shorter than a header, but with its unique: EINVAL, unique echoed.
    for n in [16usize, 24, 39] {
        let msg = request(Opcode::Getattr as u32, 12, 1, &[]);
        let sent = send_raw(&s, &msg[..n], 4096);
        sent.check(12);
        assert_eq!(sent.error(), Errno::EINVAL.to_wire(), "{n} bytes");
    }
    // Without a unique there is nothing to answer: dropped, counted as malformed.
    for n in [0usize, 1, 8, 15] {
        let msg = request(Opcode::Getattr as u32, 12, 1, &[]);
        let before = s.bad_requests();
        let sent = send_raw(&s, &msg[..n], 4096);
        assert!(matches!(sent.result, Ok(Completion::NoReply)), "{n} bytes");
        assert!(sent.reply.is_empty(), "{n} bytes: {:?}", sent.reply);
        assert_eq!(s.bad_requests(), before + 1);
    }
    // Above the negotiated maximum (a LOOKUP of 2 MiB).
    let mut big = vec![b'a'; 2 << 20];
    big.push(0);
    let sent = send(&s, Opcode::Lookup as u32, 12, &big);
    assert_eq!(sent.error(), Errno::EINVAL.to_wire());
    assert!(s.bad_requests() > 0);
}

#[test]
fn short_arguments_get_einval() {
    let s = server(all_capabilities());
    init(&s);
    for &op in Opcode::ALL {
        let args = sample_args(op);
        if args.is_empty() || matches!(op, Opcode::Interrupt | Opcode::CuseInit | Opcode::Init) {
            continue;
        }
        for cut in [1, args.len() / 2, args.len() - 1] {
            let sent = send(&s, op as u32, 14, &args[..cut]);
            if op.is_noreply() || op == Opcode::NotifyReply {
                assert_eq!(sent.result.ok(), Some(Completion::NoReply), "{op}");
            } else {
                // A cut may still leave a valid shorter request (a shorter name, fewer
                // setxattr value bytes cannot: the size says how many): it is either
                // refused with EINVAL or, for a name cut to a prefix, accepted.
                let e = sent.error();
                assert!(
                    e == Errno::EINVAL.to_wire() || e == 0,
                    "{op} cut to {cut}: {e}"
                );
            }
        }
    }
}

#[test]
fn bad_names_get_the_kernel_errnos() {
    let s = server(all_capabilities());
    init(&s);
    let long = [vec![b'x'; 256], vec![0]].concat();
    let cases: [(&[u8], Errno); 5] = [
        (b"abc", Errno::EINVAL),      // no NUL
        (b"a/b\0", Errno::EINVAL),    // slash
        (b"\0", Errno::EINVAL),       // empty
        (&long, Errno::ENAMETOOLONG), // 256 bytes
        (b"..\0", Errno::EINVAL),     // dot-dot where not allowed
    ];
    for (name, errno) in cases {
        for op in [Opcode::Unlink, Opcode::Rmdir] {
            let sent = send(&s, op as u32, 16, name);
            assert_eq!(sent.error(), errno.to_wire(), "{op} {name:?}");
        }
        let mkdir = [sample_args(Opcode::Mkdir)[..8].to_vec(), name.to_vec()].concat();
        let sent = send(&s, Opcode::Mkdir as u32, 16, &mkdir);
        assert_eq!(sent.error(), errno.to_wire(), "mkdir {name:?}");
    }
    // LOOKUP may see "..", which the backend resolves (EXPORT_SUPPORT).
    assert_eq!(send(&s, Opcode::Lookup as u32, 16, b"..\0").error(), 0);
    // RENAME's second name missing its NUL.
    let mut rename = sample_args(Opcode::Rename);
    rename.pop();
    assert_eq!(
        send(&s, Opcode::Rename as u32, 16, &rename).error(),
        Errno::EINVAL.to_wire()
    );
}

fn ext_groups(gid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&fuse_abi::ext::EXT_GROUPS.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&gid.to_le_bytes());
    v
}

#[test]
fn extensions_reach_the_backend_and_bad_ones_get_einval() {
    let s = server(all_capabilities());
    init(&s);
    let args = sample_args(Opcode::Mkdir);
    s.filesystem().clear();
    let msg = request_ext(Opcode::Mkdir as u32, 18, 1, &args, &ext_groups(77));
    let sent = send_raw(&s, &msg, 4096);
    sent.check(18);
    assert_eq!(sent.error(), 0);
    let calls = s.filesystem().calls();
    assert!(calls[0].detail.contains("supp_gid: Some(77)"), "{calls:?}");
    assert!(calls[0].detail.contains("umask: 18"), "{calls:?}");
    // total_extlen larger than the body.
    let mut msg = request(Opcode::Mkdir as u32, 18, 1, &args);
    msg[36..38].copy_from_slice(&U16::new(100).to_bytes());
    assert_eq!(send_raw(&s, &msg, 4096).error(), Errno::EINVAL.to_wire());
    // A zero-size extension.
    let msg = request_ext(Opcode::Mkdir as u32, 18, 1, &args, &[0u8; 8]);
    assert_eq!(send_raw(&s, &msg, 4096).error(), Errno::EINVAL.to_wire());
    // An extension that claims more than the area.
    let mut ext = ext_groups(1);
    ext[0..4].copy_from_slice(&U32::new(24).to_bytes());
    let msg = request_ext(Opcode::Mkdir as u32, 18, 1, &args, &ext);
    assert_eq!(send_raw(&s, &msg, 4096).error(), Errno::EINVAL.to_wire());
}

/// A security-context extension with one context `name` = `value`.
fn ext_secctx(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    entry.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_le_bytes());
    entry.extend_from_slice(&0u32.to_le_bytes());
    entry.extend_from_slice(name);
    entry.push(0);
    entry.extend_from_slice(value);
    while entry.len() % 8 != 0 {
        entry.push(0);
    }
    // The kernel's fuse_secctx_header { size, nr_secctx } stands in the extension header.
    let total = 8 + entry.len();
    let mut v = Vec::new();
    v.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes()); // nr_secctx (a type of 0..=31)
    v.extend_from_slice(&entry);
    v
}

#[test]
fn security_context_must_name_a_security_attribute() {
    let s = server(all_capabilities());
    init(&s);
    let args = sample_args(Opcode::Mkdir);
    s.filesystem().clear();
    let ext = ext_secctx(b"security.selinux", b"system_u:object_r:tmp_t:s0\0");
    let sent = send_raw(
        &s,
        &request_ext(Opcode::Mkdir as u32, 18, 1, &args, &ext),
        4096,
    );
    sent.check(18);
    assert_eq!(sent.error(), 0);
    assert_eq!(s.filesystem().methods(), vec!["mkdir"]);
    // No LSM label: the kernel sends the bare header {8, 0}, on every creation.
    s.filesystem().clear();
    let mut empty = Vec::new();
    empty.extend_from_slice(&8u32.to_le_bytes());
    empty.extend_from_slice(&0u32.to_le_bytes());
    let sent = send_raw(
        &s,
        &request_ext(Opcode::Mkdir as u32, 18, 1, &args, &empty),
        4096,
    );
    sent.check(18);
    assert_eq!(sent.error(), 0);
    assert_eq!(s.filesystem().methods(), vec!["mkdir"]);
    for name in [
        &b"user.evil"[..],
        b"trusted.overlay.opaque",
        b"security.",
        b"securityx",
    ] {
        s.filesystem().clear();
        let ext = ext_secctx(name, b"y");
        let sent = send_raw(
            &s,
            &request_ext(Opcode::Mkdir as u32, 18, 1, &args, &ext),
            4096,
        );
        sent.check(18);
        assert_eq!(sent.error(), Errno::EINVAL.to_wire(), "{name:?}");
        assert!(
            s.filesystem().methods().is_empty(),
            "{name:?} reached the backend"
        );
    }
}

#[test]
fn small_reply_space_is_a_clean_error() {
    let s = server(all_capabilities());
    init(&s);
    let msg = request(Opcode::Getattr as u32, 20, 1, &sample_args(Opcode::Getattr));
    let sent = send_raw(&s, &msg, 0);
    assert!(matches!(sent.result, Err(Error::ReplySpace { .. })));
    let sent = send_raw(&s, &msg, 15);
    assert!(matches!(sent.result, Err(Error::ReplySpace { .. })));
    let sent = send_raw(&s, &msg, 40);
    sent.check(20);
    assert_eq!(sent.error(), Errno::EIO.to_wire());
    let msg = request(Opcode::Readdir as u32, 20, 1, &sample_args(Opcode::Readdir));
    let sent = send_raw(&s, &msg, 16);
    sent.check(20);
    assert_eq!(sent.reply.len(), 16);
}

#[test]
fn forget_never_replies_even_when_malformed() {
    let s = server(all_capabilities());
    init(&s);
    for op in [Opcode::Forget, Opcode::BatchForget] {
        let sent = send(&s, op as u32, 22, &[1, 2]);
        assert_eq!(sent.result.ok(), Some(Completion::NoReply));
        let msg = header_with_len(op, 7, &[]);
        assert_eq!(
            send_raw(&s, &msg, 64).result.ok(),
            Some(Completion::NoReply)
        );
    }
    // A BATCH_FORGET whose count overruns forgets only what is there.
    let mut args = sample_args(Opcode::BatchForget);
    args[0..4].copy_from_slice(&1000u32.to_le_bytes());
    s.filesystem().clear();
    send(&s, Opcode::BatchForget as u32, 22, &args);
    assert!(
        s.filesystem().calls()[0]
            .detail
            .contains("[(2, 1), (3, 1)]")
    );
}

fn temp_file() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "fuse-server-dispatch-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    std::fs::remove_file(&path).expect("unlink temp file");
    file
}

#[test]
fn read_and_write_move_data_zero_copy() {
    let mut file = temp_file();
    file.write_all(b"0123456789").expect("write");
    let data = file.try_clone().expect("clone");
    let s = Server::new(
        TestFs::recording(all_capabilities()).with_file(file),
        ServerConfig::default(),
    );
    init(&s);
    let mut ri = fuse_abi::ReadIn::read_from_bytes(&sample_args(Opcode::Read)).unwrap_or_default();
    ri.size = U32::new(4);
    ri.offset = fuse_abi::U64::new(3);
    let sent = send(&s, Opcode::Read as u32, 24, ri.as_bytes());
    assert_eq!(sent.body(), b"3456");
    // READ bounded by the reply space: 16 + 2 bytes.
    let msg = request(Opcode::Read as u32, 24, 1, ri.as_bytes());
    let sent = send_raw(&s, &msg, 18);
    sent.check(24);
    assert_eq!(sent.body(), b"34");
    // WRITE "data" at offset 0 (the sample's offset).
    let sent = send(&s, Opcode::Write as u32, 26, &sample_args(Opcode::Write));
    assert_eq!(
        sent.body(),
        4u32.to_le_bytes()
            .iter()
            .chain(&[0; 4])
            .copied()
            .collect::<Vec<_>>()
    );
    let mut back = [0u8; 6];
    data.read_exact_at(&mut back, 0).expect("read back");
    assert_eq!(&back, b"data45");
    // A WRITE whose size exceeds its data.
    let mut wi = sample_args(Opcode::Write);
    wi[16..20].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(
        send(&s, Opcode::Write as u32, 26, &wi).error(),
        Errno::EINVAL.to_wire()
    );
}

#[test]
fn readdir_stops_when_full() {
    let s = server(all_capabilities());
    init(&s);
    for (op, one) in [(Opcode::Readdir, 32usize), (Opcode::Readdirplus, 160)] {
        let mut ri = fuse_abi::ReadIn {
            size: U32::new(u32::try_from(2 * one + 8).unwrap_or(0)),
            ..fuse_abi::ReadIn::default()
        };
        let sent = send(&s, op as u32, 28, ri.as_bytes());
        assert_eq!(sent.body().len(), 2 * one, "{op}");
        ri.size = U32::new(4096);
        ri.offset = fuse_abi::U64::new(2);
        let sent = send(&s, op as u32, 28, ri.as_bytes());
        assert_eq!(sent.body().len(), one, "{op}");
        let name_at = if op == Opcode::Readdir { 24 } else { 152 };
        assert_eq!(&sent.body()[name_at..name_at + 4], b"file");
    }
}

#[test]
fn server_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Server<TestFs>>();
}

/// A backend whose every lock is held by someone else.
struct Busy;

impl crate::FileSystem for Busy {
    fn capabilities(&self) -> Capabilities {
        all_capabilities()
    }

    fn setlk(
        &self,
        _ctx: &crate::Context,
        _nodeid: crate::NodeId,
        _args: &crate::LockArgs,
    ) -> crate::FsResult<()> {
        Err(Errno::EAGAIN)
    }
}

/// EAGAIN to a sleeping SETLKW is "ask again": nothing written, `Pending`; to a SETLK it is
/// the guest's EAGAIN.
#[test]
fn setlkw_the_backend_cannot_grant_now_is_pending() {
    let s = Server::new(Busy, ServerConfig::default());
    init(&s);
    let args = sample_args(Opcode::Setlkw);
    let sent = send_raw(&s, &request(Opcode::Setlkw as u32, 7, 1, &args), 4096);
    assert!(matches!(sent.result, Ok(Completion::Pending)));
    assert!(sent.reply.is_empty());
    let sent = send(&s, Opcode::Setlk as u32, 8, &args);
    assert_eq!(sent.error(), Errno::EAGAIN.to_wire());
}
