//! The `/metrics` page: every shard's counters and rows in the Prometheus text format
//! (version 0.0.4), written by `prometheus-client`'s encoder from a collector over the
//! `Metrics` (no copies into the crate's own metric types).
//!
//! Request and error series appear at their first event (their label tables hold
//! hundreds of combinations per shard, mostly never used); everything else is always
//! present.

use super::{
    kafka_api_name, objects::Snapshot, sns_action_name, sqs_action_name, Histogram, Metrics,
    ShardMetrics, AMQP_METHODS, ERROR_CODES, LATENCY_BUCKETS, NATIVE_APIS, PROTOCOLS,
    SNS_DELIVERY_OUTCOMES, SNS_DELIVERY_PROTOCOLS,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt::Error;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole page. Reads `/proc/self` (memory-backed, it never waits on a disk).
pub fn page(metrics: &Arc<Metrics>) -> Result<String, Error> {
    let mut registry = Registry::with_prefix("peregrine");
    registry.register_collector(Box::new(Page {
        metrics: metrics.clone(),
        snapshots: metrics
            .shards
            .iter()
            .map(|s| match s.snapshot.lock() {
                Ok(slot) => slot.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            })
            .collect(),
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Page {
    metrics: Arc<Metrics>,
    snapshots: Vec<Arc<Snapshot>>,
}

type Labels<'a> = Vec<(&'static str, std::borrow::Cow<'a, str>)>;

/// One metric family: its descriptor, then one sample per label set.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (Labels<'a>, u64)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?,
        }
    }
    Ok(())
}

fn shard_label(shard: usize) -> Labels<'static> {
    vec![("shard", shard.to_string().into())]
}

fn with<'a>(
    mut labels: Labels<'a>,
    key: &'static str,
    value: impl Into<std::borrow::Cow<'a, str>>,
) -> Labels<'a> {
    labels.push((key, value.into()));
    labels
}

impl Collector for Page {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        self.shard_counters(&mut encoder)?;
        self.histograms(&mut encoder)?;
        self.partitions(&mut encoder)?;
        self.groups(&mut encoder)?;
        self.queues(&mut encoder)?;
        process(&mut encoder)?;
        family(
            &mut encoder,
            "up",
            "1 once every shard has started (what /readyz answers).",
            MetricType::Gauge,
            std::iter::once((Vec::new(), u64::from(self.metrics.is_ready()))),
        )
    }
}

impl Page {
    fn shards(&self) -> impl Iterator<Item = (usize, &Arc<ShardMetrics>)> {
        self.metrics.shards.iter().enumerate()
    }

    fn shard_counters(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
            c.load(Ordering::Relaxed)
        }
        let requests = self.shards().flat_map(|(i, m)| {
            let native = m.requests_native.iter().enumerate();
            let native = native.filter(|(_, c)| load(c) > 0).map(move |(api, c)| {
                let l = with(
                    with(shard_label(i), "protocol", "native"),
                    "api",
                    NATIVE_APIS[api],
                );
                (l, load(c))
            });
            let kafka = m
                .requests_kafka
                .iter()
                .enumerate()
                .filter(|(_, c)| load(c) > 0);
            let kafka = kafka.map(move |(api, c)| {
                let l = with(
                    with(shard_label(i), "protocol", "kafka"),
                    "api",
                    kafka_api_name(api),
                );
                (l, load(c))
            });
            let amqp = m.requests_amqp.iter().enumerate();
            let amqp = amqp.filter(|(_, c)| load(c) > 0).map(move |(slot, c)| {
                let l = with(
                    with(shard_label(i), "protocol", "amqp"),
                    "api",
                    AMQP_METHODS[slot].2,
                );
                (l, load(c))
            });
            let sqs = m.requests_sqs.iter().enumerate();
            let sqs = sqs.filter(|(_, c)| load(c) > 0).map(move |(slot, c)| {
                let l = with(
                    with(shard_label(i), "protocol", "http"),
                    "api",
                    sqs_action_name(slot),
                );
                (l, load(c))
            });
            let sns = m.requests_sns.iter().enumerate();
            let sns = sns.filter(|(_, c)| load(c) > 0).map(move |(slot, c)| {
                let l = with(
                    with(shard_label(i), "protocol", "http"),
                    "api",
                    sns_action_name(slot),
                );
                (l, load(c))
            });
            native.chain(kafka).chain(amqp).chain(sqs).chain(sns)
        });
        let help = "Requests decoded from clients, by shard, protocol and API.";
        family(encoder, "requests", help, MetricType::Counter, requests)?;
        let errors = self.shards().flat_map(|(i, m)| {
            m.errors.iter().enumerate().flat_map(move |(p, codes)| {
                let codes = codes.iter().enumerate().filter(|(_, c)| load(c) > 0);
                codes.map(move |(code, c)| {
                    let l = with(shard_label(i), "protocol", PROTOCOLS[p]);
                    (with(l, "code", ERROR_CODES[code]), load(c))
                })
            })
        });
        let help = "Error answers sent to clients, by shard, protocol and engine error code.";
        family(encoder, "errors", help, MetricType::Counter, errors)?;
        let connections = self.shards().flat_map(|(i, m)| {
            m.connections.iter().enumerate().map(move |(p, c)| {
                let open = c.load(Ordering::Relaxed).max(0) as u64;
                (with(shard_label(i), "protocol", PROTOCOLS[p]), open)
            })
        });
        let help = "Open client connections, by shard and protocol.";
        family(encoder, "connections", help, MetricType::Gauge, connections)?;
        let calls = self
            .shards()
            .map(|(i, m)| (shard_label(i), load(&m.cross_core_calls)));
        let help = "Requests a shard forwarded to another shard and waited for.";
        family(
            encoder,
            "cross_core_calls",
            help,
            MetricType::Counter,
            calls,
        )?;
        let sns = self.shards().flat_map(|(i, m)| {
            m.sns_deliveries
                .iter()
                .enumerate()
                .flat_map(move |(p, outcomes)| {
                    outcomes.iter().enumerate().map(move |(o, c)| {
                        let l = with(shard_label(i), "protocol", SNS_DELIVERY_PROTOCOLS[p]);
                        (with(l, "outcome", SNS_DELIVERY_OUTCOMES[o]), load(c))
                    })
                })
        });
        let help = "SNS deliveries by shard, target protocol and outcome (delivered; \
                    retried: an attempt failed and is tried again; failed: given up; \
                    dead_lettered: a failed one stored in its dead-letter queue).";
        family(encoder, "sns_deliveries", help, MetricType::Counter, sns)?;
        let storage = |f: fn(&super::StorageCounters) -> u64| {
            self.shards()
                .map(move |(i, m)| (shard_label(i), m.storage.get().map_or(0, f)))
        };
        let help = "Reads of written batches served from the shard's batch cache.";
        family(
            encoder,
            "cache_hits",
            help,
            MetricType::Counter,
            storage(|s| s.cache.hits()),
        )?;
        let help = "Reads of written batches the batch cache did not hold (read from disk).";
        let misses = storage(|s| s.cache.misses());
        family(encoder, "cache_misses", help, MetricType::Counter, misses)?;
        let help = "fdatasync calls on partition and queue journal files.";
        family(
            encoder,
            "fdatasyncs",
            help,
            MetricType::Counter,
            storage(|s| s.sync.count()),
        )
    }

    fn histograms(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let help = "fdatasync latency of partition and queue journal files, in seconds.";
        let mut metric =
            encoder.encode_descriptor("fdatasync_seconds", help, None, MetricType::Histogram)?;
        for (i, m) in self.shards() {
            let (count, sum_us, buckets) = m
                .storage
                .get()
                .map(|s| (s.sync.count(), s.sync.latency_us_sum(), s.sync.buckets()))
                .unwrap_or((0, 0, [0; LATENCY_BUCKETS]));
            encode_histogram(&mut metric, i, count, sum_us, &buckets)?;
        }
        let help = "From a produce reaching its partition's shard to its answer (acks \
                    leader or durable), in seconds.";
        let mut metric =
            encoder.encode_descriptor("produce_ack_seconds", help, None, MetricType::Histogram)?;
        for (i, m) in self.shards() {
            let (count, sum_us, buckets) = Histogram::read(&m.produce_ack);
            encode_histogram(&mut metric, i, count, sum_us, &buckets)?;
        }
        Ok(())
    }

    fn partitions(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        type Field = fn(&super::objects::PartitionRow) -> u64;
        let fields: [(&str, &str, MetricType, Field); 7] = [
            (
                "partition_messages_in",
                "Messages appended to the partition since its shard opened it.",
                MetricType::Counter,
                |r| r.messages_in,
            ),
            (
                "partition_bytes_in",
                "Record-batch bytes appended to the partition since its shard opened it.",
                MetricType::Counter,
                |r| r.bytes_in,
            ),
            (
                "partition_messages_out",
                "Messages fetched from the partition since its shard opened it.",
                MetricType::Counter,
                |r| r.messages_out,
            ),
            (
                "partition_bytes_out",
                "Record-batch bytes fetched from the partition since its shard opened it.",
                MetricType::Counter,
                |r| r.bytes_out,
            ),
            (
                "partition_start_offset",
                "First offset still in the partition's log.",
                MetricType::Gauge,
                |r| r.start_offset.max(0) as u64,
            ),
            (
                "partition_end_offset",
                "Next offset the partition will assign (high watermark).",
                MetricType::Gauge,
                |r| r.end_offset.max(0) as u64,
            ),
            (
                "partition_size_bytes",
                "Bytes of the partition's segments.",
                MetricType::Gauge,
                |r| r.size_bytes,
            ),
        ];
        for (name, help, kind, field) in fields {
            let rows = self.snapshots.iter().enumerate().flat_map(|(i, s)| {
                s.partitions.iter().map(move |r| {
                    let l = with(shard_label(i), "topic", r.topic.as_str());
                    (with(l, "partition", r.partition.to_string()), field(r))
                })
            });
            family(encoder, name, help, kind, rows)?;
        }
        let left_out = self.snapshots.iter().enumerate();
        let left_out = left_out.map(|(i, s)| (shard_label(i), s.rows_left_out));
        let help =
            "Partition, group and queue rows a shard left out of this page (over its limit).";
        family(encoder, "rows_left_out", help, MetricType::Gauge, left_out)
    }

    fn groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let ends: HashMap<(&str, i32), i64> = self
            .snapshots
            .iter()
            .flat_map(|s| s.partitions.iter())
            .map(|r| ((r.topic.as_str(), r.partition), r.end_offset))
            .collect();
        let rows = || {
            self.snapshots
                .iter()
                .flat_map(|s| s.group_offsets.iter())
                .map(|r| {
                    let l = vec![("group", r.group.as_str().into())];
                    let l = with(
                        with(l, "topic", r.topic.as_str()),
                        "partition",
                        r.partition.to_string(),
                    );
                    (l, r)
                })
        };
        let help = "Offset committed by the consumer group for the partition.";
        let committed = rows().map(|(l, r)| (l, r.committed.max(0) as u64));
        family(
            encoder,
            "group_committed_offset",
            help,
            MetricType::Gauge,
            committed,
        )?;
        let help = "Messages between the group's committed offset and the partition's end.";
        let lag = rows().filter_map(|(l, r)| {
            let end = ends.get(&(r.topic.as_str(), r.partition))?;
            Some((l, (end - r.committed).max(0) as u64))
        });
        family(encoder, "group_lag", help, MetricType::Gauge, lag)
    }

    fn queues(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        type Field = fn(&super::objects::QueueRow) -> u64;
        let fields: [(&str, &str, MetricType, Field); 7] = [
            ("queue_ready", "Messages ready for delivery.", MetricType::Gauge, |r| r.ready),
            ("queue_in_flight", "Messages delivered and not yet settled (leased).", MetricType::Gauge, |r| r.in_flight),
            ("queue_delayed", "Messages waiting for their delivery time.", MetricType::Gauge, |r| r.delayed),
            ("queue_published", "Messages stored by publishes since the queue's shard opened it.", MetricType::Counter, |r| r.published),
            ("queue_acked", "Messages settled by acks (and auto-ack receives) since the queue's shard opened it.", MetricType::Counter, |r| r.acked),
            ("queue_redelivered", "Deliveries of messages delivered before, since the queue's shard opened it.", MetricType::Counter, |r| r.redelivered),
            ("queue_dead_lettered", "Messages moved to the queue's dead-letter target since its shard opened it.", MetricType::Counter, |r| r.dead_lettered),
        ];
        for (name, help, kind, field) in fields {
            let rows = self.snapshots.iter().enumerate().flat_map(|(i, s)| {
                s.queues
                    .iter()
                    .map(move |r| (with(shard_label(i), "queue", r.queue.as_str()), field(r)))
            });
            family(encoder, name, help, kind, rows)?;
        }
        Ok(())
    }
}

/// A histogram with power-of-two µs buckets, as seconds.
fn encode_histogram(
    metric: &mut prometheus_client::encoding::MetricEncoder,
    shard: usize,
    count: u64,
    sum_us: u64,
    buckets: &[u64; LATENCY_BUCKETS],
) -> Result<(), Error> {
    // The encoder writes `le` bounds and makes the counts cumulative itself; the last
    // bucket is +Inf.
    let bounds: Vec<(f64, u64)> = buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let le = if i + 1 == LATENCY_BUCKETS {
                f64::INFINITY
            } else {
                (1u64 << i) as f64 / 1e6
            };
            (le, *n)
        })
        .collect();
    let labels = shard_label(shard);
    metric
        .encode_family(&labels)?
        .encode_histogram::<NoLabelSet>(sum_us as f64 / 1e6, count, &bounds, None)
}

/// Resident memory and open files of this process, from `/proc/self`.
fn process(encoder: &mut DescriptorEncoder) -> Result<(), Error> {
    // SAFETY: sysconf reads a constant of the system.
    let page_bytes = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_bytes);
    let open_files = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let help = "Resident memory of the broker process, in bytes.";
    family(
        encoder,
        "process_resident_memory_bytes",
        help,
        MetricType::Gauge,
        std::iter::once((Vec::new(), rss)),
    )?;
    let help = "Open file descriptors of the broker process.";
    family(
        encoder,
        "process_open_fds",
        help,
        MetricType::Gauge,
        std::iter::once((Vec::new(), open_files)),
    )
}
