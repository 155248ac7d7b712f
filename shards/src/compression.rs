//! Decompression of a Kafka v2 batch's records section, with a hard limit on the output.
//!
//! The broker stores compressed batches as clients send them and decompresses only to
//! read records itself (ListOffsets by timestamp); clients decompress what they fetch.
//! A batch of a few KiB can expand to gigabytes (a compression bomb), so every codec
//! here stops at `limit` bytes of output: the decoders are read through
//! `Read::take(limit + 1)`, and lengths a format declares up front (snappy) are checked
//! before anything is allocated. Past the limit the answer is `TooLarge`, never an
//! allocation; the memory one call can hold is about `limit` (plus, for zstd, the part
//! of its window that output has reached).
//!
//! Codecs, as Kafka writes them: gzip (RFC 1952, possibly several members), snappy
//! (one raw block, or xerial-framed blocks as the Java client writes), lz4 (the LZ4
//! frame format) and zstd (one or more zstd frames).
//!
//! Pure functions of their input: usable on any shard, no I/O.

use crate::batch::{BatchError, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};
use std::borrow::Cow;
use std::io::Read;

/// Most bytes one batch's records may expand to when no other limit is configured.
/// Kafka producers cap a batch at about 1 MiB compressed (`message.max.bytes`), and
/// compressible records (JSON, logs) reach 10 to 30 times that, rarely more; 64 MiB
/// keeps those readable while a bomb costs a shard at most this much, for the moment
/// it takes to refuse it.
pub const DECOMPRESSED_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// The compression codec of a v2 batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec for a batch's codec id; `None` for 0 (uncompressed).
    pub fn from_id(id: u8) -> Result<Option<Codec>, DecompressError> {
        match id {
            0 => Ok(None),
            1 => Ok(Some(Codec::Gzip)),
            2 => Ok(Some(Codec::Snappy)),
            3 => Ok(Some(Codec::Lz4)),
            4 => Ok(Some(Codec::Zstd)),
            other => Err(DecompressError::UnknownCodec(other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("unknown compression codec id {0} (Kafka knows 0 to 4)")]
    UnknownCodec(u8),
    #[error("{codec} records expand past the limit of {limit} bytes (a compression bomb?)")]
    TooLarge { codec: Codec, limit: usize },
    #[error("{codec} records are corrupt: {detail}")]
    Corrupt { codec: Codec, detail: String },
    #[error(transparent)]
    Batch(#[from] BatchError),
}

fn corrupt(codec: Codec, detail: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        codec,
        detail: detail.to_string(),
    }
}

/// Appends the decompressed form of `input` to `out`, at most `limit` bytes of it.
/// On an error `out` may hold part of the output.
pub fn decompress_into(
    codec: Codec,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    match codec {
        Codec::Gzip => read_capped(
            codec,
            flate2::bufread::MultiGzDecoder::new(input),
            limit,
            out,
        ),
        Codec::Snappy => snappy(input, limit, out),
        Codec::Lz4 => read_capped(codec, lz4_flex::frame::FrameDecoder::new(input), limit, out),
        Codec::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, e))?;
            // A frame names its window size, allocated before any output: keep zstd's
            // own cap, whatever the library's default becomes. Producers at level 22
            // and unknown content size ask for all of it, so it cannot follow `limit`;
            // the window's pages are touched only as output is written, which `limit`
            // bounds.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(codec, e))?;
            read_capped(codec, decoder, limit, out)
        }
    }
}

/// The decompressed form of `input`, at most `limit` bytes.
pub fn decompress(codec: Codec, input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    decompress_into(codec, input, limit, &mut out)?;
    Ok(out)
}

/// One whole v2 batch with its records uncompressed: the batch itself when it is not
/// compressed, else a copy with the records decompressed (at most `limit` bytes of
/// them) and the header's length, codec and CRC32C rewritten to match, so that it reads
/// as any uncompressed batch does (`records::records`).
pub fn uncompressed_batch(batch: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, DecompressError> {
    let header = BatchHeader::parse(batch)?;
    let Some(codec) = Codec::from_id(header.compression())? else {
        return Ok(Cow::Borrowed(batch));
    };
    let whole = batch
        .get(BATCH_HEADER_LEN..header.total_len())
        .ok_or(BatchError::Invalid("batch runs past its buffer"))?;
    // The batch length field is an i32: a limit beyond it could not be described.
    let limit = limit.min(i32::MAX as usize - BATCH_HEADER_LEN);
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + whole.len().saturating_mul(4).min(limit));
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    decompress_into(codec, whole, limit, &mut out)?;
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| DecompressError::TooLarge { codec, limit })?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = header.attributes & !0x07;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Cow::Owned(out))
}

/// Largest zstd window accepted: 2^27 bytes (128 MiB), zstd's default limit, which
/// every zstd level up to 22 stays within.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Reads `reader` to its end into `out`; more than `limit` bytes is `TooLarge`. On
/// an error `out` is left as it was.
fn read_capped(
    codec: Codec,
    reader: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let start = out.len();
    // One byte past the limit tells a bomb from output of exactly `limit` bytes.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let result = match reader.take(cap).read_to_end(out) {
        Err(e) => Err(corrupt(codec, e)),
        Ok(n) if n > limit => Err(DecompressError::TooLarge { codec, limit }),
        Ok(_) => return Ok(()),
    };
    out.truncate(start);
    result
}

/// The xerial snappy-java stream header: magic, then version and compatible version.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Snappy as Kafka clients write it: one raw block (librdkafka, kafka-protocol), or
/// xerial framing, a header then blocks each prefixed by its i32 length (the Java
/// client).
fn snappy(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    if !input.starts_with(XERIAL_MAGIC) {
        return snappy_block(input, limit, limit, out);
    }
    let start = out.len();
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt(Codec::Snappy, "xerial header cut short"))?;
    // Each step consumes at least its 4-byte length prefix, so this ends.
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(Codec::Snappy, "xerial block length cut short"))?;
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| corrupt(Codec::Snappy, "xerial block length"))?;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(Codec::Snappy, "xerial block runs past the batch"))?;
        snappy_block(block, limit - (out.len() - start), limit, out)?;
        rest = &tail[len..];
    }
    Ok(())
}

/// One raw snappy block of at most `room` bytes (of the whole output's `limit`); its
/// declared length is checked before any allocation.
fn snappy_block(
    block: &[u8],
    room: usize,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let codec = Codec::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if len > room {
        return Err(DecompressError::TooLarge { codec, limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(n) if n == len => Ok(()),
        Ok(n) => {
            out.truncate(start);
            Err(corrupt(
                codec,
                format!("block declared {len} bytes, held {n}"),
            ))
        }
        Err(e) => {
            out.truncate(start);
            Err(corrupt(codec, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;
    use crate::records::{self, BatchBuilder};
    use std::io::Write;

    const ALL: [Codec; 4] = [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
        match codec {
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).expect("gzip");
                e.finish().expect("gzip")
            }
            Codec::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy"),
            Codec::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).expect("lz4");
                e.finish().expect("lz4")
            }
            Codec::Zstd => zstd::encode_all(data, 1).expect("zstd"),
        }
    }

    /// snappy-java's framing: header, then (i32 length, raw block) per chunk.
    fn xerial(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for part in data.chunks(chunk) {
            let block = snap::raw::Encoder::new()
                .compress_vec(part)
                .expect("snappy");
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn compression_round_trips_every_codec() {
        let data = sample();
        for codec in ALL {
            let back = decompress(codec, &compress(codec, &data), data.len()).expect("decodes");
            assert!(back == data, "{codec} round trip");
        }
        let back = decompress(Codec::Snappy, &xerial(&data, 32 << 10), data.len()).expect("xerial");
        assert!(back == data, "xerial round trip");
    }

    #[test]
    fn compression_bombs_are_refused_for_every_codec() {
        // 64 MiB of zeros: a few KiB compressed, refused at 1 MiB of output.
        let zeros = vec![0u8; 64 << 20];
        let limit = 1 << 20;
        for codec in ALL {
            let bomb = compress(codec, &zeros);
            assert!(bomb.len() < 4 << 20, "{codec}: {} bytes", bomb.len());
            match decompress(codec, &bomb, limit) {
                Err(DecompressError::TooLarge { codec: c, limit: l }) => {
                    assert_eq!((c, l), (codec, limit))
                }
                other => panic!("{codec}: {:?}", other.map(|v| v.len())),
            }
        }
        let bomb = xerial(&zeros[..8 << 20], 1 << 19);
        assert!(matches!(
            decompress(Codec::Snappy, &bomb, limit),
            Err(DecompressError::TooLarge { limit: l, .. }) if l == limit
        ));
    }

    #[test]
    fn compression_limit_is_exact() {
        let data = sample();
        for codec in ALL {
            let packed = compress(codec, &data);
            assert!(decompress(codec, &packed, data.len()).is_ok(), "{codec}");
            assert!(
                matches!(
                    decompress(codec, &packed, data.len() - 1),
                    Err(DecompressError::TooLarge { .. })
                ),
                "{codec}"
            );
        }
    }

    #[test]
    fn compression_snappy_declared_length_is_checked_before_allocating() {
        // A raw block claiming 4 GiB - 1 (varint ff ff ff ff 0f) and holding nothing.
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(matches!(
            decompress(Codec::Snappy, &block, DECOMPRESSED_BYTES_MAX_DEFAULT),
            Err(DecompressError::TooLarge { .. })
        ));
        let mut framed = xerial(b"abc", 3);
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        assert!(matches!(
            decompress(Codec::Snappy, &framed, DECOMPRESSED_BYTES_MAX_DEFAULT),
            Err(DecompressError::TooLarge { .. })
        ));
    }

    #[test]
    fn compression_truncated_or_garbage_input_is_an_error_not_a_panic() {
        let data = sample();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for codec in ALL {
            let packed = compress(codec, &data);
            // (lz4_flex reads a frame that stops between blocks as ended, so cuts
            // land inside the data; the records parser refuses a short batch anyway.)
            for cut in [1, 3, packed.len() / 2, packed.len() - 8] {
                assert!(
                    decompress(codec, &packed[..cut], 1 << 20).is_err(),
                    "{codec} cut at {cut}"
                );
            }
            // Flipped bytes: any outcome but a panic or output past the limit.
            for _ in 0..300 {
                let mut bad = packed.clone();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = x as usize % bad.len();
                bad[i] ^= (x >> 40) as u8 | 1;
                if let Ok(out) = decompress(codec, &bad, 1 << 20) {
                    assert!(out.len() <= 1 << 20);
                }
            }
            assert!(decompress(codec, b"not compressed at all", 1 << 20).is_err());
        }
        let framed = xerial(&data, 4096);
        for cut in [9, 17, 19, 30, framed.len() - 1] {
            assert!(
                decompress(Codec::Snappy, &framed[..cut], 1 << 20).is_err(),
                "{cut}"
            );
        }
    }

    /// An uncompressed batch of `n` records, turned into a `codec` batch.
    fn compressed_batch(codec: Codec, id: i16, n: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000, 1024);
        for i in 0..n {
            b.push(
                Some(b"k"),
                Some(format!("v{i}").as_bytes()),
                1_000 + 10 * i,
                &[],
            );
        }
        let plain = b.finish().expect("records");
        let packed = compress(codec, &plain[BATCH_HEADER_LEN..]);
        let mut out = plain[..BATCH_HEADER_LEN].to_vec();
        out.extend_from_slice(&packed);
        let len = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        out[21..23].copy_from_slice(&id.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn compression_uncompressed_batch_reads_as_records() {
        for (id, codec) in (1i16..).zip(ALL) {
            let mut packed = compressed_batch(codec, id, 5);
            batch::set_base_offset(&mut packed, 100);
            batch::validate(&packed).expect("valid compressed batch");
            let plain = uncompressed_batch(&packed, 1 << 20).expect("decompresses");
            let header = batch::validate(&plain).expect("valid uncompressed batch");
            assert_eq!((header.compression(), header.base_offset), (0, 100));
            let got: Vec<(i64, i64)> = records::records(&plain)
                .expect("records")
                .map(|r| r.map(|r| (r.offset, r.timestamp_ms)))
                .collect::<Result<_, _>>()
                .expect("all parse");
            let want: Vec<(i64, i64)> = (0..5).map(|i| (100 + i, 1_000 + 10 * i)).collect();
            assert_eq!(got, want, "{codec}");
            assert!(matches!(
                uncompressed_batch(&packed, 20),
                Err(DecompressError::TooLarge { .. })
            ));
        }
        let mut b = BatchBuilder::new(0, 16);
        b.push(None, Some(b"v"), 0, &[]);
        let plain = b.finish().expect("one record");
        assert!(matches!(
            uncompressed_batch(&plain, 1),
            Ok(Cow::Borrowed(_))
        ));
        let unknown = compressed_batch(Codec::Gzip, 5, 1);
        assert!(matches!(
            uncompressed_batch(&unknown, 1 << 20),
            Err(DecompressError::UnknownCodec(5))
        ));
    }
}
