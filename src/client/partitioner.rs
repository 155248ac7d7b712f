//! Kafka's default partitioner for the native client: the same function the broker
//! uses (`peregrine_shards::partitioner`, tested there against Kafka's and librdkafka's
//! published vectors), so keyed messages land where a Kafka producer would put them.

pub use peregrine_shards::partitioner::{murmur2, partition_for_key};
