//! Should large fetch responses go out with `IORING_OP_SEND_ZC`? The broker sends
//! cached batches (immutable memory) on a socket through io_uring; this compares a
//! plain io_uring `SEND` (the kernel copies into socket buffers) with `SEND_ZC` (the
//! pages are pinned and referenced; a second completion, the notification, says when
//! the buffer is free again) on a loopback TCP connection drained by a reader thread.
//!
//! * `send_zc/{copy,zerocopy}/SIZE`: one response of SIZE bytes sent and completed,
//!   i.e. what one fetch answer costs the shard. Notifications are reaped as they come
//!   (the broker would drop its `Bytes` reference then), never waited on in the loop.
//!
//! Loopback is where the bench targets are set; the kernel's MSG_ZEROCOPY notes say
//! data looped to a local socket is copied anyway (deferred), so this measures whether
//! the extra notification is worth anything here, not on a NIC.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use io_uring::{cqueue, opcode, types, IoUring};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];
const RING_ENTRIES: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Copy,
    ZeroCopy,
}

/// A connected pair whose far end is read and discarded by a thread until closed.
fn connection() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 4 << 20];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

struct Sender {
    ring: IoUring,
    stream: TcpStream,
    /// Zero-copy notifications not yet reaped.
    notifs_due: u64,
}

impl Sender {
    fn new() -> Sender {
        Sender {
            ring: IoUring::new(RING_ENTRIES).expect("io_uring"),
            stream: connection(),
            notifs_due: 0,
        }
    }

    /// Sends all of `buf` (resubmitting after short sends) and returns once the last
    /// send completed.
    fn send(&mut self, buf: &[u8], mode: Mode) {
        let fd = types::Fd(self.stream.as_raw_fd());
        let mut sent = 0usize;
        while sent < buf.len() {
            let rest = &buf[sent..];
            let sqe = match mode {
                Mode::Copy => opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32).build(),
                Mode::ZeroCopy => opcode::SendZc::new(fd, rest.as_ptr(), rest.len() as u32).build(),
            }
            .user_data(1);
            // SAFETY: `buf` outlives the operation: the result is awaited below, and
            // zero-copy sends only use memory the caller keeps alive until `finish`.
            unsafe { self.ring.submission().push(&sqe).expect("queue full") };
            let result = loop {
                self.ring.submit_and_wait(1).expect("submit");
                let mut result = None;
                for cqe in self.ring.completion() {
                    if cqueue::notif(cqe.flags()) {
                        self.notifs_due -= 1;
                        continue;
                    }
                    if cqueue::more(cqe.flags()) {
                        self.notifs_due += 1;
                    }
                    result = Some(cqe.result());
                }
                if let Some(r) = result {
                    break r;
                }
            };
            assert!(result > 0, "send failed: {result}");
            sent += result as usize;
        }
    }

    /// Waits for every outstanding notification (the buffer is free after this).
    fn finish(&mut self) {
        while self.notifs_due > 0 {
            self.ring.submit_and_wait(1).expect("submit");
            for cqe in self.ring.completion() {
                if cqueue::notif(cqe.flags()) {
                    self.notifs_due -= 1;
                }
            }
        }
    }
}

fn send_zc(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_zc");
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let buf = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        for (name, mode) in [("copy", Mode::Copy), ("zerocopy", Mode::ZeroCopy)] {
            let mut sender = Sender::new();
            group.bench_with_input(BenchmarkId::new(name, size), &buf, |b, buf| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        sender.send(buf, mode);
                    }
                    start.elapsed()
                })
            });
            sender.finish();
        }
    }
    group.finish();
}

criterion_group!(benches, send_zc);
criterion_main!(benches);
