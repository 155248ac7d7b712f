//! SNS delivery: the fan-out worker (`fanout`) that reads each SNS topic's backing log
//! on its owner shard and delivers every record to the topic's subscriptions
//! (`targets`: SQS queues, Kafka topics, HTTP and HTTPS endpoints through `http_delivery`,
//! which trusts what `trust` says), every envelope signed with the broker's key
//! (`signing`).
//! Topics and subscriptions themselves, and publish, are the engine's (`engine::sns`).

mod aws_lc_rsa;
pub mod fanout;
pub mod http_delivery;
pub mod signing;
pub mod targets;
pub mod trust;
