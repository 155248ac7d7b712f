//! A pipelined producer: buffers records per partition, sends a batch when it is full,
//! keeps many batches in flight per connection, and checks every acknowledgement.

use super::partitioner::partition_for_key;
use super::records::{encode_batch, OutRecord};
use super::{check, Client, ClientError};
use crate::native::messages::{Acks, Request, Response};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Batches in flight per connection before the producer waits for an answer.
pub const IN_FLIGHT_MAX: usize = 64;

pub struct ProducerConfig {
    pub acks: Acks,
    /// Records per batch.
    pub batch_records: usize,
    /// Bytes per batch (record values and keys), whichever limit comes first.
    pub batch_bytes: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Leader,
            batch_records: 1000,
            batch_bytes: 512 * 1024,
        }
    }
}

/// An acknowledged batch: partition and the offsets the broker gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

pub struct Producer<'c> {
    client: &'c mut Client,
    topic: String,
    partitions: i32,
    config: ProducerConfig,
    buffers: BTreeMap<i32, (Vec<OutRecord>, usize)>,
    /// Request ids awaiting an answer, per connection (shard), with their partition.
    in_flight: HashMap<Option<u32>, VecDeque<(u64, i32)>>,
    acked: Vec<Acked>,
    round_robin: i32,
}

impl<'c> Producer<'c> {
    pub fn new(
        client: &'c mut Client,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Producer<'c>, ClientError> {
        let info = client.topic(topic)?;
        Ok(Producer {
            client,
            topic: topic.to_string(),
            partitions: info.owners.len() as i32,
            config,
            buffers: BTreeMap::new(),
            in_flight: HashMap::new(),
            acked: Vec::new(),
            round_robin: 0,
        })
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Queues one record: to `partition` if given, else by key (Kafka's partitioner),
    /// else round robin. Sends the partition's batch once it is full.
    pub fn send(&mut self, partition: Option<i32>, record: OutRecord) -> Result<i32, ClientError> {
        let p = match (partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => {
                self.round_robin = (self.round_robin + 1) % self.partitions.max(1);
                self.round_robin
            }
        };
        if p < 0 || p >= self.partitions {
            return Err(ClientError::Protocol(format!(
                "topic '{}' has no partition {p} (it has {})",
                self.topic, self.partitions
            )));
        }
        let size = record.value.len() + record.key.as_ref().map_or(0, Bytes::len);
        let (records, bytes) = self.buffers.entry(p).or_default();
        records.push(record);
        *bytes += size;
        if records.len() >= self.config.batch_records || *bytes >= self.config.batch_bytes {
            self.send_batch(p)?;
        }
        Ok(p)
    }

    fn send_batch(&mut self, partition: i32) -> Result<(), ClientError> {
        let Some((records, _)) = self.buffers.remove(&partition) else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let batch = encode_batch(&records)?;
        let request = Request::Produce {
            topic: self.topic.clone(),
            partition,
            acks: self.config.acks,
        };
        let (shard, conn) = self.client.connection_for(&self.topic, partition)?;
        let id = conn.send(request, &[&batch])?;
        if self.config.acks != Acks::None {
            let queue = self.in_flight.entry(shard).or_default();
            queue.push_back((id, partition));
            if queue.len() >= IN_FLIGHT_MAX {
                self.wait_one(shard)?;
            }
        }
        Ok(())
    }

    fn wait_one(&mut self, shard: Option<u32>) -> Result<(), ClientError> {
        let conn = self.client.connection(shard)?;
        let (id, response, _) = conn.recv()?;
        let queue = self.in_flight.entry(shard).or_default();
        let Some(pos) = queue.iter().position(|(i, _)| *i == id) else {
            check(response)?;
            return Err(ClientError::Protocol(format!(
                "answer for unknown request {id}"
            )));
        };
        let (_, partition) = queue.remove(pos).unwrap_or((id, -1));
        match check(response)? {
            Response::Produced {
                base_offset,
                last_offset,
            } => {
                self.acked.push(Acked {
                    partition,
                    base_offset,
                    last_offset,
                });
                Ok(())
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected answer to produce: {other:?}"
            ))),
        }
    }

    /// Sends every buffered record and waits for all acknowledgements.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        let partitions: Vec<i32> = self.buffers.keys().copied().collect();
        for p in partitions {
            self.send_batch(p)?;
        }
        let shards: Vec<Option<u32>> = self.in_flight.keys().copied().collect();
        for shard in shards {
            while self.in_flight.get(&shard).is_some_and(|q| !q.is_empty()) {
                self.wait_one(shard)?;
            }
        }
        Ok(())
    }

    /// Acknowledged batches so far (drained).
    pub fn take_acked(&mut self) -> Vec<Acked> {
        std::mem::take(&mut self.acked)
    }
}
