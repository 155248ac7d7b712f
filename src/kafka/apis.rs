//! The APIs and version ranges this broker implements, as ApiVersions advertises them.
//! Ranges stop below versions that need what the broker lacks (topic ids in Fetch v13+,
//! Produce v10+ and Metadata v13), and include every version librdkafka 2.x,
//! kafka-python, aiokafka and KafkaJS negotiate.
//!
//! Transactions are the pre-KIP-890 protocol: AddPartitionsToTxn v4+ (broker-to-broker
//! verification), AddOffsetsToTxn v4+, EndTxn v4+ (TRANSACTION_ABORTABLE, an epoch bump
//! per transaction) and InitProducerId v5+ are KIP-890's and not offered; TxnOffsetCommit
//! v4+ likewise. ListTransactions v1+ (duration and id-pattern filters) is not offered.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    // v0 (before pattern types) is gone from Kafka 4 and from the codec.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // v0: the SASL tokens follow bare, outside Kafka requests (see `sasl`).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The version range of an API, if it is implemented.
pub fn range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, ..)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::RequestKind;

    #[test]
    fn every_advertised_version_is_one_the_codec_knows() {
        for (key, min, max) in SUPPORTED {
            let (lo, hi) = (key.valid_versions().min, key.valid_versions().max);
            assert!(
                lo <= *min && *max <= hi,
                "{key:?} {min}-{max} outside {lo}-{hi}"
            );
            assert!(min <= max);
        }
        let _ = std::mem::size_of::<RequestKind>();
    }
}
