//! Records inside an uncompressed Kafka v2 record batch, without allocating per record:
//! a builder that writes a batch straight into one buffer, and an iterator that yields
//! borrowed views of each record.
//!
//! kafka-protocol's codec needs an owned `Record` per message (an allocation each), too
//! slow for a hot path that must move millions of messages per second; it remains the
//! reference these are tested against, and the decoder for compressed batches.
//!
//! Record layout (after the 61-byte batch header): length varint | attributes i8 |
//! timestampDelta varlong | offsetDelta varint | keyLength varint | key |
//! valueLength varint | value | headerCount varint | headers (key/value pairs). Varints
//! are zigzag-encoded.

use crate::batch::{BatchError, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};

/// Builds one uncompressed v2 batch; the broker assigns the base offset.
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.max(1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => varint_len(-1),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

impl BatchBuilder {
    /// A builder whose timestamps are relative to `base_timestamp_ms`.
    pub fn new(base_timestamp_ms: i64, capacity: usize) -> BatchBuilder {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + capacity);
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: base_timestamp_ms,
            max_timestamp: base_timestamp_ms,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn records(&self) -> i32 {
        self.count
    }

    /// Bytes the finished batch will take.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record, written straight into the batch (each value is copied once).
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
        headers: &[(&[u8], &[u8])],
    ) {
        let value_len = value.map(<[u8]>::len);
        self.push_with(key, value_len, timestamp_ms, headers, |out| {
            if let Some(v) = value {
                out.extend_from_slice(v);
            }
        });
    }

    /// Appends one record whose value is `parts` one after another, each copied once
    /// straight into the batch.
    pub fn push_parts<'a>(
        &mut self,
        key: Option<&[u8]>,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        timestamp_ms: i64,
    ) {
        let value_len = parts.clone().map(<[u8]>::len).sum();
        self.push_with(key, Some(value_len), timestamp_ms, &[], |out| {
            for part in parts {
                out.extend_from_slice(part);
            }
        });
    }

    fn push_with(
        &mut self,
        key: Option<&[u8]>,
        value_len: Option<usize>,
        timestamp_ms: i64,
        headers: &[(&[u8], &[u8])],
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        let ts_delta = timestamp_ms - self.base_timestamp;
        let offset_delta = i64::from(self.count);
        let value_field_len = match value_len {
            Some(n) => varint_len(n as i64) + n,
            None => varint_len(-1),
        };
        let body_len = 1
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + bytes_len(key)
            + value_field_len
            + varint_len(headers.len() as i64)
            + headers
                .iter()
                .map(|(k, v)| bytes_len(Some(k)) + bytes_len(Some(v)))
                .sum::<usize>();
        let out = &mut self.buf;
        out.reserve(body_len + 5);
        put_varint(out, body_len as i64);
        let start = out.len();
        out.push(0); // record attributes: unused
        put_varint(out, ts_delta);
        put_varint(out, offset_delta);
        put_bytes(out, key);
        match value_len {
            Some(n) => {
                put_varint(out, n as i64);
                let before = out.len();
                write_value(out);
                debug_assert_eq!(out.len() - before, n, "value length given up front");
            }
            None => put_varint(out, -1),
        }
        put_varint(out, headers.len() as i64);
        for (k, v) in headers {
            put_bytes(out, Some(k));
            put_bytes(out, Some(v));
        }
        debug_assert_eq!(
            out.len() - start,
            body_len,
            "record length computed up front"
        );
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
    }

    /// Fills in the header and CRC32C; `None` when no record was pushed.
    pub fn finish(self) -> Option<Vec<u8>> {
        self.finish_as(0, -1, -1, -1)
    }

    /// `finish` with the given attributes and producer fields (control batches).
    fn finish_as(
        mut self,
        attributes: i16,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let batch_length = (self.buf.len() - LOG_OVERHEAD) as i32;
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        b[16] = MAGIC_V2 as u8;
        b[21..23].copy_from_slice(&attributes.to_be_bytes()); // no compression, CreateTime
        b[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Some(self.buf)
    }
}

/// Attributes of a transaction marker batch: transactional (0x10) and control (0x20).
const ATTR_TXN_CONTROL: i16 = 0x30;
/// Control record types (the second field of a control record's key), as Kafka's.
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;

/// The end of one producer's transaction in a partition, as Kafka writes it: a control
/// batch of one record whose key is (version i16 0, type i16: 0 abort, 1 commit) and
/// whose value is Kafka's `EndTransactionMarker` (version i16 0, coordinator epoch i32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The marker batch for `producer_id` at `epoch` (base sequence -1, as Kafka's).
    pub fn batch(self, producer_id: i64, epoch: i16, timestamp_ms: i64) -> Vec<u8> {
        let kind = if self.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        };
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&kind.to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        let mut builder = BatchBuilder::new(timestamp_ms, 32);
        builder.push(Some(&key), Some(&value), timestamp_ms, &[]);
        // One record was pushed, so `finish_as` has a batch to give.
        builder
            .finish_as(ATTR_TXN_CONTROL, producer_id, epoch, -1)
            .unwrap_or_default()
    }

    /// The marker a control batch holds; `None` for any other batch, including control
    /// records of other types. Errors only for a control batch that cannot be read.
    pub fn decode(batch: &[u8]) -> Result<Option<EndTxnMarker>, BatchError> {
        let header = BatchHeader::parse(batch)?;
        if !header.is_control() {
            return Ok(None);
        }
        let Some(record) = records(batch)?.next().transpose()? else {
            return Err(BatchError::Invalid("control batch without a record"));
        };
        let key = record
            .key
            .filter(|k| k.len() >= 4)
            .ok_or(BatchError::Invalid(
                "control record key shorter than 4 bytes",
            ))?;
        let commit = match i16::from_be_bytes([key[2], key[3]]) {
            CONTROL_TYPE_COMMIT => true,
            CONTROL_TYPE_ABORT => false,
            _ => return Ok(None),
        };
        let coordinator_epoch = match record.value {
            Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
            _ => -1,
        };
        Ok(Some(EndTxnMarker {
            commit,
            coordinator_epoch,
        }))
    }
}

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: i64,
}

/// Most headers reserved up front; a record with more grows its vector as it reads.
const HEADERS_RESERVE_MAX: usize = 64;

/// A record header: key and (nullable) value, borrowed from the batch.
pub type HeaderView<'a> = (&'a [u8], Option<&'a [u8]>);

impl<'a> RecordView<'a> {
    /// The record's headers as (key, value) pairs.
    pub fn headers(&self) -> Result<Vec<HeaderView<'a>>, BatchError> {
        let mut cur = Cursor { buf: self.headers };
        // Every header takes at least one byte, so a count above the bytes left is a
        // lie; checked before the loop and the reservation trust it.
        let count = usize::try_from(self.header_count)
            .map_err(|_| BatchError::Invalid("negative header count in record"))?;
        if count > self.headers.len() {
            return Err(BatchError::Invalid(
                "header count is larger than the record's bytes",
            ));
        }
        let mut out = Vec::with_capacity(count.min(HEADERS_RESERVE_MAX));
        for _ in 0..count {
            let key = cur.bytes()?.ok_or(BatchError::Invalid("null header key"))?;
            out.push((key, cur.bytes()?));
        }
        Ok(out)
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<i64, BatchError> {
        let mut z: u64 = 0;
        for (i, byte) in self.buf.iter().take(10).enumerate() {
            z |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(BatchError::Invalid("bad varint in record"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.buf.len() {
            return Err(BatchError::Invalid("record field runs past its batch"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(BatchError::Invalid("negative length in record")),
            n => self.take(n as usize).map(Some),
        }
    }
}

/// Iterates the records of one whole uncompressed batch (validate it first).
pub struct Records<'a> {
    header: BatchHeader,
    cur: Cursor<'a>,
    left: i32,
}

/// The records of `batch`; compressed batches are refused (decode those with a codec).
pub fn records(batch: &[u8]) -> Result<Records<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != 0 {
        return Err(BatchError::Invalid(
            "compressed batch: records need decompressing",
        ));
    }
    let end = header.total_len().min(batch.len());
    let body = batch.get(BATCH_HEADER_LEN..end).unwrap_or_default();
    // Every record takes at least one byte: a larger count cannot be honest, and a
    // caller sizing anything by `records_count` must not be handed it.
    let left = usize::try_from(header.records_count)
        .map_err(|_| BatchError::Invalid("record count is negative"))?;
    if left > body.len() {
        return Err(BatchError::Invalid(
            "record count is larger than the batch's bytes",
        ));
    }
    Ok(Records {
        header,
        cur: Cursor { buf: body },
        left: header.records_count,
    })
}

impl<'a> Records<'a> {
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    fn next_record(&mut self) -> Result<RecordView<'a>, BatchError> {
        let len = self.cur.varint()?;
        let body = self.cur.take(
            usize::try_from(len).map_err(|_| BatchError::Invalid("negative record length"))?,
        )?;
        let mut r = Cursor { buf: body };
        r.take(1)?; // attributes
        let ts_delta = r.varint()?;
        let offset_delta = r.varint()?;
        let key = r.bytes()?;
        let value = r.bytes()?;
        let header_count = r.varint()?;
        Ok(RecordView {
            offset: self.header.base_offset.wrapping_add(offset_delta),
            timestamp_ms: self.header.base_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers: r.buf,
            header_count,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.next_record();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;
    use kafka_protocol::records::RecordBatchDecoder;

    fn built() -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000, 1024);
        b.push(Some(b"k0"), Some(b"v0"), 1_000, &[]);
        b.push(None, Some(&[7u8; 300]), 1_005, &[(b"h", b"x")]);
        b.push(Some(b""), None, 999, &[]);
        b.finish().expect("three records")
    }

    #[test]
    fn built_batch_validates_and_kafka_protocol_decodes_it() {
        let mut bytes = built();
        batch::set_base_offset(&mut bytes, 40);
        let header = batch::validate(&bytes).expect("valid batch");
        assert_eq!((header.records_count, header.last_offset_delta), (3, 2));
        assert_eq!(
            (header.base_timestamp, header.max_timestamp),
            (1_000, 1_005)
        );
        assert_eq!((header.producer_id, header.base_sequence), (-1, -1));
        let mut buf = bytes::Bytes::from(bytes);
        let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes it");
        let r = &set.records;
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].offset, r[0].timestamp), (40, 1_000));
        assert_eq!(r[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(r[1].value.as_deref(), Some(&[7u8; 300][..]));
        assert_eq!(r[1].headers.len(), 1);
        assert_eq!(
            (r[2].key.as_deref(), r[2].value.as_deref()),
            (Some(&b""[..]), None)
        );
    }

    #[test]
    fn end_txn_markers_are_kafka_control_batches_and_decode_back() {
        for (commit, epoch) in [(true, 7), (false, -1)] {
            let marker = EndTxnMarker {
                commit,
                coordinator_epoch: epoch,
            };
            let mut bytes = marker.batch(4_242, 3, 1_700_000_000_000);
            batch::set_base_offset(&mut bytes, 9);
            let header = batch::validate(&bytes).expect("valid batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (4_242, 3, -1)
            );
            assert_eq!(EndTxnMarker::decode(&bytes), Ok(Some(marker)));
            let mut buf = bytes::Bytes::from(bytes);
            let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes it");
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            let kind = if commit { 1u8 } else { 0 };
            assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, kind][..]));
            let mut value = vec![0u8, 0];
            value.extend_from_slice(&epoch.to_be_bytes());
            assert_eq!(r.value.as_deref(), Some(&value[..]));
        }
        // A data batch is no marker; a control batch without a readable key is an error.
        assert_eq!(EndTxnMarker::decode(&built()), Ok(None));
        let mut b = BatchBuilder::new(0, 16);
        b.push(Some(b"x"), None, 0, &[]);
        let odd = b.finish_as(ATTR_TXN_CONTROL, 1, 0, -1).expect("one record");
        assert!(EndTxnMarker::decode(&odd).is_err());
        // Every cut and every flipped byte decodes or fails cleanly.
        let marker = EndTxnMarker {
            commit: true,
            coordinator_epoch: 1,
        }
        .batch(1, 0, 0);
        for cut in 0..marker.len() {
            let _ = EndTxnMarker::decode(&marker[..cut]);
        }
        for at in 0..marker.len() {
            for bit in 0..8 {
                let mut b = marker.clone();
                b[at] ^= 1 << bit;
                let _ = EndTxnMarker::decode(&b);
            }
        }
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn iterator_reads_what_the_builder_wrote() {
        let mut bytes = built();
        batch::set_base_offset(&mut bytes, 7);
        let views: Vec<RecordView> = records(&bytes)
            .expect("records")
            .collect::<Result<_, _>>()
            .expect("all parse");
        assert_eq!(views.len(), 3);
        assert_eq!(views[0].offset, 7);
        assert_eq!(views[1].offset, 8);
        assert_eq!(views[1].timestamp_ms, 1_005);
        assert_eq!(views[1].key, None);
        assert_eq!(
            views[1].headers().expect("headers"),
            vec![(&b"h"[..], Some(&b"x"[..]))]
        );
        assert_eq!(views[2].timestamp_ms, 999);
        assert_eq!(views[2].value, None);
    }

    fn view(headers: &[u8], header_count: i64) -> RecordView<'_> {
        RecordView {
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: None,
            headers,
            header_count,
        }
    }

    #[test]
    fn header_count_beyond_the_bytes_left_is_refused_up_front() {
        // One real header ("h" = "x"), then a count that claims a million.
        let one = [2u8, b'h', 2, b'x'];
        assert_eq!(view(&one, 1).headers().map(|h| h.len()), Ok(1));
        assert_eq!(
            view(&one, 1_000_000).headers(),
            Err(BatchError::Invalid(
                "header count is larger than the record's bytes"
            ))
        );
        assert_eq!(
            view(&one, -2).headers(),
            Err(BatchError::Invalid("negative header count in record"))
        );
    }

    #[test]
    fn record_count_beyond_the_bytes_left_is_refused_up_front() {
        let mut bytes = built();
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(records(&bytes), Err(BatchError::Invalid(_))));
        bytes[57..61].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(records(&bytes), Err(BatchError::Invalid(_))));
        // The honest count still reads every record.
        bytes[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(records(&bytes).map(Iterator::count), Ok(3));
    }

    /// Every record of `bytes`, or the first error.
    fn read_all(bytes: &[u8]) -> Result<Vec<RecordView<'_>>, BatchError> {
        records(bytes)?.collect()
    }

    #[test]
    fn truncated_or_garbage_records_are_errors_not_panics() {
        let bytes = built();
        // Any cut inside the records leaves the last one short: an error, never fewer
        // records read as if the batch were whole.
        for cut in BATCH_HEADER_LEN..bytes.len() {
            let read = read_all(&bytes[..cut]);
            assert!(
                matches!(read, Err(BatchError::Invalid(_))),
                "cut at {cut} of {}: {read:?}",
                bytes.len()
            );
        }
        // Lengths that lie: a varint that never ends, a negative record length, a record
        // that claims more bytes than the batch has, a key longer than its record.
        let lie = |at: usize, with: &[u8], reason: &'static str| {
            let mut b = bytes.clone();
            b[at..at + with.len()].copy_from_slice(with);
            assert_eq!(
                read_all(&b).err(),
                Some(BatchError::Invalid(reason)),
                "{with:?}"
            );
        };
        let first = BATCH_HEADER_LEN;
        lie(first, &[0xff; 10], "bad varint in record");
        lie(first, &[0x01], "negative record length");
        lie(
            first,
            &[0xfe, 0xff, 0x7f],
            "record field runs past its batch",
        );
        // The first record's key length (after length, attributes, two one-byte deltas).
        lie(first + 4, &[0x7e], "record field runs past its batch");
        // Random bytes anywhere in the records: a clean error, or exactly the records
        // the header counts, each with headers that parse or fail cleanly.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut errors = 0;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = BATCH_HEADER_LEN + (x as usize % (b.len() - BATCH_HEADER_LEN));
            b[i] = (x >> 32) as u8;
            match read_all(&b) {
                Ok(views) => {
                    assert_eq!(views.len(), 3, "byte {i} = {}", b[i]);
                    for v in views {
                        let _ = v.headers();
                    }
                }
                Err(e) => {
                    assert!(matches!(e, BatchError::Invalid(_)), "{e:?}");
                    errors += 1;
                }
            }
        }
        assert!(errors > 0, "no corruption was ever noticed");
    }
}
