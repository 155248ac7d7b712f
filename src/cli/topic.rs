//! `peregrine topic ...`

use super::{opt, CliResult};
use crate::native::messages::TopicSpec;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Delete whole segments older than this.
        #[arg(long)]
        retention_ms: Option<i64>,
        /// Delete the oldest whole segments while a partition is larger than this.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Roll to a new segment file at this size (default 1 GiB).
        #[arg(long)]
        segment_bytes: Option<u64>,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// List topics.
    List {
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Per partition: owning shard, start offset, end offset, bytes.
    Describe {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Delete a topic and its data.
    Delete {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
}

pub fn run(cmd: TopicCommand) -> CliResult {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            broker,
        } => {
            let spec = TopicSpec {
                name: name.clone(),
                partitions,
                retention_ms,
                retention_bytes,
                segment_bytes,
            };
            broker.connect()?.create_topic(spec)?;
            println!("created topic {name} with {partitions} partitions");
        }
        TopicCommand::List { broker } => {
            for t in broker.connect()?.metadata(None)? {
                println!("{}\tpartitions={}", t.name, t.owners.len());
            }
        }
        TopicCommand::Describe { name, broker } => {
            let (topic, partitions) = broker.connect()?.describe_topic(&name)?;
            println!(
                "topic {} partitions={} retention_ms={} retention_bytes={} segment_bytes={}",
                topic.name,
                topic.owners.len(),
                opt(topic.retention_ms),
                opt(topic.retention_bytes),
                topic.segment_bytes
            );
            println!("partition\tshard\tstart\tend\tbytes\tsegments");
            for p in partitions {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    p.partition, p.shard, p.start_offset, p.end_offset, p.size_bytes, p.segments
                );
            }
        }
        TopicCommand::Delete { name, broker } => {
            broker.connect()?.delete_topic(&name)?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
