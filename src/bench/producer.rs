//! A bench producer: sends stamped messages as fast as it can, or at a fixed rate with
//! each message stamped with its intended send time (coordinated-omission correction),
//! pipelining batches with a reader thread per connection collecting acknowledgements.

use super::delivery::SeqSet;
use super::payload::{self, now_ns};
use super::report::histogram;
use crate::client::connection::{FrameReader, FrameWriter};
use crate::client::tls::ClientTls;
use crate::client::{check, Client, ClientError};
use crate::native::messages::{Acks, Request, Response};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The last stretch before a send that is spun rather than slept.
const SPIN_NS: u64 = 20_000;
/// Batches in flight per connection before the producer waits.
const WINDOW: usize = 64;

#[derive(Clone)]
pub struct ProducerPlan {
    pub id: u32,
    pub bootstrap: String,
    /// Set to connect over TLS.
    pub tls: Option<Arc<ClientTls>>,
    /// Set to authenticate (SCRAM).
    pub credentials: Option<Arc<crate::client::auth::Credentials>>,
    pub topic: String,
    pub partitions: i32,
    /// Messages to send (None: until the deadline).
    pub messages: Option<u64>,
    /// Stop sending at this time (ns on the bench clock).
    pub deadline_ns: Option<u64>,
    pub size: usize,
    pub batch: usize,
    pub acks: Acks,
    /// Messages per second for this producer (latency mode).
    pub rate: Option<f64>,
    pub shard_aware: bool,
}

pub struct ProducerResult {
    pub sent: u64,
    pub acked: SeqSet,
    pub ack_ns: Histogram<u64>,
    pub first_send_ns: u64,
    pub last_ack_ns: u64,
    pub error: Option<String>,
}

/// What the ack reader needs to account for one in-flight batch.
struct InFlight {
    id: u64,
    first_seq: u64,
    /// Intended send time of each message of the batch.
    sent_ns: Vec<u64>,
}

struct AckResult {
    acked: SeqSet,
    ack_ns: Histogram<u64>,
    last_ack_ns: u64,
    error: Option<String>,
}

fn read_acks(mut reader: FrameReader, rx: Receiver<InFlight>) -> AckResult {
    let mut out = AckResult {
        acked: SeqSet::default(),
        ack_ns: histogram(),
        last_ack_ns: 0,
        error: None,
    };
    let mut waiting: HashMap<u64, InFlight> = HashMap::new();
    loop {
        if waiting.is_empty() {
            match rx.recv() {
                Ok(f) => {
                    waiting.insert(f.id, f);
                }
                Err(_) => return out,
            }
        }
        let (id, response, _) = match reader.recv() {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        };
        while !waiting.contains_key(&id) {
            match rx.recv() {
                Ok(f) => {
                    waiting.insert(f.id, f);
                }
                Err(_) => return out,
            }
        }
        let Some(batch) = waiting.remove(&id) else {
            continue;
        };
        match check(response) {
            Ok(Response::Produced { .. }) => {
                let now = now_ns();
                out.last_ack_ns = now;
                record_acks(
                    &mut out.acked,
                    &mut out.ack_ns,
                    batch.first_seq,
                    &batch.sent_ns,
                    now,
                );
            }
            Ok(other) => out.error = Some(format!("unexpected answer to produce: {other:?}")),
            Err(e) => out.error = Some(e.to_string()),
        }
    }
}

/// Counts the messages of one acknowledged batch (from `first_seq` on) as acked, with
/// their latency from each intended send time to `now`.
pub(super) fn record_acks(
    acked: &mut SeqSet,
    ack_ns: &mut Histogram<u64>,
    first_seq: u64,
    sent_ns: &[u64],
    now: u64,
) {
    for (i, sent) in sent_ns.iter().enumerate() {
        acked.insert(first_seq + i as u64);
        let _ = ack_ns.record(now.saturating_sub(*sent).max(1));
    }
}

/// One connection's sending half and the thread reading its acknowledgements.
struct Lane {
    writer: FrameWriter,
    in_flight: Option<SyncSender<InFlight>>,
    reader: Option<JoinHandle<AckResult>>,
}

fn open_lanes(plan: &ProducerPlan) -> Result<(Vec<Lane>, Vec<usize>), ClientError> {
    let mut client =
        Client::connect_as(&plan.bootstrap, plan.tls.clone(), plan.credentials.clone())?;
    // Which lane each partition uses: one per owning shard when shard-aware, else one.
    let mut lane_of_shard: HashMap<u32, usize> = HashMap::new();
    let mut lane_of_partition = Vec::new();
    let mut lanes = Vec::new();
    for p in 0..plan.partitions {
        let owner = match plan.shard_aware {
            true => client.owner_port(&plan.topic, p)?,
            false => None,
        };
        // u32::MAX: the bootstrap connection, which routes.
        let shard = owner.map_or(u32::MAX, |(shard, _)| shard);
        let lane = match lane_of_shard.get(&shard) {
            Some(l) => *l,
            None => {
                let conn = match owner {
                    Some((_, port)) => client.connect_port(port)?,
                    None => client.connect_bootstrap()?,
                };
                let (writer, reader) = conn.into_split();
                let (tx, rx) = sync_channel(WINDOW);
                let acks = plan.acks != Acks::None;
                lanes.push(Lane {
                    writer,
                    in_flight: acks.then_some(tx),
                    reader: acks.then(|| std::thread::spawn(move || read_acks(reader, rx))),
                });
                lane_of_shard.insert(shard, lanes.len() - 1);
                lanes.len() - 1
            }
        };
        lane_of_partition.push(lane);
    }
    Ok((lanes, lane_of_partition))
}

/// Sends until the plan is done; `sent_counter` feeds the progress line.
pub fn run(plan: ProducerPlan, sent_counter: Arc<AtomicU64>) -> ProducerResult {
    let mut result = ProducerResult {
        sent: 0,
        acked: SeqSet::default(),
        ack_ns: histogram(),
        first_send_ns: 0,
        last_ack_ns: 0,
        error: None,
    };
    let (mut lanes, lane_of_partition) = match open_lanes(&plan) {
        Ok(l) => l,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    if let Err(e) = send_loop(
        &plan,
        &mut lanes,
        &lane_of_partition,
        &mut result,
        &sent_counter,
    ) {
        result.error = Some(e.to_string());
    }
    for lane in lanes {
        drop(lane.in_flight);
        if let Some(reader) = lane.reader {
            // Closing our side ends the reader once every answer arrived.
            if let Ok(acks) = reader.join() {
                result.acked.merge(&acks.acked);
                let _ = result.ack_ns.add(&acks.ack_ns);
                result.last_ack_ns = result.last_ack_ns.max(acks.last_ack_ns);
                if result.error.is_none() {
                    result.error = acks.error;
                }
            }
        }
    }
    result
}

fn send_loop(
    plan: &ProducerPlan,
    lanes: &mut [Lane],
    lane_of_partition: &[usize],
    result: &mut ProducerResult,
    sent_counter: &AtomicU64,
) -> Result<(), ClientError> {
    // Sleeps of tens of µs need the kernel's timer slack (50 µs by default) at its least.
    // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64);
    }
    let start = now_ns();
    result.first_send_ns = start;
    let mut value = vec![b'x'; plan.size.max(payload::HEADER_LEN)];
    let mut seq: u64 = 0;
    let mut partition = plan.id as i32 % plan.partitions.max(1);
    let ns_per_msg = plan.rate.map(|r| 1e9 / r.max(1e-3));
    loop {
        let now = now_ns();
        if plan.deadline_ns.is_some_and(|d| now >= d) || plan.messages.is_some_and(|m| seq >= m) {
            return Ok(());
        }
        // How many are due now, and when each was meant to go.
        let left = plan.messages.map_or(u64::MAX, |m| m - seq);
        let (count, intended): (u64, Box<dyn Fn(u64) -> u64>) = match ns_per_msg {
            None => (left.min(plan.batch as u64), Box::new(move |_| now)),
            Some(gap) => {
                let due = (((now - start) as f64 / gap) as u64 + 1).saturating_sub(seq);
                if due == 0 {
                    wait_until(start + (seq as f64 * gap) as u64);
                    continue;
                }
                (
                    due.min(plan.batch as u64).min(left),
                    Box::new(move |s| start + (s as f64 * gap) as u64),
                )
            }
        };
        let (batch, sent_ns) =
            payload::stamped_batch(&mut value, plan.id, seq..seq + count, intended);
        let Some(batch) = batch else {
            continue;
        };
        let lane = &mut lanes[lane_of_partition[partition as usize]];
        let request = Request::Produce {
            topic: plan.topic.clone(),
            partition,
            acks: plan.acks,
        };
        let id = lane.writer.send(request, &[&batch])?;
        if let Some(tx) = &lane.in_flight {
            tx.send(InFlight {
                id,
                first_seq: seq,
                sent_ns,
            })
            .map_err(|_| ClientError::Protocol("acknowledgement reader stopped".into()))?;
        }
        seq += count;
        result.sent = seq;
        sent_counter.fetch_add(count, Ordering::Relaxed);
        partition = (partition + 1) % plan.partitions.max(1);
    }
}

/// Sleeps most of the way, then spins briefly, so the send happens close to `at_ns`
/// without burning a core the broker needs.
fn wait_until(at_ns: u64) {
    let now = now_ns();
    if at_ns > now + SPIN_NS {
        std::thread::sleep(std::time::Duration::from_nanos(at_ns - now - SPIN_NS));
    }
    while now_ns() < at_ns {
        std::hint::spin_loop();
    }
}
