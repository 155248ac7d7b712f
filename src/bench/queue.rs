//! `peregrine bench queue` and `queue-latency`: publish, receive and ack through one
//! message queue, or through `--queues N` spread over the shards. Producers publish
//! stamped messages in batches (durable with `--acks durable`: one group-committed
//! fdatasync per batch); consumers hold a push subscription with `--prefetch` and ack in
//! batches (manual acks), without waiting for each answer. A message counts as received
//! once its ack is answered (on disk); latency runs from each message's intended send
//! time to its delivery.

use super::consumer::{ConsumerResult, Progress};
use super::delivery::Ledger;
use super::payload::{self, now_ns, Stamp};
use super::producer::ProducerResult;
use super::report::histogram;
use super::{summarize, wait_for, BenchArgs, Mode, Outcome, Target};
use crate::client::queues::{BatchPublisher, Subscription};
use crate::native::messages::{Acks, PublishSpec, QueueSpec};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Publishes `count` messages, or until `deadline_ns` (`now_ns` clock) if that comes first.
fn produce(
    args: &BenchArgs,
    target: &Target,
    queue: &str,
    id: u32,
    count: u64,
    deadline_ns: Option<u64>,
) -> ProducerResult {
    let mut out = ProducerResult {
        sent: 0,
        acked: Default::default(),
        ack_ns: histogram(),
        first_send_ns: now_ns(),
        last_ack_ns: 0,
        error: None,
    };
    let mut client = match target.connect() {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    client.set_shard_aware(args.shard_aware);
    let spec = PublishSpec {
        durable: Acks::from(args.acks) == Acks::Durable,
        ..PublishSpec::default()
    };
    let mut publisher = BatchPublisher::new(client, queue, spec);
    // Each batch in flight: its first sequence number, its size and when it was sent.
    let mut in_flight: std::collections::VecDeque<(u64, u64, u64)> = Default::default();
    let gap = (args.mode == Mode::QueueLatency)
        .then(|| 1e9 * args.producers.max(1) as f64 / args.rate.max(1) as f64);
    // The batch's bodies, reused: only their stamps change from batch to batch.
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let start = now_ns();
    let mut seq = 0u64;
    while seq < count && deadline_ns.is_none_or(|d| now_ns() < d) {
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
        bodies.resize_with(n as usize, || vec![b'x'; args.size]);
        // A batch goes in one write: its messages are sent together, now.
        let batch_ns = now_ns();
        for (body, s) in bodies.iter_mut().zip(seq..seq + n) {
            let sent_ns = gap.map_or(batch_ns, |g| start + (s as f64 * g) as u64);
            payload::write(
                body,
                Stamp {
                    producer: id,
                    seq: s,
                    sent_ns,
                },
            );
        }
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        if let Err(e) = publisher.send(&refs) {
            out.error = Some(e.to_string());
            break;
        }
        in_flight.push_back((seq, n, now_ns()));
        seq += n;
        out.sent = seq;
        while in_flight.len() >= args.in_flight.max(1) {
            if let Err(e) = take_answer(&mut publisher, &mut in_flight, &mut out) {
                out.error = Some(e.to_string());
                return out;
            }
        }
    }
    // The batches still in flight when the count or the deadline was reached.
    while !in_flight.is_empty() {
        if let Err(e) = take_answer(&mut publisher, &mut in_flight, &mut out) {
            out.error = Some(e.to_string());
            break;
        }
    }
    out
}

/// Waits for the oldest batch in flight and counts its messages as acknowledged.
fn take_answer(
    publisher: &mut BatchPublisher,
    in_flight: &mut std::collections::VecDeque<(u64, u64, u64)>,
    out: &mut ProducerResult,
) -> Result<(), crate::client::ClientError> {
    publisher.wait_oldest()?;
    let Some((first, n, sent_at)) = in_flight.pop_front() else {
        return Ok(());
    };
    let now = now_ns();
    out.last_ack_ns = now;
    for s in first..first + n {
        out.acked.insert(s);
    }
    // One answer acknowledges the whole batch: each of its messages waited this long.
    let _ = out.ack_ns.record_n(now.saturating_sub(sent_at).max(1), n);
    Ok(())
}

fn consume(args: &BenchArgs, target: &Target, queue: &str, progress: &Progress) -> ConsumerResult {
    let mut out = ConsumerResult {
        ledger: Ledger::new(args.producers.max(1)),
        e2e_ns: histogram(),
        first_receive_ns: 0,
        last_receive_ns: 0,
        error: None,
    };
    // A subscription connects to the queue's owner shard by itself (as the client does:
    // TLS, credentials).
    let opened = target
        .connect()
        .and_then(|mut client| Subscription::open_with(&mut client, queue, args.prefetch, false));
    let mut sub = match opened {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let ack_every = (args.prefetch as usize / 2).max(1);
    let mut handles = Vec::with_capacity(ack_every);
    let mut stamps = Vec::with_capacity(ack_every);
    // Messages acked, and those whose ack was answered (counted in `progress`).
    let (mut sent, mut counted) = (0u64, 0u64);
    // How long no message has come (ms): what is held is acked after a 20 ms pause.
    let mut paused = 0u64;
    while !progress.stop.load(Ordering::Relaxed) {
        // Answers still to come are read by `next`: look again soon for them.
        let wait = if counted < sent { 1 } else { 20 };
        let next = match sub.next(Duration::from_millis(wait)) {
            Ok(n) => n,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        };
        paused = if next.is_some() { 0 } else { paused + wait };
        if let Some(r) = &next {
            let now = now_ns();
            if let Some(stamp) = payload::read(&r.body) {
                let _ = out.e2e_ns.record(now.saturating_sub(stamp.sent_ns).max(1));
                stamps.push(stamp);
            }
            handles.push(r.delivery.handle);
        }
        // Ack in batches, and whatever is held when the stream pauses.
        if handles.len() >= ack_every || (paused >= 20 && !handles.is_empty()) {
            if let Err(e) = sub.ack(&handles) {
                out.error = Some(e.to_string());
                break;
            }
            for s in stamps.drain(..) {
                out.ledger.receive(s.producer, s.seq);
            }
            sent += handles.len() as u64;
            handles.clear();
        }
        let answered = sub.answered();
        if answered > counted {
            progress
                .received
                .fetch_add(answered - counted, Ordering::Relaxed);
            counted = answered;
            let now = now_ns();
            if out.first_receive_ns == 0 {
                out.first_receive_ns = now;
            }
            out.last_receive_ns = now;
        }
    }
    out
}

/// Declares `n` bench queues, queue `i` owned by shard `i % shards`, so that several
/// queues spread over the broker's cores as partitions do.
fn declare_queues(target: &Target, n: usize) -> Result<Vec<String>, crate::client::ClientError> {
    let mut client = target.connect()?;
    let shards = client.shard_count()?.max(1) as u32;
    let base = format!("bench-q-{}-{}", std::process::id(), crate::time::now_ms());
    let mut names = Vec::with_capacity(n);
    let mut suffix = 0u32;
    for i in 0..n {
        let want = i as u32 % shards;
        loop {
            // A name lands on a given shard one time in `shards`: this many misses
            // mean the broker's owners are not what its metadata says.
            if suffix > 64 * (shards + n as u32) {
                return Err(crate::client::ClientError::Protocol(format!(
                    "no queue name landed on shard {want} of {shards}"
                )));
            }
            let name = format!("{base}-{suffix}");
            suffix += 1;
            client.declare_queue(QueueSpec {
                name: name.clone(),
                ..QueueSpec::default()
            })?;
            // Names hash to owners: keep one that landed where this queue should be.
            if client.queue_stats(&name)?.owner == want {
                names.push(name);
                break;
            }
            client.delete_queue(&name)?;
        }
    }
    Ok(names)
}

/// How often `--backlog` samples the broker's resident set.
const RSS_SAMPLE_MS: u64 = 100;

/// The largest resident set (VmRSS) a process had while it was sampled, per phase.
struct RssSampler {
    peak_kib: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak_kib = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (peak, done) = (peak_kib.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(RSS_SAMPLE_MS));
            }
        });
        RssSampler {
            peak_kib,
            stop,
            thread: Some(thread),
        }
    }

    /// The peak since the last call (MiB); sampling goes on from zero.
    fn take_peak_mib(&self) -> f64 {
        self.peak_kib.swap(0, Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn spawn_consumers(
    args: &BenchArgs,
    target: &Target,
    queues: &[String],
    progress: &Arc<Progress>,
) -> Vec<std::thread::JoinHandle<ConsumerResult>> {
    (0..args.consumers.max(1))
        .map(|i| {
            let (a, b) = (args.clone(), target.clone());
            let q = queues[i % queues.len()].clone();
            let progress = progress.clone();
            std::thread::spawn(move || consume(&a, &b, &q, &progress))
        })
        .collect()
}

pub fn run(
    args: &BenchArgs,
    target: &Target,
    broker_pid: Option<u32>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let queues = declare_queues(target, args.queues.max(1))?;
    let rss = broker_pid.filter(|_| args.backlog).map(RssSampler::start);
    // `--duration` alone: no count, the deadline ends the run.
    let total = args.messages.unwrap_or(u64::MAX);
    let producers = args.producers.max(1) as u64;
    let progress = Arc::new(Progress::default());
    // Producer and consumer `i` use queue `i % queues`; with `--backlog` the consumers
    // come once every message is published.
    let mut consumers = if args.backlog {
        Vec::new()
    } else {
        spawn_consumers(args, target, &queues, &progress)
    };
    let start = now_ns();
    let deadline = args.duration.map(|d| start + (d * 1e9) as u64);
    let producers: Vec<ProducerResult> = (0..producers)
        .map(|i| {
            let (a, b) = (args.clone(), target.clone());
            let q = queues[i as usize % queues.len()].clone();
            let count = total / producers + u64::from(i < total % producers);
            std::thread::spawn(move || produce(&a, &b, &q, i as u32, count, deadline))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().map_err(|_| "producer panicked"))
        .collect::<Result<_, _>>()?;
    let expected = producers.iter().map(|p| p.acked.len()).sum();
    if args.backlog {
        let published_s = (now_ns() - start) as f64 / 1e9;
        let peak = rss.as_ref().map_or(0.0, RssSampler::take_peak_mib);
        eprintln!(
            "backlog: {expected} messages published in {published_s:.1} s, no consumer; broker peak RSS {peak:.0} MiB"
        );
        consumers = spawn_consumers(args, target, &queues, &progress);
    }
    let drain_start = now_ns();
    wait_for(&progress, expected, true);
    if args.backlog {
        let drained_s = (now_ns() - drain_start) as f64 / 1e9;
        let peak = rss.as_ref().map_or(0.0, RssSampler::take_peak_mib);
        let received = progress.received.load(Ordering::Relaxed);
        eprintln!(
            "backlog: {received} of {expected} received and acked in {drained_s:.1} s; broker peak RSS while draining {peak:.0} MiB"
        );
    }
    progress.stop.store(true, Ordering::Relaxed);
    let consumers: Vec<ConsumerResult> = consumers
        .into_iter()
        .map(|h| h.join().map_err(|_| "consumer panicked"))
        .collect::<Result<_, _>>()?;
    Ok(summarize(args, start, producers, consumers))
}
