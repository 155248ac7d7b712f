//! The bound on cross-core calls in flight (`--cross-core-in-flight-max`): a call past
//! it waits for one to finish (backpressure, never an error), and each kind of call has
//! its own budget, so long polls that fill theirs never hold back the produce they are
//! waiting for.

mod common;
use common::Broker;
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine::client::Connection;
use peregrine::native::messages::{Acks, Request, Response};
use std::time::Duration;

const TOPIC: &str = "hops";
/// Enough partitions that each of two shards owns at least two.
const PARTITIONS: i32 = 4;
/// Longest the test waits for any answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fetch long-polls: far longer than the test, so only data ends it.
const LONG_POLL_MS: u32 = 25_000;

fn record(text: &str) -> Vec<u8> {
    let r = OutRecord {
        key: None,
        value: text.as_bytes().to_vec().into(),
        timestamp_ms: 1_700_000_000_000,
    };
    encode_batch(&[r]).expect("batch").to_vec()
}

fn long_poll(partition: i32) -> Request {
    Request::Fetch {
        topic: TOPIC.into(),
        partition,
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: LONG_POLL_MS,
        min_bytes: 1,
        isolation: Default::default(),
    }
}

/// The next answer on `conn`: (request id, whether it is a fetch that got data).
fn next_answer(conn: &mut Connection) -> (u64, bool) {
    assert!(
        conn.wait_readable(ANSWER_TIMEOUT).expect("poll"),
        "no answer within {ANSWER_TIMEOUT:?}"
    );
    let (id, response, payload) = conn.recv().expect("answer");
    match response {
        Response::Fetched { .. } => (id, !payload.is_empty()),
        Response::Error { code, message } => {
            panic!("a call past the bound failed: {code:?} {message}")
        }
        _ => (id, false),
    }
}

#[test]
fn a_call_past_the_cross_core_bound_waits_and_each_kind_has_its_own_budget() {
    let b = Broker::start_with(&["--cross-core-in-flight-max", "1"]);
    b.create_topic(TOPIC, PARTITIONS);
    let mut c = b.client();
    let owners = c.topic(TOPIC).expect("topic").owners;
    // Connect to shard 0's own port and use two partitions another shard owns: every
    // call below crosses cores.
    let remote: Vec<i32> = (0..PARTITIONS)
        .filter(|p| owners[*p as usize] != 0)
        .collect();
    assert!(remote.len() >= 2, "placement {owners:?}");
    let (first, second) = (remote[0], remote[1]);
    let host = b.addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    let mut polls = Connection::connect(format!("{host}:{}", b.shard_ports[0])).expect("connect");
    let held = polls.send(long_poll(first), &[]).expect("send");
    let waiting = polls.send(long_poll(second), &[]).expect("send");
    // Produces are client calls: their budget is free although the long polls' is full.
    let mut producer =
        Connection::connect(format!("{host}:{}", b.shard_ports[0])).expect("connect");
    producer
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .expect("timeout");
    let produce = |partition| Request::Produce {
        topic: TOPIC.into(),
        partition,
        acks: Acks::Leader,
    };
    let (answer, _) = producer
        .call(produce(second), &[&record("for the waiting poll")])
        .expect("produce past a full long-poll budget");
    assert!(matches!(answer, Response::Produced { .. }), "{answer:?}");
    // The second poll has data now, but it waits for the first one's slot.
    assert!(
        !polls
            .wait_readable(Duration::from_millis(500))
            .expect("poll"),
        "the second long poll ran beside the first one: no bound"
    );
    let (answer, _) = producer
        .call(produce(first), &[&record("ends the first poll")])
        .expect("produce");
    assert!(matches!(answer, Response::Produced { .. }), "{answer:?}");
    let mut got = vec![next_answer(&mut polls), next_answer(&mut polls)];
    got.sort();
    assert_eq!(
        got,
        vec![(held, true), (waiting, true)],
        "both polls got their data"
    );
}
