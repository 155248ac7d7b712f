//! Fetch: record batches straight from the owning shards' logs (cache or disk), with
//! Kafka's long poll: answer at once when `min_bytes` are there, else wait up to
//! `max_wait_ms` for any partition to get data. Fetch sessions (KIP-227) are declined:
//! every answer carries session id 0, which tells the client to keep sending full
//! requests; an incremental request for a session never handed out gets
//! FETCH_SESSION_ID_NOT_FOUND.
//!
//! `isolation_level` 1 (read_committed) reads up to the last stable offset, on the
//! first read and on the long poll alike (so a read_committed poll waits for data
//! below the LSO, not for an open transaction's records), and names the aborted
//! transactions in the range; read_uncommitted carries the LSO but no aborted list
//! (null, as Kafka answers).
//!
//! With `--acls` each topic needs Read; a partition of a topic the client may not read
//! answers TOPIC_AUTHORIZATION_FAILED and is not read.

use super::acls::{self, Op};
use super::{errors, Ctx};
use crate::engine::{FetchArgs, Fetched, Isolation};
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
/// Fetch's `isolation_level` for read_committed.
const READ_COMMITTED: i8 = 1;

/// What a Fetch (or ListOffsets) with this `isolation_level` may see; anything but
/// read_committed reads everything, as Kafka treats an unknown level.
pub fn isolation_of(level: i8) -> Isolation {
    if level == READ_COMMITTED {
        Isolation::Committed
    } else {
        Isolation::Uncommitted
    }
}

struct Wanted {
    topic: TopicName,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    /// The client may read the topic (`--acls`).
    readable: bool,
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
            let readable = acls::topic(ctx, Op::Read, t.topic.0.as_str());
            t.partitions.iter().map(move |p| Wanted {
                topic: t.topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u32,
                readable,
            })
        })
        .collect();
    let min_bytes = req.min_bytes.max(1) as usize;
    let max_wait = req.max_wait_ms.clamp(0, MAX_WAIT_MS) as u32;
    let isolation = isolation_of(req.isolation_level);
    let mut got = fetch_all(ctx, &wanted, 0, isolation).await;
    let bytes: usize = got.iter().flatten().map(|g| size(&g.batches)).sum();
    let failed = got.iter().any(Result::is_err);
    if bytes < min_bytes && max_wait > 0 && !failed && !wanted.is_empty() {
        wait_for_any(ctx, &wanted, max_wait, isolation).await;
        got = fetch_all(ctx, &wanted, 0, isolation).await;
    }
    response(
        &wanted,
        got,
        req.max_bytes.max(0) as usize,
        isolation,
        version,
    )
}

fn size(batches: &[Bytes]) -> usize {
    batches.iter().map(Bytes::len).sum()
}

/// Fetches every partition at once (each on its owner), in request order.
async fn fetch_all(
    ctx: &Rc<Ctx>,
    wanted: &[Wanted],
    wait_ms: u32,
    isolation: Isolation,
) -> Vec<Outcome> {
    let tasks: Vec<_> = wanted
        .iter()
        .map(|w| {
            let ctx = ctx.clone();
            let topic = w.topic.clone();
            let readable = w.readable;
            let (partition, args) = (
                w.partition,
                FetchArgs {
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    max_wait_ms: wait_ms,
                    min_bytes: 1,
                    isolation,
                    pending: false,
                },
            );
            spawn_local(async move {
                if !readable {
                    return Err(acls::topic_refusal(&ctx, Op::Read, topic.0.as_str()));
                }
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
async fn wait_for_any(ctx: &Rc<Ctx>, wanted: &[Wanted], max_wait_ms: u32, isolation: Isolation) {
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
                isolation,
                pending: false,
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

fn response(
    wanted: &[Wanted],
    got: Vec<Outcome>,
    max_bytes: usize,
    isolation: Isolation,
    version: i16,
) -> FetchResponse {
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
                let aborted = aborted_of(&g, isolation);
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
                    .with_records(Some(records))
                    .with_aborted_transactions(aborted);
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

/// The aborted transactions a read_committed reader drops records of (an empty list
/// when none); null for read_uncommitted. Fetch v4+ (all we serve) has the field.
fn aborted_of(g: &Fetched, isolation: Isolation) -> Option<Vec<AbortedTransaction>> {
    match isolation {
        Isolation::Uncommitted => None,
        Isolation::Committed => Some(
            g.aborted
                .iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(a.producer_id))
                        .with_first_offset(a.first_offset)
                })
                .collect(),
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AbortedRange;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    fn fetched() -> Fetched {
        Fetched {
            high_watermark: 10,
            last_stable_offset: 4,
            log_start_offset: 0,
            aborted: vec![AbortedRange {
                producer_id: 7,
                first_offset: 2,
            }],
            batches: Vec::new(),
        }
    }

    #[test]
    fn read_committed_answers_the_lso_and_the_aborted_list_at_every_served_version() {
        let wanted = [Wanted {
            topic: TopicName(StrBytes::from_static_str("t")),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            readable: true,
        }];
        for version in 4..=12 {
            for isolation in [Isolation::Committed, Isolation::Uncommitted] {
                let answer = response(&wanted, vec![Ok(fetched())], 1 << 20, isolation, version);
                let mut buf = BytesMut::new();
                answer.encode(&mut buf, version).expect("encodes");
                let back = FetchResponse::decode(&mut buf.freeze(), version).expect("decodes");
                let p = &back.responses[0].partitions[0];
                assert_eq!((p.high_watermark, p.last_stable_offset), (10, 4));
                let aborted: Option<Vec<(i64, i64)>> = p.aborted_transactions.as_ref().map(|a| {
                    a.iter()
                        .map(|t| (t.producer_id.0, t.first_offset))
                        .collect()
                });
                let expected = (isolation == Isolation::Committed).then(|| vec![(7, 2)]);
                assert_eq!(aborted, expected, "v{version} {isolation:?}");
            }
        }
        assert_eq!(isolation_of(1), Isolation::Committed);
        assert_eq!(isolation_of(0), Isolation::Uncommitted);
    }
}
