//! `peregrine consume`: print messages of a topic (`--isolation committed`: only what
//! Kafka transactions committed, never a transaction marker).

use super::{CliResult, BOOTSTRAP_DEFAULT};
use crate::client::consumer::{Consumer, GroupConfig, StartFrom};
use crate::client::records::InRecord;
use crate::native::messages::Isolation;
use clap::Args;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest one poll waits for new messages.
const POLL_WAIT: Duration = Duration::from_millis(200);

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// earliest | latest | OFFSET | @UNIX_MS (for partitions without a committed offset).
    #[arg(long, default_value = "earliest")]
    pub from: StartFrom,
    /// Read only this partition (not with --group).
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Join this consumer group; commits after every printed batch.
    #[arg(long)]
    pub group: Option<String>,
    /// committed: only records of committed Kafka transactions (and non-transactional
    /// ones), up to the last stable offset; uncommitted: every record.
    #[arg(long, default_value = "uncommitted", value_parser = parse_isolation)]
    pub isolation: Isolation,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Keep waiting for new messages instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// Output per message: %t topic, %p partition, %o offset, %k key, %v value,
    /// %T timestamp (ms), %% a percent sign.
    #[arg(long, default_value = "%v")]
    pub format: String,
    /// Group session timeout.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u32,
    #[arg(long)]
    pub shard_aware: bool,
    #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap: String,
    #[command(flatten)]
    pub tls: super::tls::TlsClientArgs,
    #[command(flatten)]
    pub auth: super::auth::AuthClientArgs,
}

fn parse_isolation(s: &str) -> Result<Isolation, String> {
    match s {
        "committed" => Ok(Isolation::Committed),
        "uncommitted" => Ok(Isolation::Uncommitted),
        _ => Err(format!("'{s}' is not committed or uncommitted")),
    }
}

pub fn format_record(format: &str, topic: &str, r: &InRecord) -> String {
    let mut out = String::with_capacity(format.len() + 32);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let lossy = |b: &Option<bytes::Bytes>| {
            b.as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned()
        };
        match chars.next() {
            Some('t') => out.push_str(topic),
            Some('p') => out.push_str(&r.partition.to_string()),
            Some('o') => out.push_str(&r.offset.to_string()),
            Some('k') => out.push_str(&lossy(&r.key)),
            Some('v') => out.push_str(&lossy(&r.value)),
            Some('T') => out.push_str(&r.timestamp_ms.to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

pub fn run(args: ConsumeArgs) -> CliResult {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut client = super::tls::connect(&args.bootstrap, &args.tls, &args.auth)?;
    client.set_shard_aware(args.shard_aware);
    let mut consumer = match &args.group {
        Some(group) => Consumer::join_with(
            client,
            &args.topic,
            args.from,
            GroupConfig {
                group: group.clone(),
                client_id: "peregrine-cli".into(),
                session_timeout_ms: args.session_timeout_ms,
                rebalance_timeout_ms: args.session_timeout_ms,
            },
            args.isolation,
        )?,
        None => Consumer::assign_with(
            client,
            &args.topic,
            args.partition.map(|p| vec![p]),
            args.from,
            args.isolation,
        )?,
    };
    let stdout = std::io::stdout();
    let mut printed: u64 = 0;
    let max = args.max.unwrap_or(u64::MAX);
    while printed < max && !stop.load(Ordering::Relaxed) {
        let records = consumer.poll(POLL_WAIT)?;
        if records.is_empty() {
            if !args.follow && consumer.caught_up()? {
                break;
            }
            continue;
        }
        let take = (max - printed) as usize;
        let mut out = stdout.lock();
        for r in records.iter().take(take) {
            writeln!(out, "{}", format_record(&args.format, &args.topic, r))?;
            printed += 1;
        }
        out.flush()?;
        drop(out);
        // Commit only what was printed: step back over what --max cut off.
        for r in records.iter().skip(take) {
            consumer.rewind(r.partition, r.offset);
        }
        consumer.commit()?;
    }
    consumer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_reads_as_its_two_names_only() {
        assert_eq!(parse_isolation("committed"), Ok(Isolation::Committed));
        assert_eq!(parse_isolation("uncommitted"), Ok(Isolation::Uncommitted));
        assert!(parse_isolation("read_committed").is_err());
    }
}
