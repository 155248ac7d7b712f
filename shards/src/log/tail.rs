//! What the bytes after the last valid batch of an active segment are: a torn write,
//! which recovery cuts off, or damage to data that may have been acknowledged, which
//! stops the open.
//!
//! Why the difference can be told: segment files are preallocated and never reused, so
//! a sector that a write did not reach reads as zeros, and an fdatasync returns only
//! once every write issued before it is on disk. A crash therefore leaves, after the
//! last durable batch, a batch whose bytes run out into zeros (from a sector boundary
//! on) or into the end of the file, and nothing valid after it: nothing there was
//! acknowledged as durable. A bit flipped in written data leaves instead a batch that
//! is whole (its CRC32C still matches the bytes it covers, when the flip hit a field
//! the CRC does not cover), or complete but failing its CRC with no unwritten sector in
//! it, or a valid batch after the bad one. Those refuse the start.
//!
//! Known limits (both on the side of refusing, or of one rare coincidence): a batch
//! whose own last bytes are 16 or more zeros across a sector boundary and that also
//! has a flipped bit reads as torn; a power loss that keeps a later write but loses an
//! earlier one (the disk reorders its cache) leaves a valid batch after unwritten
//! sectors and refuses the start although nothing durable was lost.
//!
//! Pure functions over a window of the file; owned by recovery (`recovery.rs`).

use crate::batch::{self, BatchHeader, BATCH_HEADER_LEN, BATCH_LENGTH_MIN, LOG_OVERHEAD};

use super::config::BATCH_BYTES_MAX;

/// Smallest unit a disk writes whole (the logical block size of any disk in use).
const SECTOR_BYTES: u64 = 512;
/// A torn batch has at least this many unwritten (zero) bytes after a sector boundary;
/// fewer could be the batch's own trailing zeros.
const TORN_ZEROS_MIN: u64 = 16;
/// How far past the bad batch (or its header, when its length is not believable) the
/// window reaches, to find valid batches after it or the zeros of unwritten space.
pub(crate) const LOOK_AHEAD_BYTES: usize = 64 << 10;

/// What the window after the last valid batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Unwritten space or a torn write: nothing acknowledged; cut the file here.
    Torn,
    /// Written data that fails its checks; the reason says what was found.
    Damaged(String),
}

/// How many bytes from the bad position the window should hold, given its first
/// `BATCH_HEADER_LEN` bytes (or fewer at the end of the file).
pub(crate) fn window_len(head: &[u8]) -> usize {
    claimed_len(head).unwrap_or(0) + LOOK_AHEAD_BYTES
}

/// The length the header at the start of `bytes` claims, if believable.
fn claimed_len(bytes: &[u8]) -> Option<usize> {
    let header = BatchHeader::parse(bytes).ok()?;
    let len = header.total_len();
    (header.batch_length >= BATCH_LENGTH_MIN && len <= BATCH_BYTES_MAX).then_some(len)
}

/// Classifies `bytes`: the file from byte `pos` (where the scan stopped) on, at most
/// `window_len` long; `to_eof` says whether they reach the end of the file.
/// `next_offset` is the offset the scan expected at `pos`.
pub(crate) fn classify(bytes: &[u8], pos: u64, to_eof: bool, next_offset: i64) -> Tail {
    if let Some((at, offset)) = valid_batch_after(bytes, next_offset) {
        return Tail::Damaged(format!(
            "a valid batch (offset {offset}) follows at byte {}",
            pos + at as u64
        ));
    }
    if is_zero(&bytes[..LOG_OVERHEAD.min(bytes.len())]) {
        return Tail::Torn;
    }
    if let Some(len) = crc_matching_len(bytes) {
        return Tail::Damaged(format!(
            "the batch here is whole ({len} bytes match its CRC32C) but its header is damaged"
        ));
    }
    let Some(len) = claimed_len(bytes) else {
        // Not a batch start, and no CRC-covered span from here: the remains of a write
        // cut inside its header, or noise in unwritten space.
        return Tail::Torn;
    };
    if len > bytes.len() {
        return if to_eof {
            Tail::Torn
        } else {
            Tail::Damaged(format!("a batch of {len} bytes could not be checked"))
        };
    }
    if runs_out_into_zeros(bytes, pos, len) {
        Tail::Torn
    } else {
        Tail::Damaged(format!(
            "the batch here is complete ({len} bytes, no unwritten sector in it) but fails its CRC32C"
        ))
    }
}

/// A batch that validates, at a position after 0 in `bytes`, with an offset at or after
/// `next_offset`: data written after the damage.
fn valid_batch_after(bytes: &[u8], next_offset: i64) -> Option<(usize, i64)> {
    const MAGIC_AT: usize = 16;
    (1..bytes.len().saturating_sub(BATCH_HEADER_LEN - 1))
        .filter(|at| bytes[at + MAGIC_AT] == batch::MAGIC_V2 as u8)
        .find_map(|at| {
            let len = claimed_len(&bytes[at..])?;
            let whole = bytes.get(at..at + len)?;
            let header = batch::validate(whole).ok()?;
            (header.base_offset >= next_offset).then_some((at, header.base_offset))
        })
}

/// The whole-batch length whose CRC32C matches the CRC field at the start of `bytes`
/// (a batch written whole whose length, offset or magic was damaged).
fn crc_matching_len(bytes: &[u8]) -> Option<usize> {
    const CRC_AT: usize = 17;
    const COVERED_FROM: usize = 21;
    let field = bytes.get(CRC_AT..COVERED_FROM)?;
    let stored = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    let mut crc = crc32c::crc32c(bytes.get(COVERED_FROM..BATCH_HEADER_LEN)?);
    if crc == stored {
        return Some(BATCH_HEADER_LEN);
    }
    let limit = bytes.len().min(BATCH_BYTES_MAX);
    for end in BATCH_HEADER_LEN + 1..=limit {
        crc = crc32c::crc32c_append(crc, &bytes[end - 1..end]);
        if crc == stored {
            return Some(end);
        }
    }
    None
}

/// Whether the batch of `len` bytes at the start of `bytes` (file position `pos`) ends
/// in unwritten sectors: its bytes are zeros from a sector boundary inside it (at least
/// `TORN_ZEROS_MIN` of them) through the end of the window.
fn runs_out_into_zeros(bytes: &[u8], pos: u64, len: usize) -> bool {
    let zeros_from = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let boundary = (pos + zeros_from as u64).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    boundary + TORN_ZEROS_MIN <= pos + len as u64
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    fn batch(base_offset: i64, records: usize, value_len: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000, 256);
        for i in 0..records {
            let value = vec![b'a' + (i % 26) as u8; value_len];
            b.push(None, Some(&value), 1_000, &[]);
        }
        let mut bytes = b.finish().expect("records pushed");
        batch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    /// A batch of about 2 KiB at file position 4096, then preallocated zeros.
    fn tail() -> (Vec<u8>, u64) {
        let mut bytes = batch(7, 20, 100);
        assert!(bytes.len() > 1_500);
        bytes.resize(bytes.len() + LOOK_AHEAD_BYTES, 0);
        (bytes, 4096)
    }

    #[test]
    fn unwritten_space_and_writes_cut_at_a_sector_are_torn() {
        let (whole, pos) = tail();
        assert_eq!(classify(&vec![0; 5000], pos, true, 7), Tail::Torn);
        let len = claimed_len(&whole).expect("a batch");
        // The file ends inside the batch.
        for cut in [13, 100, len - 1] {
            assert_eq!(
                classify(&whole[..cut], pos, true, 7),
                Tail::Torn,
                "cut {cut}"
            );
        }
        // Sectors from 512 or 1024 on never reached the disk.
        for sector in [512, 1024] {
            let mut torn = whole.clone();
            torn[sector..].fill(0);
            assert_eq!(classify(&torn, pos, false, 7), Tail::Torn, "from {sector}");
        }
        // Noise that is no batch header, in unwritten space.
        let mut noise = vec![0u8; 4096];
        noise[3] = 0x10;
        assert_eq!(classify(&noise, pos, false, 7), Tail::Torn);
    }

    #[test]
    fn a_flipped_bit_in_a_written_batch_is_damage() {
        let (whole, pos) = tail();
        let len = claimed_len(&whole).expect("a batch");
        // Inside the CRC-covered bytes, in the CRC itself, in the length, the magic,
        // the base offset: each leaves a batch that was written whole.
        for (at, bit) in [
            (len / 2, 3),
            (len - 2, 0),
            (18, 5),
            (10, 1),
            (16, 0),
            (7, 2),
        ] {
            let mut bad = whole.clone();
            bad[at] ^= 1 << bit;
            let got = classify(&bad, pos, false, 7);
            assert!(matches!(got, Tail::Damaged(_)), "byte {at}: {got:?}");
        }
    }

    #[test]
    fn a_valid_batch_after_the_bad_one_is_damage_even_after_zeros() {
        let first = batch(7, 3, 10);
        let second = batch(10, 3, 10);
        let mut bytes = vec![0u8; 600];
        bytes.extend_from_slice(&second);
        bytes.resize(bytes.len() + 1000, 0);
        let got = classify(&bytes, 0, false, 7);
        assert_eq!(
            got,
            Tail::Damaged("a valid batch (offset 10) follows at byte 600".into())
        );
        // A stale batch from before (a lower offset) does not count.
        let mut stale = vec![0u8; 600];
        stale.extend_from_slice(&first);
        assert_eq!(classify(&stale, 0, false, 20), Tail::Torn);
    }

    #[test]
    fn any_bytes_are_classified_without_panicking() {
        let (whole, _) = tail();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for case in 0..3_000 {
            let len = (next() % 3_000) as usize;
            let mut bytes: Vec<u8> = match case % 3 {
                0 => (0..len).map(|_| next() as u8).collect(),
                _ => whole[..len.min(whole.len())].to_vec(),
            };
            for _ in 0..(next() % 4) {
                if !bytes.is_empty() {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
            }
            let pos = next() % (1 << 30);
            let _ = classify(&bytes, pos, case % 2 == 0, (next() % 100) as i64);
            let _ = window_len(&bytes);
        }
    }
}
