//! Fetch: record batches straight from the owning shards' logs (cache or disk), with
//! Kafka's long poll: answer at once when `min_bytes` are there, else wait up to
//! `max_wait_ms` for any partition to get data. Fetch sessions (KIP-227) are declined:
//! every answer carries session id 0, which tells the client to keep sending full
//! requests; an incremental request for a session never handed out gets
//! FETCH_SESSION_ID_NOT_FOUND.

use super::{errors, Ctx};
use crate::engine::{FetchArgs, Fetched};
use crate::runtime::spawn_local;
use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use std::rc::Rc;

/// Longest long poll, whatever the client asks.
const MAX_WAIT_MS: i32 = 30_000;

struct Wanted {
    topic: TopicName,
    partition: i32,
    offset: i64,
    max_bytes: u32,
}

type Outcome = Result<Fetched, (i16, String)>;

pub async fn fetch(ctx: &Rc<Ctx>, req: FetchRequest, version: i16) -> FetchResponse {
    if version >= 7 && req.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wanted: Vec<Wanted> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Wanted {
                topic: t.topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u32,
            })
        })
        .collect();
    let min_bytes = req.min_bytes.max(1) as usize;
    let max_wait = req.max_wait_ms.clamp(0, MAX_WAIT_MS) as u32;
    let mut got = fetch_all(ctx, &wanted, 0).await;
    let bytes: usize = got.iter().flatten().map(|g| size(&g.batches)).sum();
    let failed = got.iter().any(Result::is_err);
    if bytes < min_bytes && max_wait > 0 && !failed && !wanted.is_empty() {
        wait_for_any(ctx, &wanted, max_wait).await;
        got = fetch_all(ctx, &wanted, 0).await;
    }
    response(&wanted, got, req.max_bytes.max(0) as usize, version)
}

fn size(batches: &[Bytes]) -> usize {
    batches.iter().map(Bytes::len).sum()
}

/// Fetches every partition at once (each on its owner), in request order.
async fn fetch_all(ctx: &Rc<Ctx>, wanted: &[Wanted], wait_ms: u32) -> Vec<Outcome> {
    let tasks: Vec<_> = wanted
        .iter()
        .map(|w| {
            let ctx = ctx.clone();
            let topic = w.topic.clone();
            let (partition, args) = (
                w.partition,
                FetchArgs {
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    max_wait_ms: wait_ms,
                    min_bytes: 1,
                    isolation: Default::default(),
                },
            );
            spawn_local(async move {
                ctx.engine
                    .fetch(topic.0.as_str(), partition, args)
                    .await
                    .map_err(errors::of)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await);
    }
    out
}

/// Long-polls every partition and returns as soon as one has data (or all waited
/// `max_wait_ms`). The polls still running finish on their own within that time.
async fn wait_for_any(ctx: &Rc<Ctx>, wanted: &[Wanted], max_wait_ms: u32) {
    let (tx, rx) = local_channel::new_unbounded::<bool>();
    let tx = Rc::new(tx);
    for w in wanted {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        let topic = w.topic.clone();
        let (partition, args) = (
            w.partition,
            FetchArgs {
                offset: w.offset,
                max_bytes: 1,
                max_wait_ms,
                min_bytes: 1,
                isolation: Default::default(),
            },
        );
        spawn_local(async move {
            let fetched = ctx.engine.fetch(topic.0.as_str(), partition, args).await;
            let data = matches!(fetched, Ok(f) if !f.batches.is_empty());
            let _ = tx.try_send(data);
        })
        .detach();
    }
    drop(tx);
    for _ in 0..wanted.len() {
        match rx.recv().await {
            Some(true) | None => return,
            Some(false) => {}
        }
    }
}

fn response(wanted: &[Wanted], got: Vec<Outcome>, max_bytes: usize, version: i16) -> FetchResponse {
    let mut budget = max_bytes;
    let mut first = true;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (w, outcome) in wanted.iter().zip(got) {
        let mut data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1);
        match outcome {
            Ok(g) => {
                let len = size(&g.batches);
                // Past the response limit, a partition answers empty (the client asks
                // again), except the first with data, which Kafka always returns whole.
                let records = if len > budget && !first {
                    Bytes::new()
                } else {
                    budget = budget.saturating_sub(len);
                    first &= len == 0;
                    join(g.batches)
                };
                data = data
                    .with_high_watermark(g.high_watermark)
                    .with_last_stable_offset(g.last_stable_offset)
                    .with_records(Some(records));
                if version >= 4 && !g.aborted.is_empty() {
                    let aborted = g
                        .aborted
                        .iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect();
                    data = data.with_aborted_transactions(Some(aborted));
                }
                if version >= 5 {
                    data = data.with_log_start_offset(g.log_start_offset);
                }
            }
            Err((code, _)) => data = data.with_error_code(code).with_records(Some(Bytes::new())),
        }
        match topics.last_mut() {
            Some(t) if t.topic == w.topic => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic.clone())
                    .with_partitions(vec![data]),
            ),
        }
    }
    FetchResponse::default().with_responses(topics)
}

/// One buffer for the batches of a partition: the codec takes a single `Bytes`.
fn join(batches: Vec<Bytes>) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(size(&batches));
            for b in &batches {
                out.extend_from_slice(b);
            }
            out.freeze()
        }
    }
}
