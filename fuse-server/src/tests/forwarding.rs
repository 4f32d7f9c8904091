//! `FileSystem` for `Arc<F>` and `Box<F>` forwards every method, defaults included: a server
//! over a wrapped backend makes the same calls and sends the same replies as one over the
//! backend itself.

use std::sync::Arc;

use fuse_abi::{InitFlags, Opcode};

use super::dispatch::send_raw;
use crate::test_utils::{
    RecordingFs, TestFs, all_capabilities, init_payload, request, sample_args,
};
use crate::{FileSystem, Server, ServerConfig};

/// The calls `fs` saw and the replies (INIT's, then `op`'s) a server over `wrap(fs)` sent.
fn run<W: FileSystem>(
    op: Opcode,
    wrap: impl Fn(Arc<RecordingFs>) -> W,
) -> (Vec<String>, Vec<Vec<u8>>) {
    let fs = Arc::new(TestFs::recording(all_capabilities()));
    let server = Server::new(wrap(Arc::clone(&fs)), ServerConfig::default());
    let init = request(
        Opcode::Init as u32,
        1,
        0,
        &init_payload(46, InitFlags::all(), 131072),
    );
    let msg = request(op as u32, 2, 1, &sample_args(op));
    let replies = [init, msg]
        .iter()
        .map(|m| send_raw(&server, m, 1 << 20).reply)
        .collect();
    let calls = fs
        .calls()
        .into_iter()
        .map(|c| format!("{} {} {}", c.method, c.nodeid, c.detail))
        .collect();
    (calls, replies)
}

#[test]
fn arc_and_box_forward_every_operation() {
    for &op in Opcode::ALL {
        let arc = run(op, |fs| fs);
        // The `Arc` itself is the backend: every call goes through `Arc<RecordingFs>`.
        assert!(!arc.0.is_empty(), "{op}: INIT at least");
        let boxed = run(op, |fs| Box::new(fs) as Box<dyn FileSystem>);
        let boxed_arc = run(op, |fs| Box::new(Box::new(fs)));
        let reference = {
            let fs = TestFs::recording(all_capabilities());
            let server = Server::new(fs, ServerConfig::default());
            let init = request(
                Opcode::Init as u32,
                1,
                0,
                &init_payload(46, InitFlags::all(), 131072),
            );
            let msg = request(op as u32, 2, 1, &sample_args(op));
            let replies: Vec<Vec<u8>> = [init, msg]
                .iter()
                .map(|m| send_raw(&server, m, 1 << 20).reply)
                .collect();
            let calls: Vec<String> = server
                .filesystem()
                .calls()
                .into_iter()
                .map(|c| format!("{} {} {}", c.method, c.nodeid, c.detail))
                .collect();
            (calls, replies)
        };
        assert_eq!(arc, reference, "{op}: Arc<F>");
        assert_eq!(boxed, reference, "{op}: Box<dyn FileSystem>");
        assert_eq!(boxed_arc, reference, "{op}: Box<Box<Arc<F>>>");
    }
}
