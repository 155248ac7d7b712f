//! What a bench message carries so the consumer can measure and check it: the producer,
//! a sequence number and the intended send time, then filler up to `--size`.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of the header at the start of every bench value.
pub const HEADER_LEN: usize = 20;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on one monotonic clock shared by every thread of this process.
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_nanos() as u64
}

/// Starts the shared clock (call before any thread records a time).
pub fn start_clock() {
    let _ = now_ns();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub producer: u32,
    pub seq: u64,
    /// When the message was meant to be sent (ns on `now_ns`'s clock).
    pub sent_ns: u64,
}

pub fn write(value: &mut [u8], stamp: Stamp) {
    value[0..4].copy_from_slice(&stamp.producer.to_le_bytes());
    value[4..12].copy_from_slice(&stamp.seq.to_le_bytes());
    value[12..20].copy_from_slice(&stamp.sent_ns.to_le_bytes());
}

/// One record batch of the messages `seqs` of `producer`, each a copy of `value` stamped
/// with its sequence number and `intended(seq)`, the time it was meant to go; returns
/// the batch and those times.
pub fn stamped_batch(
    value: &mut [u8],
    producer: u32,
    seqs: std::ops::Range<u64>,
    intended: impl Fn(u64) -> u64,
) -> (Option<Vec<u8>>, Vec<u64>) {
    let ts = crate::time::now_ms();
    let count = (seqs.end - seqs.start) as usize;
    let mut builder = peregrine_shards::records::BatchBuilder::new(ts, count * (value.len() + 8));
    let mut sent_ns = Vec::with_capacity(count);
    for seq in seqs {
        let at = intended(seq);
        write(
            value,
            Stamp {
                producer,
                seq,
                sent_ns: at,
            },
        );
        builder.push(None, Some(value), ts, &[]);
        sent_ns.push(at);
    }
    (builder.finish(), sent_ns)
}

pub fn read(value: &[u8]) -> Option<Stamp> {
    let h = value.get(..HEADER_LEN)?;
    Some(Stamp {
        producer: u32::from_le_bytes(h[0..4].try_into().ok()?),
        seq: u64::from_le_bytes(h[4..12].try_into().ok()?),
        sent_ns: u64::from_le_bytes(h[12..20].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut v = vec![0u8; 100];
        let s = Stamp {
            producer: 3,
            seq: 99,
            sent_ns: 123_456,
        };
        write(&mut v, s);
        assert_eq!(read(&v), Some(s));
        assert_eq!(read(&v[..10]), None);
    }
}
