//! Record batches in the Kafka RecordBatch v2 byte layout, viewed in place.
//!
//! A batch is the unit of storage and transfer (DESIGN.md "Record format"): the broker
//! never re-encodes one. It only reads the 61-byte header, checks the CRC32C, and writes
//! the base-offset field (which the CRC does not cover) when it assigns offsets.
//!
//! Layout (big endian), with byte positions:
//!
//! ```text
//!  0 baseOffset i64            8 batchLength i32 (bytes after this field)
//! 12 partitionLeaderEpoch i32 16 magic i8 (= 2)      17 crc u32 (CRC32C of 21..end)
//! 21 attributes i16           23 lastOffsetDelta i32 27 baseTimestamp i64
//! 35 maxTimestamp i64         43 producerId i64      51 producerEpoch i16
//! 53 baseSequence i32         57 recordsCount i32    61 records...
//! ```
//!
//! Every function here is pure, bounds-checked and never panics on any input.

use std::ops::Range;

/// Length of the fixed batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength`: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only record-batch format version we store.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batchLength`: the header after the length field, with no records.
pub const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

const POS_MAGIC: usize = 16;
const POS_CRC: usize = 17;
/// The CRC covers everything from the attributes field to the end of the batch.
const POS_ATTRIBUTES: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a byte range is not a valid v2 record batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("record batch length field is {batch_length}, but the batch holds {available} bytes after it")]
    BadLength { batch_length: i32, available: usize },
    #[error("record batch magic is {0}, only v2 (magic 2) batches are supported")]
    BadMagic(i8),
    #[error(
        "record batch CRC32C mismatch: header says {expected:#010x}, content gives {actual:#010x}"
    )]
    BadCrc { expected: u32, actual: u32 },
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
}

/// The decoded fixed header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Reads a fixed-size big-endian field; callers have checked `buf.len() >= BATCH_HEADER_LEN`.
fn field<const N: usize>(buf: &[u8], pos: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[pos..pos + N]);
    out
}

impl BatchHeader {
    /// Decodes the header fields only; does not check lengths against `buf`, magic or CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(field(buf, 0)),
            batch_length: i32::from_be_bytes(field(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(field(buf, 12)),
            magic: i8::from_be_bytes(field(buf, POS_MAGIC)),
            crc: u32::from_be_bytes(field(buf, POS_CRC)),
            attributes: i16::from_be_bytes(field(buf, POS_ATTRIBUTES)),
            last_offset_delta: i32::from_be_bytes(field(buf, 23)),
            base_timestamp: i64::from_be_bytes(field(buf, 27)),
            max_timestamp: i64::from_be_bytes(field(buf, 35)),
            producer_id: i64::from_be_bytes(field(buf, 43)),
            producer_epoch: i16::from_be_bytes(field(buf, 51)),
            base_sequence: i32::from_be_bytes(field(buf, 53)),
            records_count: i32::from_be_bytes(field(buf, 57)),
        })
    }

    /// Whole batch size in bytes, including baseOffset and batchLength.
    /// A negative length (rejected by `validate`) counts as zero.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch; `None` when that is past `i64::MAX`, which no log
    /// can reach: a batch claiming it is corrupt (offsets must never wrap and repeat).
    pub fn next_offset(&self) -> Option<i64> {
        self.base_offset
            .checked_add(i64::from(self.last_offset_delta))?
            .checked_add(1)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Checks the header fields that do not depend on the buffer holding the whole batch.
fn check_header(header: &BatchHeader) -> Result<(), BatchError> {
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    if header.batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::Invalid(
            "batch length is shorter than the v2 header",
        ));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Invalid("last offset delta is negative"));
    }
    if header.records_count < 0 {
        return Err(BatchError::Invalid("record count is negative"));
    }
    // An uncompressed record takes at least one byte, so more records than bytes is a
    // lie that readers sizing by the count must never see. Compressed records may take
    // less than a byte each on the wire; the decompressor bounds those.
    let records_bytes = header.total_len() - BATCH_HEADER_LEN;
    if header.compression() == 0 && header.records_count as usize > records_bytes {
        return Err(BatchError::Invalid(
            "record count is larger than the batch's bytes",
        ));
    }
    Ok(())
}

/// Validates one complete batch: `buf` must hold exactly one whole v2 batch whose
/// CRC32C matches.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    check_header(&header)?;
    if header.total_len() != buf.len() {
        return Err(BatchError::BadLength {
            batch_length: header.batch_length,
            available: buf.len().saturating_sub(LOG_OVERHEAD),
        });
    }
    let actual = crc_of(buf);
    if actual != header.crc {
        return Err(BatchError::BadCrc {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Splits a buffer of one or more whole batches, validating each (CRC included).
/// Trailing bytes that do not form a whole batch are an error.
pub fn split(buf: &[u8]) -> Result<Vec<(Range<usize>, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let header = BatchHeader::parse(rest)?;
        check_header(&header)?;
        let len = header.total_len();
        if len > rest.len() {
            return Err(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            });
        }
        validate(&rest[..len])?;
        out.push((pos..pos + len, header));
        pos += len;
    }
    Ok(out)
}

/// Writes the base offset. The CRC does not cover it, so the batch stays valid.
/// A buffer shorter than 8 bytes is left as it is (callers pass validated batches).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(field) = batch.get_mut(0..8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// CRC32C of the CRC-covered part of a batch (attributes..end); 0-length input if short.
pub fn crc_of(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(POS_ATTRIBUTES..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn record(i: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 7,
            producer_id: 1234,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: 10 + i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; 100 + i as usize])),
            headers: IndexMap::new(),
            delete_horizon: false,
        }
    }

    fn encoded(n: i64) -> BytesMut {
        let records: Vec<Record> = (0..n).map(record).collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        let encoded = RecordBatchEncoder::encode(&mut buf, records.iter(), &options);
        assert!(encoded.is_ok(), "kafka-protocol failed to encode a batch");
        buf
    }

    #[test]
    fn kafka_built_batch_validates_with_correct_header_fields() {
        let buf = encoded(5);
        let header = validate(&buf).expect("valid batch");
        assert_eq!(header.magic, 2);
        assert_eq!(header.total_len(), buf.len());
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.last_offset_delta, 4);
        assert_eq!(header.last_offset(), 4);
        assert_eq!(header.records_count, 5);
        assert_eq!(header.base_timestamp, 1_700_000_000_000);
        assert_eq!(header.max_timestamp, 1_700_000_000_004);
        assert_eq!(header.producer_id, 1234);
        assert_eq!(header.producer_epoch, 3);
        assert_eq!(header.base_sequence, 10);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.compression(), 0);
        assert!(!header.is_transactional());
        assert!(!header.is_control());
        assert_eq!(crc_of(&buf), header.crc);
    }

    #[test]
    fn setting_base_offset_keeps_crc_valid_and_decodes() {
        let mut buf = encoded(3);
        set_base_offset(&mut buf, 1_000);
        let header = validate(&buf).expect("still valid");
        assert_eq!(header.base_offset, 1_000);
        assert_eq!(header.last_offset(), 1_002);
        let mut bytes = buf.freeze();
        let set = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
        let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1_000, 1_001, 1_002]);
    }

    #[test]
    fn split_returns_each_whole_batch() {
        let mut buf = encoded(2);
        let first = buf.len();
        buf.extend_from_slice(&encoded(4));
        let parts = split(&buf).expect("valid");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, 0..first);
        assert_eq!(parts[1].0, first..buf.len());
        assert_eq!(parts[1].1.records_count, 4);
        assert_eq!(split(&[]).expect("empty is fine").len(), 0);
    }

    #[test]
    fn flipped_byte_is_bad_crc() {
        let buf = encoded(3);
        for pos in [POS_ATTRIBUTES, 30, buf.len() / 2, buf.len() - 1] {
            let mut bad = buf.clone();
            bad[pos] ^= 0x40;
            assert!(
                matches!(validate(&bad), Err(BatchError::BadCrc { .. })),
                "flip at {pos} must fail the CRC"
            );
        }
    }

    #[test]
    fn truncated_batch_is_rejected() {
        let buf = encoded(3);
        assert!(matches!(
            validate(&buf[..20]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            validate(&buf[..buf.len() - 1]),
            Err(BatchError::BadLength { .. })
        ));
        assert!(matches!(
            split(&buf[..buf.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut two = buf.clone();
        two.extend_from_slice(&buf[..30]);
        assert!(matches!(split(&two), Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn wrong_magic_and_bad_fields_are_rejected() {
        let mut buf = encoded(1);
        buf[POS_MAGIC] = 1;
        assert_eq!(validate(&buf), Err(BatchError::BadMagic(1)));
        let mut short = encoded(1);
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(validate(&short), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn record_count_beyond_the_batch_bytes_is_rejected() {
        let mut buf = encoded(2);
        buf[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        // Give it a right CRC so only the count can be what fails.
        let crc = crc_of(&buf);
        buf[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate(&buf),
            Err(BatchError::Invalid(
                "record count is larger than the batch's bytes"
            ))
        );
        assert!(split(&buf).is_err());
    }

    #[test]
    fn next_offset_past_i64_max_is_none_not_a_wrap() {
        let mut header = BatchHeader::parse(&encoded(2)).expect("header");
        assert_eq!(header.next_offset(), Some(2));
        header.base_offset = i64::MAX - 1;
        header.last_offset_delta = 1;
        assert_eq!(header.next_offset(), None);
        header.last_offset_delta = 0;
        assert_eq!(header.next_offset(), Some(i64::MAX));
    }

    /// Deterministic xorshift64 so a failure replays from its seed.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn garbage_never_panics() {
        let valid = encoded(2);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let len = (xorshift(&mut seed) % 300) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
            // Half the cases start from a valid batch so the deep checks are reached too.
            if xorshift(&mut seed).is_multiple_of(2) {
                buf = valid.to_vec();
                let flips = xorshift(&mut seed) % 4;
                for _ in 0..flips {
                    let pos = (xorshift(&mut seed) as usize) % buf.len();
                    buf[pos] = xorshift(&mut seed) as u8;
                }
                buf.truncate((xorshift(&mut seed) as usize) % (buf.len() + 1));
            }
            let _ = BatchHeader::parse(&buf).map(|h| (h.total_len(), h.last_offset()));
            let _ = validate(&buf);
            let _ = split(&buf);
            let _ = crc_of(&buf);
            set_base_offset(&mut buf, 42);
        }
    }
}
