//! Fairness between the connections of one shard (issue 20): a client that pipelines
//! many thousands of requests the broker answers without waiting for anything (AMQP
//! `basic.qos`, HTTP `GET /healthz`), and reads every answer, does not keep its shard
//! from serving another client meanwhile.
//!
//! glommio is cooperative: a task gives the core back only when something it awaits is
//! not ready. A connection whose socket always has the next request buffered, and whose
//! requests are answered at once, never reaches such an await, so without a yield per
//! request (`runtime::yield_if_needed`) its loop held the shard until the client stopped
//! sending.
//!
//! One shard, so that the flooding connection and the witness share it. What is asserted
//! is an order, not a time: the witness completes round trips between the flood's first
//! answer and its last one.

mod common;
use amq_protocol::protocol::{basic, AMQPClass};
use common::amqp_raw::{method_frame, Login, RawAmqp, Tuning};
use common::Broker;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `basic.qos` frames the AMQP flood pipelines (19 bytes each, 12 of answer): seconds of
/// work for a debug broker, several MiB of requests, under the answers' read-stop bound.
const AMQP_REQUESTS: usize = 300_000;
/// `GET /healthz` requests the HTTP flood pipelines.
const HTTP_REQUESTS: usize = 100_000;
/// Round trips the witness must complete while the flood is being answered. Measured on
/// dev-2c (debug build): with a yield per request about 2,000 during the AMQP flood and
/// 700 during 50,000 HTTP requests; without, 1 during the AMQP flood (2.7 s), and 9 during
/// the HTTP one, whose loop gave the core back only when it had read all the client had
/// sent so far.
const WITNESS_ROUND_TRIPS_MIN: u64 = 50;
/// Every wait in this file ends by then.
const WITHIN: Duration = Duration::from_secs(120);

fn broker() -> Broker {
    Broker::start_with(&["--shards", "1"])
}

/// A native client doing Metadata round trips in a loop on the broker's only shard.
struct Witness {
    stop: Arc<AtomicBool>,
    round_trips: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Witness {
    fn start(broker: &Broker) -> Witness {
        let mut client = broker.client();
        client.metadata(None).expect("a first round trip");
        let stop = Arc::new(AtomicBool::new(false));
        let round_trips = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, round_trips) = (stop.clone(), round_trips.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    client.metadata(None).map_err(|e| e.to_string())?;
                    round_trips.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        Witness {
            stop,
            round_trips,
            thread: Some(thread),
        }
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let ended = thread.join().expect("the witness thread panicked");
            assert_eq!(ended, Ok(()), "the witness failed");
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The witness's round trips done when the flood's first answer byte came and when its
/// last one did, and the time between.
struct Served {
    first: u64,
    last: u64,
    took: Duration,
}

/// Writes `requests` on `conn` from a thread of its own while this one reads
/// `answer_bytes` of answers.
fn flood(conn: TcpStream, requests: Vec<u8>, answer_bytes: usize, witness: &Witness) -> Served {
    let mut writer = conn.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&requests));
    let mut reader = conn;
    reader.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut buf = vec![0u8; 64 << 10];
    let (mut read, mut first) = (0usize, None);
    while read < answer_bytes {
        match reader.read(&mut buf) {
            Ok(0) => panic!("the broker closed the flooding connection after {read} bytes"),
            Ok(n) => read += n,
            Err(e) => panic!("after {read} of {answer_bytes} answer bytes: {e}"),
        }
        first.get_or_insert_with(|| (witness.round_trips(), Instant::now()));
    }
    let last = witness.round_trips();
    let (first, since) = first.unwrap_or((last, Instant::now()));
    sender
        .join()
        .expect("the sender panicked")
        .expect("the requests were sent");
    assert_eq!(read, answer_bytes, "more answer bytes than requests");
    Served {
        first,
        last,
        took: since.elapsed(),
    }
}

fn assert_witness_served(protocol: &str, served: Served) {
    let Served { first, last, took } = served;
    eprintln!(
        "{protocol}: {} witness round trips in the {took:?} the flood was answered",
        last - first
    );
    assert!(
        last - first >= WITNESS_ROUND_TRIPS_MIN,
        "the witness made {} round trips in the {took:?} from the {protocol} flood's first \
         answer to its last",
        last - first
    );
}

#[test]
fn an_amqp_connection_pipelining_answered_methods_does_not_starve_its_shard() {
    let broker = broker();
    // Heartbeats off: the answers are exactly the qos-oks.
    let tuning = Tuning {
        heartbeat: 0,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    conn.channel_open(1);
    let qos = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 10,
            global: false,
        })),
    );
    let qos_ok = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
    );
    let witness = Witness::start(&broker);
    let served = flood(
        conn.stream.try_clone().expect("clone"),
        qos.repeat(AMQP_REQUESTS),
        qos_ok.len() * AMQP_REQUESTS,
        &witness,
    );
    witness.finish();
    assert_witness_served("AMQP", served);
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n";

/// The length of one `GET /healthz` answer on `conn` (head and body).
fn healthz_answer_len(conn: &mut TcpStream) -> usize {
    conn.write_all(HEALTHZ).expect("send");
    conn.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..head_end]
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("a Content-Length");
        if answer.len() >= head_end + 4 + length {
            assert_eq!(answer.len(), head_end + 4 + length, "one answer, no more");
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            return answer.len();
        }
    }
}

#[test]
fn an_http_connection_pipelining_health_checks_does_not_starve_its_shard() {
    let broker = broker();
    let mut conn = TcpStream::connect(&broker.http_addr).expect("connect");
    let answer_len = healthz_answer_len(&mut conn);
    let witness = Witness::start(&broker);
    let served = flood(
        conn,
        HEALTHZ.repeat(HTTP_REQUESTS),
        answer_len * HTTP_REQUESTS,
        &witness,
    );
    witness.finish();
    assert_witness_served("HTTP", served);
}
