//! Building and reading record batches on the client side with
//! `peregrine_shards::records` (no allocation per record); compressed batches (from
//! Kafka producers) are first decompressed whole, up to
//! `compression::DECOMPRESSED_BYTES_MAX_DEFAULT` bytes of records per batch.

use super::ClientError;
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

/// Calls `visit` for every record of the batches in a fetch payload, skipping control
/// records and records before `from_offset` (a fetch starts at the batch that holds
/// it). Uncompressed batches are read in place, without allocating.
pub fn visit_batches(
    partition: i32,
    payload: &Bytes,
    from_offset: i64,
    visit: &mut dyn FnMut(RecordRef<'_>),
) -> Result<(), ClientError> {
    let bad = |e: BatchError| ClientError::Protocol(format!("decoding fetched batches: {e}"));
    let mut rest = &payload[..];
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).map_err(bad)?;
        let whole = rest
            .get(..header.total_len())
            .ok_or_else(|| ClientError::Protocol("fetched batch is cut short".into()))?;
        if !header.is_control() {
            // Borrowed as it is when uncompressed; records of a compressed batch are
            // copied out by `to_owned_in`.
            let plain = compression::uncompressed_batch(whole, DECOMPRESSED_BYTES_MAX_DEFAULT)
                .map_err(|e| {
                    ClientError::Protocol(format!("decompressing a fetched batch: {e}"))
                })?;
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
        rest = &rest[whole.len()..];
    }
    Ok(())
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
}
