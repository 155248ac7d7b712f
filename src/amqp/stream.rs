//! RabbitMQ streams (`x-queue-type: stream`) as the engine's topics: a stream is a
//! one-partition topic, so what an exchange routes into it (or a Kafka producer writes)
//! is readable by AMQP consumers from any offset (`x-stream-offset` in
//! `basic.consume`: `first`, `last`, `next`, an offset, or a timestamp), again and again.
//!
//! A stream consumer reads with long-polling fetches and delivers each record as a
//! message (its headers as properties, `x-stream-offset` added); acks only return
//! credit: it holds at most its prefetch (`consume::UNLIMITED_PREFETCH` when none) of
//! deliveries unacked.

use super::channel::Channel;
use super::connection::Conn;
use super::consume::{self, Consumer, Lease, Unacked};
use super::declare::{int, text};
use super::errors::{self, AmqpError};
use super::frames;
use super::props;
use crate::engine::{EngineError, FetchArgs, OffsetSpec, TopicConfig};
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use peregrine_shards::{batch, compression, records};
use std::cell::Cell;
use std::rc::Rc;

/// Bytes one fetch of a stream consumer asks for.
const FETCH_BYTES: u32 = 1 << 20;
/// How long one fetch waits for new records before asking again.
const FETCH_WAIT_MS: u32 = 20_000;
/// Largest decompressed batch a stream consumer reads.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// One outstanding stream delivery: dropping it (the ack) gives its consumer a credit.
pub struct Credit(Rc<Cell<u32>>);

impl Drop for Credit {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Whether `args` ask for a stream.
pub fn is_stream(args: &FieldTable) -> bool {
    let kind = args.inner().get("x-queue-type").and_then(text);
    kind.as_deref() == Some("stream")
}

/// Declares stream `name` as a one-partition topic (idempotent).
pub async fn declare(conn: &Conn, name: &str, args: &FieldTable) -> Result<(), AmqpError> {
    if conn.engine.topic_exists(name) {
        return Ok(());
    }
    let mut config = TopicConfig {
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT,
        max_message_bytes: None,
    };
    if let Some(bytes) = args.inner().get("x-max-length-bytes").and_then(int) {
        config.retention_bytes = u64::try_from(bytes).ok();
    }
    if let Some(age) = args.inner().get("x-max-age") {
        let ms = text(age).as_deref().and_then(age_ms).ok_or_else(|| {
            AmqpError::new(
                errors::PRECONDITION_FAILED,
                "invalid arg 'x-max-age': expected a number and a unit of Y, M, D, h, m or s",
            )
        })?;
        config.retention_ms = i64::try_from(ms).ok();
    }
    match conn.engine.create_topic(name, config).await {
        Ok(()) | Err(EngineError::TopicExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Where a consumer starts, from `x-stream-offset`.
async fn start_offset(conn: &Conn, stream: &str, args: &FieldTable) -> Result<i64, AmqpError> {
    let spec = match args.inner().get("x-stream-offset") {
        None => OffsetSpec::Latest,
        Some(AMQPValue::Timestamp(secs)) => OffsetSpec::Timestamp(
            i64::try_from(*secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        ),
        Some(v) => match (int(v), v) {
            (Some(offset), _) => return Ok(offset.max(0)),
            (None, AMQPValue::LongString(s)) => match s.as_bytes() {
                b"first" => OffsetSpec::Earliest,
                b"next" => OffsetSpec::Latest,
                b"last" => {
                    // The last record (RabbitMQ: the last chunk), or the start if empty.
                    let end = conn
                        .engine
                        .list_offsets(stream, 0, OffsetSpec::Latest)
                        .await?;
                    let start = conn
                        .engine
                        .list_offsets(stream, 0, OffsetSpec::Earliest)
                        .await?;
                    return Ok((end - 1).max(start));
                }
                // An interval ("1h", "30m"): from that long ago.
                interval => {
                    let ago = std::str::from_utf8(interval).ok().and_then(age_ms);
                    let ago = ago.ok_or_else(bad_offset)?;
                    let ago = i64::try_from(ago).unwrap_or(i64::MAX);
                    OffsetSpec::Timestamp(crate::time::now_ms().saturating_sub(ago))
                }
            },
            _ => return Err(bad_offset()),
        },
    };
    Ok(conn.engine.list_offsets(stream, 0, spec).await?)
}

/// RabbitMQ's stream ages and intervals: a number and a unit, `Y` (365 days), `M` (30
/// days), `D`, `h`, `m` or `s`; in ms.
fn age_ms(s: &str) -> Option<u64> {
    const SECOND: u64 = 1000;
    let unit = match s.chars().last()? {
        'Y' => 365 * 24 * 3600 * SECOND,
        'M' => 30 * 24 * 3600 * SECOND,
        'D' => 24 * 3600 * SECOND,
        'h' => 3600 * SECOND,
        'm' => 60 * SECOND,
        's' => SECOND,
        _ => return None,
    };
    let n: u64 = s[..s.len() - 1].parse().ok()?;
    n.checked_mul(unit)
}

fn bad_offset() -> AmqpError {
    AmqpError::new(
        errors::PRECONDITION_FAILED,
        "x-stream-offset must be first, last, next, an offset, a timestamp or an interval \
         such as 1h",
    )
}

pub async fn consume(
    conn: &Rc<Conn>,
    ch: &Rc<Channel>,
    c: basic::Consume,
    tag: String,
) -> Result<(), AmqpError> {
    let stream = c.queue.as_str().to_string();
    let offset = start_offset(conn, &stream, &c.arguments).await?;
    let prefetch = consume::prefetch(ch);
    consume::consume_ok(conn, ch, &tag, c.nowait);
    let reader = StreamReader {
        conn: conn.clone(),
        ch: ch.clone(),
        tag: tag.clone(),
        stream: stream.into(),
        no_ack: c.no_ack,
        prefetch,
        outstanding: Rc::new(Cell::new(0)),
    };
    let task = crate::runtime::spawn_local(reader.run(offset));
    ch.consumers.borrow_mut().insert(tag, Consumer::new(task));
    Ok(())
}

struct StreamReader {
    conn: Rc<Conn>,
    ch: Rc<Channel>,
    tag: String,
    stream: Rc<str>,
    no_ack: bool,
    prefetch: u32,
    outstanding: Rc<Cell<u32>>,
}

impl StreamReader {
    async fn run(self, mut offset: i64) {
        loop {
            // Fetches that find records ready and output with room never wait.
            crate::runtime::yield_if_needed().await;
            self.credit().await;
            self.conn.out.room().await;
            let args = FetchArgs {
                offset,
                max_bytes: FETCH_BYTES,
                max_wait_ms: FETCH_WAIT_MS,
                min_bytes: 1,
                isolation: Default::default(),
                pending: false,
            };
            let fetched = match self.conn.engine.fetch(&self.stream, 0, args).await {
                Ok(f) => f,
                Err(EngineError::OffsetOutOfRange(_)) => {
                    // Retention moved the start past us: go on from the new start.
                    match self
                        .conn
                        .engine
                        .list_offsets(&self.stream, 0, OffsetSpec::Earliest)
                        .await
                    {
                        Ok(start) if start > offset => {
                            offset = start;
                            continue;
                        }
                        _ => {
                            crate::runtime::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    consume::consumer_ended(&self.conn, &self.ch, &self.tag, &e);
                    return;
                }
            };
            if self.ch.is_closing() {
                return;
            }
            offset = self.deliver(offset, &fetched.batches);
        }
    }

    async fn credit(&self) {
        let ch = &self.ch;
        let open = || (self.no_ack || self.outstanding.get() < self.prefetch) && ch.has_credit();
        crate::runtime::until(&ch.credit, open).await;
    }

    /// Delivers the records from `offset` on while credit lasts; the next offset to read.
    fn deliver(&self, mut offset: i64, batches: &[bytes::Bytes]) -> i64 {
        let (ch, conn) = (&self.ch, &self.conn);
        let frame_max = conn.frame_max.get();
        for chunk in batches {
            let Ok(split) = batch::split(chunk) else {
                continue;
            };
            for (range, header) in split {
                if header.last_offset() < offset {
                    continue;
                }
                if header.is_control() {
                    offset = header.last_offset() + 1;
                    continue;
                }
                let Ok(plain) =
                    compression::uncompressed_batch(&chunk[range], DECOMPRESSED_BYTES_MAX)
                else {
                    offset = header.last_offset() + 1;
                    continue;
                };
                let Ok(found) = records::records(&plain) else {
                    offset = header.last_offset() + 1;
                    continue;
                };
                for record in found.flatten() {
                    if record.offset < offset {
                        continue;
                    }
                    if !self.no_ack && self.outstanding.get() >= self.prefetch {
                        return offset;
                    }
                    let headers: Vec<(String, String)> = record
                        .headers()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                String::from_utf8_lossy(v.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect();
                    let mut properties = props::from_headers(&headers, 0);
                    let mut table = properties.headers().clone().unwrap_or_default();
                    table.insert(
                        "x-stream-offset".into(),
                        AMQPValue::LongLongInt(record.offset),
                    );
                    properties = properties.with_headers(table);
                    let (exchange, routing_key) = consume::routing(&headers, &self.stream);
                    let tag = ch.next_tag.get();
                    ch.next_tag.set(tag + 1);
                    if !self.no_ack {
                        self.outstanding.set(self.outstanding.get() + 1);
                        let credit = Credit(self.outstanding.clone());
                        ch.unacked.borrow_mut().insert(
                            tag,
                            Unacked {
                                queue: self.stream.clone(),
                                lease: Lease::Stream { _credit: credit },
                            },
                        );
                    }
                    let deliver = basic::Deliver {
                        consumer_tag: self.tag.as_str().into(),
                        delivery_tag: tag,
                        redelivered: false,
                        exchange: exchange.into(),
                        routing_key: routing_key.into(),
                    };
                    let body = record.value.unwrap_or_default();
                    conn.out.push(|b| {
                        frames::encode_method(
                            b,
                            ch.id,
                            AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)),
                        );
                        frames::encode_content(b, ch.id, properties, body, frame_max);
                    });
                    offset = record.offset + 1;
                }
                offset = offset.max(header.last_offset() + 1);
            }
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::age_ms;

    #[test]
    fn ages_and_intervals_read_as_rabbitmq_writes_them() {
        assert_eq!(age_ms("7D"), Some(7 * 24 * 3600 * 1000));
        assert_eq!(age_ms("1h"), Some(3600 * 1000));
        assert_eq!(age_ms("30m"), Some(30 * 60 * 1000));
        assert_eq!(age_ms("10s"), Some(10_000));
        assert_eq!(age_ms("1Y"), Some(365 * 24 * 3600 * 1000));
        for bad in ["", "h", "1x", "-1h", "1.5h", "99999999999999999999D"] {
            assert_eq!(age_ms(bad), None, "{bad}");
        }
    }
}
