//! FIFO queues' wire-level rules: content-based deduplication ids, sequence numbers,
//! and where a message keeps its MessageDeduplicationId.

use sha2::{Digest, Sha256};

/// The header a FIFO message keeps its MessageDeduplicationId in (ReceiveMessage
/// answers it). Its `:` keeps it apart from every SQS attribute name, as
/// `attributes::TYPES_HEADER`.
pub const DEDUP_ID_HEADER: &str = "sqs:deduplication-id";

/// The header a standard queue's message keeps its MessageGroupId in (SQS's fair
/// queues: the group is returned on receive, it orders nothing). FIFO queues keep theirs
/// in the engine's group id.
pub const GROUP_ID_HEADER: &str = "sqs:message-group-id";

/// What separates the group from the id in a per-group deduplication key: no
/// MessageGroupId can hold it (printable ASCII only).
const SCOPE_SEPARATOR: char = '\u{0}';

/// The MessageDeduplicationId of a queue with ContentBasedDeduplication: the SHA-256 of
/// the body, hex (SQS hashes the body only, not the attributes).
pub fn content_dedup_id(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key the engine deduplicates by: the id itself (DeduplicationScope `queue`), or
/// the group and the id (`messageGroup`: the same id in two groups is two messages).
pub fn dedup_key(dedup_id: &str, group_id: &str, per_group: bool) -> String {
    if per_group {
        format!("{group_id}{SCOPE_SEPARATOR}{dedup_id}")
    } else {
        dedup_id.to_owned()
    }
}

/// A message's SequenceNumber: its id in the queue, as the 20 digits SQS answers
/// (ids grow with every send, so numbers grow within each group as SQS promises).
pub fn sequence_number(message_id: u64) -> String {
    format!("{message_id:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_are_the_sha256_of_the_body() {
        // `printf 'hello' | sha256sum`
        assert_eq!(
            content_dedup_id("hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_ne!(content_dedup_id("a"), content_dedup_id("b"));
    }

    #[test]
    fn per_group_keys_tell_groups_apart() {
        assert_eq!(dedup_key("d", "g", false), "d");
        assert_ne!(dedup_key("d", "g1", true), dedup_key("d", "g2", true));
        // "g" + "1d" and "g1" + "d" must not meet.
        assert_ne!(dedup_key("1d", "g", true), dedup_key("d", "g1", true));
    }

    #[test]
    fn sequence_numbers_are_20_digits_in_id_order() {
        assert_eq!(sequence_number(9), "00000000000000000009");
        assert_eq!(sequence_number(u64::MAX).len(), 20);
        assert!(sequence_number(10) > sequence_number(9));
    }
}
