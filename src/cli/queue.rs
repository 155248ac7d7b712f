//! `peregrine queue ...`, `publish`, `receive`, `ack` and `nack`: message queues from
//! the command line.

use super::{opt, CliResult};
use crate::native::messages::{BindingSpec, ExchangeType, PublishSpec, QueueOverflow, QueueSpec};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufRead, Write};

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Declare a queue (the same settings again is a no-op; other settings are refused).
    Declare {
        name: String,
        /// Deliver higher priorities first, up to this one (0-255; 0: no priorities).
        #[arg(long, default_value_t = 0)]
        max_priority: u8,
        /// Messages older than this are never delivered.
        #[arg(long)]
        ttl_ms: Option<u64>,
        /// How long a received message stays leased before it is redelivered.
        #[arg(long)]
        visibility_timeout_ms: Option<u64>,
        /// After this many deliveries without an ack, dead-letter the message.
        #[arg(long)]
        max_deliveries: Option<u32>,
        /// Queue that rejected, expired and over-delivered messages move to.
        #[arg(long)]
        dead_letter: Option<String>,
        /// Strict order per message group, a group waits while it has messages in flight, deduplication.
        #[arg(long)]
        fifo: bool,
        /// Most messages waiting (ready or delayed); past it, `--overflow` applies.
        #[arg(long)]
        max_length: Option<u64>,
        /// Most body bytes waiting; past it, `--overflow` applies.
        #[arg(long)]
        max_bytes: Option<u64>,
        /// What a publish to a full queue does: refused (`reject-publish`), or the
        /// oldest waiting messages are dead-lettered (`drop-head`, RabbitMQ's default).
        #[arg(long, value_enum, default_value_t = OverflowArg::DropHead)]
        overflow: OverflowArg,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// List queues and their settings.
    List {
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Ready, in flight, delayed, dead-lettered, waiting consumers.
    Stats {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Drop every ready and delayed message.
    Purge {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Delete a queue and its messages.
    Delete {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OverflowArg {
    RejectPublish,
    DropHead,
}

pub fn run(cmd: QueueCommand) -> CliResult {
    match cmd {
        QueueCommand::Declare {
            name,
            max_priority,
            ttl_ms,
            visibility_timeout_ms,
            max_deliveries,
            dead_letter,
            fifo,
            max_length,
            max_bytes,
            overflow,
            broker,
        } => {
            let spec = QueueSpec {
                name: name.clone(),
                max_priority,
                ttl_ms,
                visibility_timeout_ms,
                max_deliveries,
                dead_letter,
                fifo,
                max_length,
                max_bytes,
                overflow: match overflow {
                    OverflowArg::RejectPublish => QueueOverflow::RejectPublish,
                    OverflowArg::DropHead => QueueOverflow::DropHead,
                },
            };
            broker.connect()?.declare_queue(spec)?;
            println!("declared queue {name}");
        }
        QueueCommand::List { broker } => {
            println!(
                "NAME\tMAX_PRIORITY\tTTL_MS\tVISIBILITY_MS\tMAX_DELIVERIES\tDEAD_LETTER\tFIFO\tMAX_LENGTH\tMAX_BYTES\tOVERFLOW"
            );
            for q in broker.connect()?.list_queues()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:?}",
                    q.name,
                    q.max_priority,
                    opt(q.ttl_ms),
                    opt(q.visibility_timeout_ms),
                    opt(q.max_deliveries),
                    opt(q.dead_letter),
                    q.fifo,
                    opt(q.max_length),
                    opt(q.max_bytes),
                    q.overflow
                );
            }
        }
        QueueCommand::Stats { name, broker } => {
            let s = broker.connect()?.queue_stats(&name)?;
            println!(
                "queue {} ready={} in_flight={} delayed={} dead_lettered={} consumers={}",
                s.name, s.ready, s.in_flight, s.delayed, s.dead_lettered, s.consumers
            );
        }
        QueueCommand::Purge { name, broker } => {
            let n = broker.connect()?.purge_queue(&name)?;
            println!("purged {n} messages from {name}");
        }
        QueueCommand::Delete { name, broker } => {
            broker.connect()?.delete_queue(&name)?;
            println!("deleted queue {name}");
        }
    }
    Ok(())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeTypeArg {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl From<ExchangeTypeArg> for ExchangeType {
    fn from(t: ExchangeTypeArg) -> ExchangeType {
        match t {
            ExchangeTypeArg::Direct => ExchangeType::Direct,
            ExchangeTypeArg::Fanout => ExchangeType::Fanout,
            ExchangeTypeArg::Topic => ExchangeType::Topic,
            ExchangeTypeArg::Headers => ExchangeType::Headers,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ExchangeCommand {
    /// Declare an exchange (the same type again is a no-op).
    Declare {
        name: String,
        #[arg(long = "type", value_enum)]
        kind: ExchangeTypeArg,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// List exchanges and their bindings.
    List {
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Delete an exchange and its bindings.
    Delete {
        name: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
}

pub fn exchange(cmd: ExchangeCommand) -> CliResult {
    match cmd {
        ExchangeCommand::Declare { name, kind, broker } => {
            broker.connect()?.declare_exchange(&name, kind.into())?;
            println!("declared exchange {name}");
        }
        ExchangeCommand::List { broker } => {
            let (exchanges, bindings) = broker.connect()?.list_exchanges()?;
            for (name, kind) in exchanges {
                println!("{name}\t{}", format!("{kind:?}").to_lowercase());
                for b in bindings.iter().filter(|b| b.exchange == name) {
                    let target = match (&b.queue, &b.topic) {
                        (Some(q), _) => format!("queue {q}"),
                        (_, Some(t)) => format!("topic {t}"),
                        _ => "?".to_string(),
                    };
                    let headers: Vec<String> =
                        b.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "  -> {target} key={} headers=[{}] match={}",
                        b.routing_key,
                        headers.join(","),
                        if b.match_all { "all" } else { "any" }
                    );
                }
            }
        }
        ExchangeCommand::Delete { name, broker } => {
            broker.connect()?.delete_exchange(&name)?;
            println!("deleted exchange {name}");
        }
    }
    Ok(())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchArg {
    All,
    Any,
}

#[derive(Args, Debug)]
pub struct BindArgs {
    #[arg(long)]
    pub exchange: String,
    #[arg(long, conflicts_with = "topic", required_unless_present = "topic")]
    pub queue: Option<String>,
    /// A stream topic: routed messages become records (key = routing key).
    #[arg(long)]
    pub topic: Option<String>,
    /// Direct: the key; topic exchanges: the pattern (`*` one word, `#` any).
    #[arg(long, default_value = "")]
    pub routing_key: String,
    /// Headers exchanges: a `key=value` to match (repeatable).
    #[arg(long = "header", value_parser = header)]
    pub headers: Vec<(String, String)>,
    #[arg(long = "match", value_enum, default_value = "all")]
    pub match_mode: MatchArg,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

fn binding_spec(args: &BindArgs) -> BindingSpec {
    BindingSpec {
        exchange: args.exchange.clone(),
        queue: args.queue.clone(),
        topic: args.topic.clone(),
        routing_key: args.routing_key.clone(),
        headers: args.headers.clone(),
        match_all: args.match_mode == MatchArg::All,
    }
}

pub fn bind(args: BindArgs) -> CliResult {
    args.broker.connect()?.bind(binding_spec(&args))?;
    Ok(())
}

pub fn unbind(args: BindArgs) -> CliResult {
    args.broker.connect()?.unbind(binding_spec(&args))?;
    Ok(())
}

fn header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("header '{s}' is not key=value"))
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The queue to publish to (the default exchange).
    #[arg(
        long,
        conflicts_with = "exchange",
        required_unless_present = "exchange"
    )]
    pub queue: Option<String>,
    /// The exchange to publish through.
    #[arg(long)]
    pub exchange: Option<String>,
    /// Routing key for `--exchange`.
    #[arg(long, default_value = "", requires = "exchange")]
    pub routing_key: String,
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    /// Visible only after this long.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Never delivered after this long.
    #[arg(long)]
    pub ttl_ms: Option<u64>,
    /// A header, `key=value` (repeatable).
    #[arg(long = "header", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// FIFO queues: the message group.
    #[arg(long)]
    pub group_id: Option<String>,
    /// FIFO queues: drop a publish whose id was seen in the last 5 minutes.
    #[arg(long)]
    pub dedup_id: Option<String>,
    /// Answer only once each message is on disk.
    #[arg(long)]
    pub durable: bool,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

/// Publishes stdin lines, one message each.
pub fn publish(args: PublishArgs) -> CliResult {
    let mut client = args.broker.connect()?;
    let (mut sent, mut dropped) = (0u64, 0u64);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let spec = PublishSpec {
            priority: args.priority,
            delay_ms: args.delay_ms,
            ttl_ms: args.ttl_ms,
            headers: args.headers.clone(),
            group_id: args.group_id.clone(),
            dedup_id: args.dedup_id.clone(),
            durable: args.durable,
            origin: None,
        };
        match (&args.queue, &args.exchange) {
            (Some(queue), _) => match client.publish(queue, spec, line.as_bytes())? {
                Some(_) => sent += 1,
                None => dropped += 1,
            },
            (None, Some(exchange)) => {
                let (queues, topics) = client.publish_to_exchange(
                    exchange,
                    &args.routing_key,
                    spec,
                    line.as_bytes(),
                )?;
                if queues + topics == 0 {
                    dropped += 1;
                } else {
                    sent += 1;
                }
            }
            (None, None) => return Err("name --queue or --exchange".into()),
        }
    }
    eprintln!("published {sent} messages ({dropped} dropped: duplicates or unroutable)");
    Ok(())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Settled on delivery: at-most-once.
    Auto,
    /// Leased until acked, nacked or timed out: at-least-once.
    Manual,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Ack,
    /// Back to the queue.
    Nack,
    /// To the dead-letter target.
    Reject,
    /// Keep the leases (see `--show-handles`).
    None,
}

#[derive(Args, Debug)]
pub struct ReceiveArgs {
    pub queue: String,
    #[arg(long, default_value_t = 1)]
    pub max: u32,
    /// Wait up to this long for a first message (at most 20000).
    #[arg(long, default_value_t = 0)]
    pub wait_ms: u32,
    #[arg(long, value_enum, default_value = "manual")]
    pub ack: AckMode,
    /// With manual acks, what to do with the messages once printed.
    #[arg(long, value_enum, default_value = "ack")]
    pub then: Then,
    /// Print each receipt handle (and the delivery count) before the message.
    #[arg(long)]
    pub show_handles: bool,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

/// Pull receive: prints one message per line.
pub fn receive(args: ReceiveArgs) -> CliResult {
    let mut client = args.broker.connect()?;
    let got = client.receive(
        &args.queue,
        args.max,
        args.wait_ms,
        args.ack == AckMode::Auto,
    )?;
    let mut out = std::io::stdout().lock();
    for r in &got {
        if args.show_handles {
            write!(out, "{}\t{}\t", r.delivery.handle, r.delivery.deliveries)?;
        }
        out.write_all(&r.body)?;
        writeln!(out)?;
    }
    out.flush()?;
    if args.ack == AckMode::Auto || got.is_empty() {
        return Ok(());
    }
    let handles: Vec<u64> = got.iter().map(|r| r.delivery.handle).collect();
    match args.then {
        Then::Ack => client.ack(&args.queue, &handles)?,
        Then::Nack => client.nack(&args.queue, &handles, true)?,
        Then::Reject => client.nack(&args.queue, &handles, false)?,
        Then::None => {}
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct HandlesArgs {
    pub queue: String,
    #[arg(required = true)]
    pub handles: Vec<u64>,
    /// nack only: dead-letter instead of requeueing.
    #[arg(long)]
    pub reject: bool,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

pub fn ack(args: HandlesArgs) -> CliResult {
    args.broker.connect()?.ack(&args.queue, &args.handles)?;
    Ok(())
}

pub fn nack(args: HandlesArgs) -> CliResult {
    args.broker
        .connect()?
        .nack(&args.queue, &args.handles, !args.reject)?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct SubscribeArgs {
    pub queue: String,
    /// Most messages unacked at once.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u32,
    #[arg(long, value_enum, default_value = "manual")]
    pub ack: AckMode,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    pub max: Option<u64>,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

/// Push mode: prints messages as they come, acking each once printed (manual mode).
pub fn subscribe(args: SubscribeArgs) -> CliResult {
    let auto = args.ack == AckMode::Auto;
    let mut client = args.broker.connect()?;
    let mut sub = crate::client::queues::Subscription::open_with(
        &mut client,
        &args.queue,
        args.prefetch,
        auto,
    )?;
    let mut out = std::io::stdout().lock();
    let mut seen = 0u64;
    while args.max.is_none_or(|m| seen < m) {
        let Some(r) = sub.next(std::time::Duration::from_secs(1))? else {
            continue;
        };
        out.write_all(&r.body)?;
        writeln!(out)?;
        out.flush()?;
        if !auto {
            sub.ack(&[r.delivery.handle])?;
        }
        seen += 1;
    }
    // Let the last acks be answered before the connection closes.
    let _ = sub.next(std::time::Duration::from_millis(200));
    Ok(())
}
