//! Clients that declare large frames and send them slowly (or never): the broker holds
//! about what they sent, not what they declared, and keeps serving everyone else.

mod common;
use common::Broker;
use peregrine::native::messages::OffsetSpec;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// The largest frame the broker is started with; each slow sender declares one just
/// under it.
const MAX_FRAME_BYTES: u32 = 4 << 20;
/// Slow connections per protocol.
const SENDERS: usize = 150;
/// What each sends of its frame before going quiet.
const SENT_BYTES: usize = 1_000;
/// What the slow senders may add to the broker's peak RSS: per connection a receive
/// buffer (64 KiB Kafka, 1 MiB native, the native one faulted in only where written).
/// Before the fix a Kafka connection zeroed a buffer for its whole declared frame: the
/// 150 Kafka senders here made the broker grow by 623 MiB.
const GROWTH_MAX_BYTES: u64 = 64 << 20;

fn slow_sender(addr: &str, head: &[u8]) -> TcpStream {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.write_all(head).expect("head");
    conn.write_all(&[0u8; SENT_BYTES]).expect("first bytes");
    conn
}

#[test]
fn large_frames_sent_slowly_cost_what_was_sent_not_what_was_declared() {
    let b = Broker::start_with(&["--max-frame-bytes", &MAX_FRAME_BYTES.to_string()]);
    b.create_topic("t", 1);
    let before = b.peak_rss_bytes().expect("VmHWM");
    let declared = MAX_FRAME_BYTES - 16;
    let kafka_head = declared.to_be_bytes();
    // A native head: frame length, then the envelope's length within it.
    let mut native_head = declared.to_be_bytes().to_vec();
    native_head.extend_from_slice(&64u32.to_be_bytes());
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(slow_sender(&b.kafka_addr, &kafka_head));
        senders.push(slow_sender(&b.addr, &native_head));
    }
    std::thread::sleep(Duration::from_secs(2));
    let grown = b.peak_rss_bytes().expect("VmHWM").saturating_sub(before);
    println!(
        "{} slow senders grew the broker's peak RSS by {} MiB (bound {} MiB)",
        senders.len(),
        grown >> 20,
        GROWTH_MAX_BYTES >> 20
    );
    let mut c = b.client();
    assert_eq!(
        c.list_offset("t", 0, OffsetSpec::Latest).expect("served"),
        0
    );
    assert!(
        grown < GROWTH_MAX_BYTES,
        "peak RSS grew by {grown} bytes, over {GROWTH_MAX_BYTES}"
    );
    drop(senders);
}
