//! `peregrine produce`: stdin lines to a topic, one message per line.

use super::{CliResult, BOOTSTRAP_DEFAULT};
use crate::args::AcksArg;
use crate::client::producer::{Producer, ProducerConfig};
use crate::client::records::OutRecord;
use bytes::Bytes;
use clap::Args;
use std::io::BufRead;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// The same key for every message.
    #[arg(long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Send everything to this partition (default: by key, else round robin).
    #[arg(long)]
    pub partition: Option<i32>,
    #[arg(long, value_enum, default_value = "leader")]
    pub acks: AcksArg,
    /// Messages per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Send each partition's batches straight to its owning shard's port.
    #[arg(long)]
    pub shard_aware: bool,
    #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap: String,
    #[command(flatten)]
    pub tls: super::tls::TlsClientArgs,
    #[command(flatten)]
    pub auth: super::auth::AuthClientArgs,
}

pub fn run(args: ProduceArgs) -> CliResult {
    let mut client = super::tls::connect(&args.bootstrap, &args.tls, &args.auth)?;
    client.set_shard_aware(args.shard_aware);
    let config = ProducerConfig {
        acks: args.acks.into(),
        batch_records: args.batch.max(1),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(&mut client, &args.topic, config)?;
    let stdin = std::io::stdin();
    let mut sent: u64 = 0;
    for line in stdin.lock().lines() {
        let line = line?;
        let (key, value) = match (&args.key, &args.key_separator) {
            (Some(k), _) => (Some(k.clone()), line),
            (None, Some(sep)) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            (None, None) => (None, line),
        };
        let record = OutRecord {
            key: key.map(Bytes::from),
            value: Bytes::from(value),
            timestamp_ms: crate::time::now_ms(),
        };
        producer.send(args.partition, record)?;
        sent += 1;
    }
    producer.flush()?;
    tracing::info!(messages = sent, topic = %args.topic, "produced");
    Ok(())
}
