//! Kafka's default partitioner: murmur2 of the key, made positive, modulo the count,
//! so keyed messages land where a Kafka producer (Java, or librdkafka's
//! `murmur2_random`) would put them. Owned by no shard: pure functions that the broker's
//! front ends (exchange routing) and the native client share.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (input, want) in cases {
            let got = murmur2(input);
            assert_eq!(got, want, "murmur2({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn murmur2_matches_librdkafka() {
        // librdkafka's src/rdmurmur2.c unittest_murmur2 (java_murmur2_results): every
        // tail length 0..=3 and the empty key.
        let cases: [(&str, u32); 11] = [
            ("kafka", 0xd067_cf64),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            ("PreAmbleWillBeRemoved,ThePrePartThatIs", 0x7842_4f1c),
            ("reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62_b377),
            ("eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4_e09e),
            ("AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8_b43f),
            ("", 0x106e_08d9),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()) as u32, want, "murmur2({input:?})");
        }
    }

    #[test]
    fn partitions_are_the_positive_hash_modulo_the_count() {
        // Hashes above: "kafka" 0xd067cf64 is negative, so its sign bit is dropped
        // (0x5067cf64 = 1348980580); "1234" 0x9fc97b14 -> 0x1fc97b14 = 533297940.
        assert_eq!(partition_for_key(b"kafka", 7), 3);
        assert_eq!(partition_for_key(b"kafka", 100), 80);
        assert_eq!(partition_for_key(b"1234", 6), 0);
        assert_eq!(partition_for_key(b"1234", 7), 0);
        assert_eq!(partition_for_key(b"1234", 1), 0);
        // A count of zero (no partitions known yet) still names partition 0.
        assert_eq!(partition_for_key(b"kafka", 0), 0);
    }
}
