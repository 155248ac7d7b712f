//! `peregrine bench queue` and `queue-latency`: publish, receive and ack through one
//! message queue. Producers publish stamped messages in batches (durable with
//! `--acks durable`: one group-committed fdatasync per batch); consumers hold a push
//! subscription with `--prefetch` and ack in batches (manual acks). A message counts as
//! received once its ack is answered; latency runs from each message's intended send
//! time to its delivery.

use super::delivery::Ledger;
use super::payload::{self, now_ns, Stamp};
use super::report::{histogram, Percentiles, Summary};
use super::{BenchArgs, Mode, Outcome, DRAIN_TIMEOUT};
use crate::client::queues::Subscription;
use crate::client::Client;
use crate::native::messages::{Acks, PublishSpec, QueueSpec};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Produced {
    acked: super::delivery::SeqSet,
    sent: u64,
    ack_ns: Histogram<u64>,
    first_ns: u64,
    error: Option<String>,
}

struct Consumed {
    ledger: Ledger,
    e2e_ns: Histogram<u64>,
    last_ns: u64,
    error: Option<String>,
}

fn produce(args: &BenchArgs, bootstrap: &str, queue: &str, id: u32, count: u64) -> Produced {
    let mut out = Produced {
        acked: Default::default(),
        sent: 0,
        ack_ns: histogram(),
        first_ns: now_ns(),
        error: None,
    };
    let mut client = match Client::connect(bootstrap) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let spec = PublishSpec {
        durable: Acks::from(args.acks) == Acks::Durable,
        ..PublishSpec::default()
    };
    let gap = (args.mode == Mode::QueueLatency)
        .then(|| 1e9 * args.producers.max(1) as f64 / args.rate.max(1) as f64);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let start = now_ns();
    let mut seq = 0u64;
    while seq < count {
        // At a fixed rate: whatever is due now (at least one), else a full batch.
        let n = match gap {
            Some(gap) => {
                let due_at = start + (seq as f64 * gap) as u64;
                while now_ns() < due_at {
                    std::thread::sleep(Duration::from_micros(20));
                }
                let due = ((now_ns() - start) as f64 / gap) as u64 + 1;
                due.saturating_sub(seq).clamp(1, args.batch as u64)
            }
            None => args.batch as u64,
        }
        .min(count - seq);
        bodies.clear();
        for s in seq..seq + n {
            let mut body = vec![b'x'; args.size];
            let sent_ns = gap.map_or_else(now_ns, |g| start + (s as f64 * g) as u64);
            payload::write(
                &mut body,
                Stamp {
                    producer: id,
                    seq: s,
                    sent_ns,
                },
            );
            bodies.push(body);
        }
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let sent_at = now_ns();
        if let Err(e) = client.publish_batch(queue, spec.clone(), &refs) {
            out.error = Some(e.to_string());
            break;
        }
        let took = now_ns().saturating_sub(sent_at).max(1);
        for s in seq..seq + n {
            out.acked.insert(s);
            let _ = out.ack_ns.record(took);
        }
        seq += n;
        out.sent = seq;
    }
    out
}

fn consume(
    args: &BenchArgs,
    bootstrap: &str,
    queue: &str,
    stop: &AtomicBool,
    received: &AtomicU64,
) -> Consumed {
    let mut out = Consumed {
        ledger: Ledger::new(args.producers.max(1)),
        e2e_ns: histogram(),
        last_ns: 0,
        error: None,
    };
    let mut sub = match Subscription::open(bootstrap, queue, args.prefetch, false) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let ack_every = (args.prefetch as usize / 2).max(1);
    let mut handles = Vec::with_capacity(ack_every);
    let mut stamps = Vec::with_capacity(ack_every);
    while !stop.load(Ordering::Relaxed) {
        let next = match sub.next(Duration::from_millis(20)) {
            Ok(n) => n,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        };
        if let Some(r) = &next {
            let now = now_ns();
            if let Some(stamp) = payload::read(&r.body) {
                let _ = out.e2e_ns.record(now.saturating_sub(stamp.sent_ns).max(1));
                stamps.push(stamp);
            }
            handles.push(r.delivery.handle);
        }
        // Ack in batches, and whatever is held when the stream pauses.
        if handles.len() >= ack_every || (next.is_none() && !handles.is_empty()) {
            if let Err(e) = sub.ack(&handles) {
                out.error = Some(e.to_string());
                break;
            }
            for s in stamps.drain(..) {
                out.ledger.receive(s.producer, s.seq);
            }
            received.fetch_add(handles.len() as u64, Ordering::Relaxed);
            handles.clear();
            out.last_ns = now_ns();
        }
    }
    out
}

pub fn run(args: &BenchArgs, bootstrap: &str) -> Result<Outcome, Box<dyn std::error::Error>> {
    let queue = format!("bench-q-{}-{}", std::process::id(), crate::time::now_ms());
    Client::connect(bootstrap)?.declare_queue(QueueSpec {
        name: queue.clone(),
        ..QueueSpec::default()
    })?;
    let total = args.messages.unwrap_or(1_000_000);
    let producers = args.producers.max(1) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|_| {
            let (a, b, q) = (args.clone(), bootstrap.to_string(), queue.clone());
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || consume(&a, &b, &q, &stop, &received))
        })
        .collect();
    let start = now_ns();
    let handles: Vec<_> = (0..producers)
        .map(|i| {
            let (a, b, q) = (args.clone(), bootstrap.to_string(), queue.clone());
            let count = total / producers + u64::from(i < total % producers);
            std::thread::spawn(move || produce(&a, &b, &q, i as u32, count))
        })
        .collect();
    let mut ledger = Ledger::new(producers as usize);
    let mut ack_ns = histogram();
    let mut sent = 0;
    let mut first = u64::MAX;
    for (i, h) in handles.into_iter().enumerate() {
        let p = h.join().map_err(|_| "producer panicked")?;
        if let Some(e) = p.error {
            eprintln!("producer {i}: {e}");
        }
        sent += p.sent;
        first = first.min(p.first_ns);
        let _ = ack_ns.add(&p.ack_ns);
        ledger.acked[i] = p.acked;
    }
    let expected = ledger.acked_total();
    let (mut last, mut idle) = (received.load(Ordering::Relaxed), Duration::ZERO);
    while received.load(Ordering::Relaxed) < expected && idle < DRAIN_TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
        let now = received.load(Ordering::Relaxed);
        idle = if now == last {
            idle + Duration::from_millis(5)
        } else {
            Duration::ZERO
        };
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let mut e2e_ns = histogram();
    let mut end = start;
    for h in consumers {
        let c = h.join().map_err(|_| "consumer panicked")?;
        if let Some(e) = c.error {
            eprintln!("consumer: {e}");
        }
        let _ = e2e_ns.add(&c.e2e_ns);
        end = end.max(c.last_ns);
        for (p, set) in c.ledger.received.iter().enumerate() {
            ledger.received[p].merge(set);
        }
        ledger.duplicated += c.ledger.duplicated;
    }
    let count = ledger.received_total();
    let duration_s = end.saturating_sub(first.min(start)).max(1) as f64 / 1e9;
    let msgs_per_s = count as f64 / duration_s;
    let summary = Summary {
        mode: format!("{:?}", args.mode).to_lowercase(),
        acks: format!("{:?}", args.acks).to_lowercase(),
        producers: args.producers,
        consumers: args.consumers,
        partitions: 0,
        size: args.size,
        batch: args.batch,
        shard_aware: false,
        rate: (args.mode == Mode::QueueLatency).then_some(args.rate),
        messages_sent: sent,
        messages_acked: expected,
        messages_received: count,
        duration_s,
        msgs_per_s,
        mb_per_s: msgs_per_s * args.size as f64 / 1e6,
        e2e_us: Percentiles::of(&e2e_ns),
        ack_us: Percentiles::of(&ack_ns),
        lost: ledger.lost(),
        duplicated: ledger.duplicated,
        broker_cpu_s: None,
        broker_cpu_ns_per_msg: None,
        broker_peak_rss_mb: None,
    };
    Ok((summary, e2e_ns, ack_ns))
}
