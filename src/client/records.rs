//! Building and reading record batches on the client side with
//! `peregrine_shards::records` (no allocation per record); compressed batches (from
//! Kafka producers) are first decompressed whole, up to
//! `compression::DECOMPRESSED_BYTES_MAX_DEFAULT` bytes of records per batch.

use super::{ClientError, Fetched};
use crate::native::messages::{AbortedTxn, Isolation};
use bytes::{Bytes, BytesMut};
use peregrine_shards::batch::{BatchError, BatchHeader};
use peregrine_shards::compression::{self, DECOMPRESSED_BYTES_MAX_DEFAULT};
use peregrine_shards::records::{self, BatchBuilder};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub timestamp_ms: i64,
}

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Encodes `records` as one uncompressed v2 batch (base offset 0: the broker sets it).
pub fn encode_batch(records: &[OutRecord]) -> Result<BytesMut, ClientError> {
    let base_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let size: usize = records.iter().map(|r| r.value.len() + 16).sum();
    let mut builder = BatchBuilder::new(base_ts, size);
    for r in records {
        builder.push(r.key.as_deref(), Some(&r.value), r.timestamp_ms, &[]);
    }
    let batch = builder
        .finish()
        .ok_or_else(|| ClientError::Protocol("a batch needs at least one record".into()))?;
    Ok(BytesMut::from(Bytes::from(batch)))
}

/// One record borrowed from a fetch payload (or from a decompressed batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// What a reader may see of Kafka transactions in one fetch answer. Uncommitted sees
/// every data record; Committed (Kafka's `read_committed`) stops at the last stable
/// offset and drops aborted records the way Kafka's consumer does: a producer's
/// transactional batches are dropped from the first offset of one of its aborted
/// transactions (named by the answer) until its next control batch, the marker that
/// ended that transaction here. The state lives for one answer: the broker names every
/// aborted transaction that reaches into the range it returns.
#[derive(Debug, Clone, Default)]
pub struct TxnFilter {
    /// Batches from here on are not read (i64::MAX: no bound).
    stable_end: i64,
    /// Aborted transactions not reached yet, the latest first (taken from the end).
    ahead: Vec<AbortedTxn>,
    /// Producers inside an aborted transaction at the current batch. Few at once:
    /// a list, searched linearly.
    aborting: Vec<i64>,
}

impl TxnFilter {
    /// Every data record (Kafka's `read_uncommitted`).
    pub fn uncommitted() -> TxnFilter {
        TxnFilter {
            stable_end: i64::MAX,
            ..TxnFilter::default()
        }
    }

    /// Committed records only, for an answer with this last stable offset and these
    /// aborted transactions.
    pub fn committed(last_stable_offset: i64, aborted: &[AbortedTxn]) -> TxnFilter {
        let mut ahead = aborted.to_vec();
        ahead.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        TxnFilter {
            stable_end: last_stable_offset,
            ahead,
            aborting: Vec::new(),
        }
    }

    /// The filter a fetch answer calls for.
    pub fn of(isolation: Isolation, fetched: &Fetched) -> TxnFilter {
        match isolation {
            Isolation::Uncommitted => TxnFilter::uncommitted(),
            Isolation::Committed => {
                TxnFilter::committed(fetched.last_stable_offset, &fetched.aborted)
            }
        }
    }

    /// Whether a batch's records are withheld; a control batch (never data for an
    /// application) also ends its producer's aborted transaction.
    fn withholds(&mut self, header: &BatchHeader) -> bool {
        while let Some(next) = self.ahead.last() {
            if next.first_offset > header.last_offset() {
                break;
            }
            if !self.aborting.contains(&next.producer_id) {
                self.aborting.push(next.producer_id);
            }
            self.ahead.pop();
        }
        if header.is_control() {
            self.aborting.retain(|p| *p != header.producer_id);
            return true;
        }
        header.is_transactional() && self.aborting.contains(&header.producer_id)
    }
}

/// Calls `visit` for every record of the batches in a fetch payload, skipping control
/// records and records before `from_offset` (a fetch starts at the batch that holds
/// it). Uncompressed batches are read in place, without allocating.
pub fn visit_batches(
    partition: i32,
    payload: &Bytes,
    from_offset: i64,
    visit: &mut dyn FnMut(RecordRef<'_>),
) -> Result<(), ClientError> {
    let mut all = TxnFilter::uncommitted();
    visit_fetched(partition, payload, from_offset, &mut all, visit).map(|_| ())
}

/// Like `visit_batches`, with what `filter` withholds left out. Returns the offset
/// after the last batch read past (control batches and withheld ones included: the
/// reader's next position), or None when no batch reached `from_offset`.
pub fn visit_fetched(
    partition: i32,
    payload: &Bytes,
    from_offset: i64,
    filter: &mut TxnFilter,
    visit: &mut dyn FnMut(RecordRef<'_>),
) -> Result<Option<i64>, ClientError> {
    let bad = |e: BatchError| ClientError::Protocol(format!("decoding fetched batches: {e}"));
    let mut next = None;
    let mut rest = &payload[..];
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).map_err(bad)?;
        let whole = rest
            .get(..header.total_len())
            .ok_or_else(|| ClientError::Protocol("fetched batch is cut short".into()))?;
        rest = &rest[whole.len()..];
        if header.base_offset >= filter.stable_end {
            break;
        }
        let withheld = filter.withholds(&header);
        if header.last_offset() < from_offset {
            continue;
        }
        next = Some(header.last_offset().saturating_add(1));
        if withheld {
            continue;
        }
        // Borrowed as it is when uncompressed; records of a compressed batch are
        // copied out by `to_owned_in`.
        let plain = compression::uncompressed_batch(whole, DECOMPRESSED_BYTES_MAX_DEFAULT)
            .map_err(|e| ClientError::Protocol(format!("decompressing a fetched batch: {e}")))?;
        for r in records::records(&plain).map_err(bad)? {
            let r = r.map_err(bad)?;
            if r.offset >= from_offset {
                visit(RecordRef {
                    partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                });
            }
        }
    }
    Ok(next)
}

/// `part` as a `Bytes`: a reference into `payload` when it lies inside it (no copy),
/// else a copy (records of a decompressed batch).
fn share(payload: &Bytes, part: &[u8]) -> Bytes {
    let inside = payload.as_ptr_range();
    let range = part.as_ptr_range();
    if inside.start <= range.start && range.end <= inside.end {
        payload.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

impl RecordRef<'_> {
    /// An owned record; keys and values stay references into `payload` when they are.
    pub fn to_owned_in(&self, payload: &Bytes) -> InRecord {
        InRecord {
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.map(|k| share(payload, k)),
            value: self.value.map(|v| share(payload, v)),
        }
    }
}

/// Every record of a fetch payload, owned (see `visit_batches`).
pub fn decode_batches(
    partition: i32,
    payload: Bytes,
    from_offset: i64,
) -> Result<Vec<InRecord>, ClientError> {
    let mut out = Vec::new();
    visit_batches(partition, &payload, from_offset, &mut |r| {
        out.push(r.to_owned_in(&payload))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_batch_decodes_back() {
        let out: Vec<OutRecord> = (0..3)
            .map(|i| OutRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Bytes::from(format!("v{i}")),
                timestamp_ms: 1_000 + i,
            })
            .collect();
        let batch = encode_batch(&out).expect("encodes").freeze();
        let header = peregrine_shards::batch::validate(&batch).expect("one whole batch");
        assert_eq!(header.records_count, 3);
        assert_eq!(header.base_sequence, -1);
        let back = decode_batches(0, batch, 1).expect("decodes");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].offset, 1);
        assert_eq!(back[1].value.as_deref(), Some(&b"v2"[..]));
    }

    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    /// A batch of `values` at `base_offset`, written as producer `producer_id` would
    /// with these attributes (-1: no producer), CRC recomputed.
    fn batch_at(base_offset: i64, producer_id: i64, attributes: i16, values: &[&[u8]]) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000, 64);
        for v in values {
            let key: Option<&[u8]> = if attributes & CONTROL != 0 {
                // Kafka's ControlRecordKey: version 0, type (0 abort, 1 commit).
                Some(if *v == b"commit" {
                    &[0, 0, 0, 1]
                } else {
                    &[0, 0, 0, 0]
                })
            } else {
                None
            };
            b.push(key, Some(v), 1_000, &[]);
        }
        let mut bytes = b.finish().expect("records pushed");
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
        bytes[51..53].copy_from_slice(&0i16.to_be_bytes());
        let crc = peregrine_shards::batch::crc_of(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        peregrine_shards::batch::set_base_offset(&mut bytes, base_offset);
        peregrine_shards::batch::validate(&bytes).expect("a valid batch");
        bytes
    }

    fn txn(base_offset: i64, producer_id: i64, values: &[&[u8]]) -> Vec<u8> {
        batch_at(base_offset, producer_id, TRANSACTIONAL, values)
    }

    fn marker(offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        let kind: &[u8] = if commit { b"commit" } else { b"abort" };
        batch_at(offset, producer_id, TRANSACTIONAL | CONTROL, &[kind])
    }

    /// 0-1 plain; 2-3 producer 7, aborted at 6; 4-5 producer 8, committed at 7;
    /// 8-9 producer 7 again, committed at 10.
    fn interleaved() -> Bytes {
        let parts = [
            batch_at(0, -1, 0, &[b"p0", b"p1"]),
            txn(2, 7, &[b"a2", b"a3"]),
            txn(4, 8, &[b"c4", b"c5"]),
            marker(6, 7, false),
            marker(7, 8, true),
            txn(8, 7, &[b"c8", b"c9"]),
            marker(10, 7, true),
        ];
        Bytes::from(parts.concat())
    }

    fn read(payload: &Bytes, from: i64, mut filter: TxnFilter) -> (Vec<i64>, Option<i64>) {
        let mut seen = Vec::new();
        let next = visit_fetched(0, payload, from, &mut filter, &mut |r| seen.push(r.offset))
            .expect("decodes");
        (seen, next)
    }

    fn aborted(producer_id: i64, first_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
        }
    }

    #[test]
    fn committed_reader_drops_aborted_records_and_never_sees_markers() {
        let payload = interleaved();
        let committed = TxnFilter::committed(11, &[aborted(7, 2)]);
        assert_eq!(
            read(&payload, 0, committed),
            (vec![0, 1, 4, 5, 8, 9], Some(11))
        );
    }

    #[test]
    fn uncommitted_reader_sees_aborted_records_but_no_markers() {
        let payload = interleaved();
        let all = TxnFilter::uncommitted();
        assert_eq!(
            read(&payload, 0, all),
            (vec![0, 1, 2, 3, 4, 5, 8, 9], Some(11))
        );
        assert_eq!(decode_batches(0, payload, 0).expect("decodes").len(), 8);
    }

    #[test]
    fn committed_reader_stops_at_the_last_stable_offset() {
        // Producer 7's second transaction still open: the stable end is its start.
        let committed = TxnFilter::committed(8, &[aborted(7, 2)]);
        assert_eq!(
            read(&interleaved(), 0, committed),
            (vec![0, 1, 4, 5], Some(8))
        );
    }

    #[test]
    fn a_read_from_inside_an_aborted_transaction_drops_the_rest_of_it() {
        let committed = TxnFilter::committed(11, &[aborted(7, 2)]);
        assert_eq!(
            read(&interleaved(), 3, committed),
            (vec![4, 5, 8, 9], Some(11))
        );
    }

    #[test]
    fn a_producers_aborted_transactions_are_each_dropped_up_to_their_own_marker() {
        let payload = Bytes::from(
            [
                txn(0, 7, &[b"a0"]),
                marker(1, 7, false),
                txn(2, 7, &[b"c2"]),
                marker(3, 7, true),
                txn(4, 7, &[b"a4", b"a5"]),
                batch_at(6, -1, 0, &[b"p6"]),
                marker(7, 7, false),
            ]
            .concat(),
        );
        // Given out of order: the filter sorts them.
        let committed = TxnFilter::committed(8, &[aborted(7, 4), aborted(7, 0)]);
        assert_eq!(read(&payload, 0, committed), (vec![2, 6], Some(8)));
    }

    #[test]
    fn a_payload_of_markers_alone_moves_the_reader_past_them() {
        let payload = Bytes::from([marker(20, 7, true), marker(21, 8, false)].concat());
        for filter in [TxnFilter::uncommitted(), TxnFilter::committed(22, &[])] {
            assert_eq!(read(&payload, 20, filter), (vec![], Some(22)));
        }
        assert_eq!(
            read(&Bytes::new(), 20, TxnFilter::uncommitted()),
            (vec![], None)
        );
    }
}
