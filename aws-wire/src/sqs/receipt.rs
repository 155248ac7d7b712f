//! Receipt handles, message ids and ListQueues page tokens: opaque strings to the
//! client, exact values to us.
//!
//! A receipt is base64url (no padding) of 25 bytes: a version byte (1), then the
//! queue's catalog id, the message id and the lease handle, each u64 big-endian. The
//! catalog id makes a receipt from a deleted and re-created queue refer to nothing;
//! the message id lets the engine check that the lease still holds that message.
//! Anything else decodes to `None`, and the front end answers ReceiptHandleIsInvalid.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The receipt format this code writes.
const RECEIPT_VERSION: u8 = 1;
const RECEIPT_LEN: usize = 1 + 3 * 8;
/// Longest receipt text worth decoding (25 bytes are 34 characters).
const RECEIPT_TEXT_MAX: usize = 64;
/// Longest page token worth decoding: the base64 of an 80-byte queue name.
const TOKEN_TEXT_MAX: usize = 128;

/// What a receipt handle names: one lease of one message of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub queue_id: u64,
    pub message_id: u64,
    pub handle: u64,
}

impl Receipt {
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; RECEIPT_LEN];
        bytes[0] = RECEIPT_VERSION;
        bytes[1..9].copy_from_slice(&self.queue_id.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.message_id.to_be_bytes());
        bytes[17..25].copy_from_slice(&self.handle.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `None` for anything `encode` did not write.
    pub fn decode(text: &str) -> Option<Receipt> {
        if text.len() > RECEIPT_TEXT_MAX {
            return None;
        }
        // Decoded on the stack (room for base64's estimate of 34 characters); a text
        // that decodes to any other length is refused.
        let mut bytes = [0u8; RECEIPT_LEN + 3];
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes).ok()?;
        if len != RECEIPT_LEN {
            return None;
        }
        if bytes[0] != RECEIPT_VERSION {
            return None;
        }
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        Some(Receipt {
            queue_id: u64_at(1),
            message_id: u64_at(9),
            handle: u64_at(17),
        })
    }
}

/// A MessageId: the UUID form of `queue_id << 64 | id`, the same on every receive
/// and after a restart.
pub fn message_id(queue_id: u64, id: u64) -> String {
    uuid((u128::from(queue_id) << 64) | u128::from(id))
}

/// `value` written as a UUID (`8-4-4-4-12` lowercase hex digits).
pub fn uuid(value: u128) -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::from_u128(value)
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

/// The NextToken of a ListQueues page that ends at `last_name`.
pub fn next_token(last_name: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_name)
}

/// The last name of the previous page; `None` for a token `next_token` did not write.
pub fn parse_next_token(token: &str) -> Option<String> {
    if token.is_empty() || token.len() > TOKEN_TEXT_MAX {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip() {
        for receipt in [
            Receipt {
                queue_id: 0,
                message_id: 0,
                handle: 0,
            },
            Receipt {
                queue_id: 7,
                message_id: 1 << 40,
                handle: 3,
            },
            Receipt {
                queue_id: u64::MAX,
                message_id: u64::MAX,
                handle: u64::MAX,
            },
        ] {
            let text = receipt.encode();
            assert_eq!(text.len(), 34);
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(Receipt::decode(&text), Some(receipt));
        }
    }

    #[test]
    fn anything_else_is_no_receipt() {
        let good = Receipt {
            queue_id: 1,
            message_id: 2,
            handle: 3,
        }
        .encode();
        let mut other_version = URL_SAFE_NO_PAD.decode(&good).expect("base64");
        other_version[0] = 2;
        let short = URL_SAFE_NO_PAD.encode([1u8; 24]);
        let long = URL_SAFE_NO_PAD.encode([1u8; 26]);
        for bad in [
            String::new(),
            "garbage".into(),
            "bogus".into(),
            format!("{good}="),
            format!("{good}A"),
            good.replace('A', "+"),
            URL_SAFE_NO_PAD.encode(other_version),
            short,
            long,
            "A".repeat(10_000),
        ] {
            assert_eq!(Receipt::decode(&bad), None, "{bad}");
        }
    }

    #[test]
    fn message_ids_are_uuids_of_queue_and_message() {
        assert_eq!(message_id(0, 0), "00000000-0000-0000-0000-000000000000");
        assert_eq!(message_id(1, 2), "00000000-0000-0001-0000-000000000002");
        assert_eq!(
            message_id(u64::MAX, 0xabc),
            "ffffffff-ffff-ffff-0000-000000000abc"
        );
        assert_ne!(message_id(1, 2), message_id(2, 1));
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_foreign_text() {
        let name = "q".repeat(80);
        assert_eq!(parse_next_token(&next_token(&name)), Some(name));
        assert_eq!(parse_next_token(&next_token("p-1")).as_deref(), Some("p-1"));
        assert_eq!(parse_next_token(""), None);
        assert_eq!(parse_next_token("!!"), None);
        assert_eq!(parse_next_token(&URL_SAFE_NO_PAD.encode([0xff])), None);
        assert_eq!(parse_next_token(&"A".repeat(1000)), None);
    }
}
