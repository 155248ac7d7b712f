//! Engine tests of SNS: topics, subscriptions, publish and the fan-out worker over two shards.
