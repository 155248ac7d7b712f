//! The records of the committed-offsets log, in the byte layout of Kafka's
//! `__consumer_offsets` offset-commit records, so that tools that know Kafka's layout
//! can read ours and a transactional commit (issue 18) can be a batch like any other.
//!
//! Pure: no I/O, no allocation sized by a length field before the bytes are there.
//! The fuzz target `group_offsets` runs [`decode_batch`] (what replay runs on every
//! batch read back from the log).
//!
//! Layout (big endian; `string` is an i16 byte length then UTF-8 bytes):
//!
//! ```text
//! key   (OffsetCommitKey v1):   version i16 = 1 | group string | topic string | partition i32
//! value (OffsetCommitValue v1): version i16 = 1 | offset i64 | metadata string
//!                               | commit_timestamp i64 | expire_timestamp i64 (-1)
//! ```
//!
//! A record with a null value is a tombstone: the key's offset was deleted. Keys of
//! another version (Kafka's group-metadata key is version 2) are skipped, so a later
//! release may add record kinds that this one reads past; control batches are skipped
//! for the same reason (transaction markers).

use super::GroupError;
use crate::batch::BatchHeader;
use crate::records::{self, BatchBuilder};

/// Version of the offset-commit key we write and read.
const KEY_VERSION: i16 = 1;
/// Version of the offset-commit value we write and read.
const VALUE_VERSION: i16 = 1;

/// One committed offset's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub metadata: String,
    /// Broker wall clock at the commit (ms since the epoch).
    pub commit_time_ms: i64,
}

/// One record of the offsets log: a commit, or a tombstone (`value: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub value: Option<OffsetValue>,
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<(), GroupError> {
    let len = i16::try_from(s.len())
        .map_err(|_| GroupError::InvalidRequest(format!("string of {} bytes", s.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The record key of (group, topic, partition).
pub(crate) fn encode_key(group: &str, topic: &str, partition: i32) -> Result<Vec<u8>, GroupError> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, group)?;
    put_string(&mut out, topic)?;
    out.extend_from_slice(&partition.to_be_bytes());
    Ok(out)
}

/// The record value of one commit.
pub(crate) fn encode_value(value: &OffsetValue) -> Result<Vec<u8>, GroupError> {
    let mut out = Vec::with_capacity(28 + value.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    put_string(&mut out, &value.metadata)?;
    out.extend_from_slice(&value.commit_time_ms.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes()); // expire timestamp: none
    Ok(out)
}

/// One uncompressed batch of `records` (None when empty), timestamps `now_ms`.
pub fn encode_batch(records: &[OffsetRecord], now_ms: i64) -> Result<Option<Vec<u8>>, GroupError> {
    let mut builder = BatchBuilder::new(now_ms, records.len() * 64);
    for r in records {
        let key = encode_key(&r.group, &r.topic, r.partition)?;
        let value = r.value.as_ref().map(encode_value).transpose()?;
        builder.push(Some(&key), value.as_deref(), now_ms, &[]);
    }
    Ok(builder.finish())
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupError> {
        if n > self.buf.len() {
            return Err(corrupt("field runs past the record"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, GroupError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, GroupError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(i32::from_be_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, GroupError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }

    fn string(&mut self) -> Result<String, GroupError> {
        let len = usize::try_from(self.i16()?).map_err(|_| corrupt("null or negative string"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }
}

fn corrupt(what: &str) -> GroupError {
    GroupError::Io(format!("offsets log record is malformed: {what}"))
}

/// Decodes one key; `Ok(None)` for a key version we do not read.
fn decode_key(key: &[u8]) -> Result<Option<(String, String, i32)>, GroupError> {
    let mut r = Reader { buf: key };
    if r.i16()? != KEY_VERSION {
        return Ok(None);
    }
    let group = r.string()?;
    let topic = r.string()?;
    let partition = r.i32()?;
    Ok(Some((group, topic, partition)))
}

fn decode_value(value: &[u8]) -> Result<OffsetValue, GroupError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if version != VALUE_VERSION {
        return Err(corrupt("unknown offset value version"));
    }
    let offset = r.i64()?;
    let metadata = r.string()?;
    let commit_time_ms = r.i64()?;
    let _expire = r.i64()?;
    Ok(OffsetValue {
        offset,
        metadata,
        commit_time_ms,
    })
}

/// The records of one batch read back from the offsets log, with their offsets.
/// Control batches and keys of other versions yield nothing; anything malformed is an
/// error (replay refuses to guess at committed offsets).
pub fn decode_batch(batch: &[u8]) -> Result<Vec<(i64, OffsetRecord)>, GroupError> {
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(&e.to_string()))?;
    if header.is_control() {
        return Ok(Vec::new());
    }
    let it = records::records(batch).map_err(|e| corrupt(&e.to_string()))?;
    let mut out = Vec::new();
    for record in it {
        let record = record.map_err(|e| corrupt(&e.to_string()))?;
        let key = record.key.ok_or_else(|| corrupt("record without a key"))?;
        let Some((group, topic, partition)) = decode_key(key)? else {
            continue;
        };
        let value = record.value.map(decode_value).transpose()?;
        out.push((
            record.offset,
            OffsetRecord {
                group,
                topic,
                partition,
                value,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(group: &str, partition: i32, value: Option<i64>) -> OffsetRecord {
        OffsetRecord {
            group: group.into(),
            topic: "orders".into(),
            partition,
            value: value.map(|offset| OffsetValue {
                offset,
                metadata: format!("m{offset}"),
                commit_time_ms: 1_700_000_000_000,
            }),
        }
    }

    #[test]
    fn commits_and_tombstones_round_trip_through_a_batch() {
        let records = vec![
            rec("g", 0, Some(5)),
            rec("é/g", 7, None),
            rec("g", 1, Some(-1)),
        ];
        let batch = encode_batch(&records, 1_700_000_000_000)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no batch"));
        let got = decode_batch(&batch).unwrap_or_else(|e| panic!("{e}"));
        let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        let decoded: Vec<OffsetRecord> = got.into_iter().map(|(_, r)| r).collect();
        assert_eq!(decoded, records);
    }

    #[test]
    fn keys_have_kafkas_offset_commit_key_v1_layout() {
        let key = encode_key("g", "t", 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
    }

    #[test]
    fn truncated_or_lying_fields_are_errors_not_panics() {
        let value = encode_value(&OffsetValue {
            offset: 9,
            metadata: "abc".into(),
            commit_time_ms: 1,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        // A string length longer than what follows.
        assert!(decode_key(&[0, 1, 0x7f, 0xff, b'g']).is_err());
        assert!(decode_key(&[0, 1, 0xff, 0xff]).is_err(), "null group");
        // Another key version is read past, not refused.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']).ok(), Some(None));
        assert!(decode_batch(&[0u8; 10]).is_err());
    }
}
