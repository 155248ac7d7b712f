//! Long polls a shard keeps waiting are bounded (`--max-long-polls`, issue 16): past the
//! bound a pull Receive or a Fetch is answered at once with what there is, the waiting
//! ones keep waiting and get what arrives, and a place is given back when a long poll
//! ends.

mod common;

use common::Broker;
use peregrine::native::messages::{PublishSpec, QueueSpec, TopicSpec};
use std::time::{Duration, Instant};

/// How long each long poll asks to wait.
const WAIT_MS: u32 = 8_000;
/// A poll answered before this did not wait for its `WAIT_MS`.
const AT_ONCE: Duration = Duration::from_secs(4);
/// How long the test waits for something that must happen.
const WITHIN: Duration = Duration::from_secs(20);

#[test]
fn long_polls_past_the_bound_are_answered_at_once_and_the_waiting_ones_keep_waiting() {
    let broker = Broker::start_with(&["--shards", "1", "--max-long-polls", "2"]);
    let mut admin = broker.client();
    admin
        .declare_queue(QueueSpec {
            name: "lp".into(),
            ..QueueSpec::default()
        })
        .expect("declare");
    admin
        .create_topic(TopicSpec {
            name: "lp-topic".into(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
        })
        .expect("create topic");

    // Two pull receives take the shard's two places and wait.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let mut c = broker.client();
            std::thread::spawn(move || c.receive("lp", 1, WAIT_MS, true).expect("receive"))
        })
        .collect();
    let deadline = Instant::now() + WITHIN;
    while admin.queue_stats("lp").expect("stats").consumers < 2 {
        assert!(Instant::now() < deadline, "the two receives never waited");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A third receive and a fetch find no place: answered at once, empty.
    let mut third = broker.client();
    let started = Instant::now();
    let got = third
        .receive("lp", 1, WAIT_MS, true)
        .expect("third receive");
    assert!(got.is_empty(), "nothing was published yet");
    assert!(
        started.elapsed() < AT_ONCE,
        "the receive past the bound waited"
    );
    let started = Instant::now();
    let fetched = third
        .fetch("lp-topic", 0, 0, 1 << 20, WAIT_MS)
        .expect("fetch");
    assert!(fetched.batches.is_empty());
    assert!(
        started.elapsed() < AT_ONCE,
        "the fetch past the bound waited"
    );

    // The waiting ones still get what arrives.
    admin
        .publish("lp", PublishSpec::default(), b"for a waiter")
        .expect("publish");
    let received: usize = waiters
        .into_iter()
        .map(|w| w.join().expect("waiter").len())
        .sum();
    assert_eq!(
        received, 1,
        "one waiter got the message, the other timed out"
    );

    // Their places are free again: a new long poll waits for its time.
    let started = Instant::now();
    let got = third.receive("lp", 1, 2_000, true).expect("receive again");
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "a long poll with places free did not wait ({:?})",
        started.elapsed()
    );
}
