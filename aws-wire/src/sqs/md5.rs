//! MD5OfMessageBody and MD5OfMessageAttributes, which SDKs recompute and compare.
//!
//! The attributes digest (as the AWS SDK for Java's `SQSMessageMD5ChecksumHandler`
//! computes it): attributes sorted by name (UTF-8 bytes); for each, the name, the whole
//! DataType (label included) and the value, each as a u32 big-endian length and its
//! bytes, with one transport byte before the value: 1 for a StringValue, 2 for a
//! BinaryValue (raw bytes, not base64).

use md5::{Digest, Md5};

use super::model::{AttributeValue, MessageAttribute};

/// Transport byte of a StringValue (String and Number types).
const STRING_TRANSPORT: u8 = 1;
/// Transport byte of a BinaryValue.
const BINARY_TRANSPORT: u8 = 2;

/// Lowercase hex MD5 of `bytes` (MD5OfMessageBody: of the body's UTF-8 bytes).
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// MD5OfMessageAttributes; `None` when there are no attributes (the field is omitted).
pub fn md5_of_attributes(attrs: &[MessageAttribute]) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let mut sorted: Vec<&MessageAttribute> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut md5 = Md5::new();
    for attr in sorted {
        length_prefixed(&mut md5, attr.name.as_bytes());
        length_prefixed(&mut md5, attr.data_type.as_bytes());
        match &attr.value {
            AttributeValue::String(text) => {
                md5.update([STRING_TRANSPORT]);
                length_prefixed(&mut md5, text.as_bytes());
            }
            AttributeValue::Binary(bytes) => {
                md5.update([BINARY_TRANSPORT]);
                length_prefixed(&mut md5, bytes);
            }
        }
    }
    Some(hex(&md5.finalize()))
}

/// Attribute parts are far below 4 GiB (a message is at most 256 KiB).
fn length_prefixed(md5: &mut Md5, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    md5.update(len.to_be_bytes());
    md5.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(name: &str, data_type: &str, value: &str) -> MessageAttribute {
        MessageAttribute {
            name: name.into(),
            data_type: data_type.into(),
            value: AttributeValue::String(value.into()),
        }
    }

    fn vectors() -> [MessageAttribute; 3] {
        [
            string("attribName1", "String", "attribValue 1"),
            string(
                "customNumberTypeAttrib",
                "Number.float",
                "4563442423554324324264524243.32543234",
            ),
            MessageAttribute {
                name: "binaryAttribute".into(),
                data_type: "Binary".into(),
                value: AttributeValue::Binary(b"Hello binary world!".to_vec()),
            },
        ]
    }

    #[test]
    fn one_string_attribute() {
        let [s, _, _] = vectors();
        assert_eq!(
            md5_of_attributes(&[s]).as_deref(),
            Some("19e27d4e946b072f3f58da80d94fd778")
        );
    }

    #[test]
    fn one_number_attribute_with_a_custom_label() {
        let [_, n, _] = vectors();
        assert_eq!(
            md5_of_attributes(&[n]).as_deref(),
            Some("9fe1b90bbd9965bdf77bac517c7d2495")
        );
    }

    #[test]
    fn one_binary_attribute() {
        let [_, _, b] = vectors();
        assert_eq!(
            md5_of_attributes(&[b]).as_deref(),
            Some("31a92b15d92f8db860eda32aceb656c3")
        );
    }

    #[test]
    fn all_three_in_any_order() {
        let [s, n, b] = vectors();
        let expected = Some("c932db14a896c663f83c260297d594ff");
        assert_eq!(
            md5_of_attributes(&[s.clone(), n.clone(), b.clone()]).as_deref(),
            expected
        );
        assert_eq!(md5_of_attributes(&[b, s, n]).as_deref(), expected);
    }

    #[test]
    fn no_attributes_no_digest() {
        assert_eq!(md5_of_attributes(&[]), None);
    }

    #[test]
    fn body_digest_is_lowercase_hex_md5() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }
}
