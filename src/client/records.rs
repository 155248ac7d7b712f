//! Building and reading record batches on the client side, with kafka-protocol's codec
//! so that native clients produce exactly what a Kafka producer would.

use super::ClientError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

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
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol keeps records in one batch while offset - sequence stays
            // constant; this also leaves the batch's base sequence at NO_SEQUENCE.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: Some(r.value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| ClientError::Protocol(format!("encoding a batch: {e}")))?;
    Ok(buf)
}

/// Decodes every record of the batches in a fetch payload, skipping control records and
/// records before `from_offset` (a fetch starts at the batch that holds it).
pub fn decode_batches(
    partition: i32,
    payload: Bytes,
    from_offset: i64,
) -> Result<Vec<InRecord>, ClientError> {
    let mut buf = payload;
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| ClientError::Protocol(format!("decoding fetched batches: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control && r.offset >= from_offset)
        .map(|r| InRecord {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key,
            value: r.value,
        })
        .collect())
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
