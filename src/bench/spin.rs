//! A busy-polling latency client (`--spin`): one thread sends at the fixed rate, reads
//! the acknowledgements and consumes, and never sleeps, so no thread wake-up sits on the
//! measured path. Meant for a core of its own (`--cores`), beside a broker that polls
//! too (`--poll-us`), as a trading client would run.

use super::consumer::{ConsumerResult, Progress};
use super::delivery::Ledger;
use super::payload::{self, now_ns};
use super::producer::{record_acks, ProducerPlan, ProducerResult};
use super::report::histogram;
use crate::client::connection::{FrameWriter, PollReader};
use crate::client::records::visit_batches;
use crate::client::{check, Client, ClientError};
use crate::native::messages::{Acks, OffsetSpec, Request, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest one fetch waits on the broker before it answers empty.
const FETCH_WAIT_MS: u32 = 50;
const FETCH_MAX_BYTES: u32 = 1 << 20;

/// One batch waiting for its acknowledgement.
struct InFlight {
    first_seq: u64,
    sent_ns: Vec<u64>,
}

struct Lanes {
    produce: FrameWriter,
    acks: PollReader,
    fetch: FrameWriter,
    answers: PollReader,
}

fn open(plan: &ProducerPlan) -> Result<(Lanes, i64), ClientError> {
    let mut client =
        Client::connect_as(&plan.bootstrap, plan.tls.clone(), plan.credentials.clone())?;
    let owner = match plan.shard_aware {
        true => client.owner_port(&plan.topic, 0)?,
        false => None,
    };
    let connect = |client: &Client| match owner {
        Some((_, port)) => client.connect_port(port),
        None => client.connect_bootstrap(),
    };
    let start = client.list_offset(&plan.topic, 0, OffsetSpec::Earliest)?;
    let (produce, acks) = connect(&client)?.into_polling()?;
    let (fetch, answers) = connect(&client)?.into_polling()?;
    let lanes = Lanes {
        produce,
        acks,
        fetch,
        answers,
    };
    Ok((lanes, start))
}

/// Runs the whole latency workload of one producer and one consumer on partition 0,
/// returning both sides' results as the threaded bench would.
pub fn run(
    plan: ProducerPlan,
    producers: usize,
    drain: Duration,
    progress: &Progress,
    sent_counter: &AtomicU64,
) -> (ProducerResult, ConsumerResult) {
    let mut p = ProducerResult {
        sent: 0,
        acked: Default::default(),
        ack_ns: histogram(),
        first_send_ns: 0,
        last_ack_ns: 0,
        error: None,
    };
    let mut c = ConsumerResult {
        ledger: Ledger::new(producers),
        e2e_ns: histogram(),
        first_receive_ns: 0,
        last_receive_ns: 0,
        error: None,
    };
    let outcome = open(&plan).and_then(|(lanes, start)| {
        spin(
            &plan,
            lanes,
            start,
            drain,
            &mut p,
            &mut c,
            progress,
            sent_counter,
        )
    });
    if let Err(e) = outcome {
        c.error = Some(e.to_string());
    }
    (p, c)
}

#[allow(clippy::too_many_arguments)]
fn spin(
    plan: &ProducerPlan,
    mut lanes: Lanes,
    mut offset: i64,
    drain: Duration,
    p: &mut ProducerResult,
    c: &mut ConsumerResult,
    progress: &Progress,
    sent_counter: &AtomicU64,
) -> Result<(), ClientError> {
    let fetch = |offset| Request::Fetch {
        topic: plan.topic.clone(),
        partition: 0,
        offset,
        max_bytes: FETCH_MAX_BYTES,
        max_wait_ms: FETCH_WAIT_MS,
        min_bytes: 1,
        isolation: Default::default(),
    };
    lanes.fetch.send(fetch(offset), &[])?;
    let gap = 1e9 / plan.rate.unwrap_or(10_000.0).max(1e-3);
    let total = plan.messages.unwrap_or(u64::MAX);
    let mut value = vec![b'x'; plan.size.max(payload::HEADER_LEN)];
    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    let start = now_ns();
    p.first_send_ns = start;
    let mut seq = 0u64;
    let mut last_progress = start;
    loop {
        let now = now_ns();
        let sending = seq < total && plan.deadline_ns.is_none_or(|d| now < d);
        let due = ((now - start) as f64 / gap) as u64 + 1;
        if sending && due > seq {
            let count = (due - seq).min(plan.batch as u64).min(total - seq);
            let intended = |s: u64| start + (s as f64 * gap) as u64;
            let (batch, sent_ns) =
                payload::stamped_batch(&mut value, plan.id, seq..seq + count, intended);
            if let Some(batch) = batch {
                let request = Request::Produce {
                    topic: plan.topic.clone(),
                    partition: 0,
                    acks: plan.acks,
                };
                let id = lanes.produce.send(request, &[&batch])?;
                if plan.acks != Acks::None {
                    let first_seq = seq;
                    in_flight.insert(id, InFlight { first_seq, sent_ns });
                }
            }
            seq += count;
            p.sent = seq;
            sent_counter.fetch_add(count, Ordering::Relaxed);
        }
        while let Some((id, response, _)) = lanes.acks.try_recv()? {
            let batch = in_flight
                .remove(&id)
                .ok_or_else(|| ClientError::Protocol(format!("answer for unknown request {id}")))?;
            match check(response) {
                Ok(Response::Produced { .. }) => {
                    let now = now_ns();
                    p.last_ack_ns = now;
                    record_acks(
                        &mut p.acked,
                        &mut p.ack_ns,
                        batch.first_seq,
                        &batch.sent_ns,
                        now,
                    );
                }
                Ok(other) => p.error = Some(format!("unexpected answer to produce: {other:?}")),
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        if let Some((_, response, payload)) = lanes.answers.try_recv()? {
            check(response)?;
            let now = now_ns();
            let (e2e, ledger, mut last, mut count) = (&mut c.e2e_ns, &mut c.ledger, None, 0u64);
            visit_batches(0, &payload, offset, &mut |r| {
                last = Some(r.offset);
                if let Some(stamp) = r.value.and_then(payload::read) {
                    let _ = e2e.record(now.saturating_sub(stamp.sent_ns).max(1));
                    ledger.receive(stamp.producer, stamp.seq);
                    count += 1;
                }
            })?;
            if let Some(last) = last {
                offset = last + 1;
            }
            lanes.fetch.send(fetch(offset), &[])?;
            if count > 0 {
                if c.first_receive_ns == 0 {
                    c.first_receive_ns = now;
                }
                c.last_receive_ns = now;
                last_progress = now;
                progress.received.fetch_add(count, Ordering::Relaxed);
            }
        }
        if !sending {
            // Done once everything that should arrive did, or nothing moved for a while.
            let expected = match plan.acks {
                Acks::None => seq,
                _ => p.acked.len(),
            };
            let settled = in_flight.is_empty() && c.ledger.received_total() >= expected;
            let stalled =
                now_ns().saturating_sub(last_progress.max(p.last_ack_ns)) > drain.as_nanos() as u64;
            if settled || stalled {
                return Ok(());
            }
        }
        // No PAUSE (spin_loop) here: on a VM a PAUSE loop can make the hypervisor
        // deschedule the vCPU (pause-loop exiting).
    }
}
