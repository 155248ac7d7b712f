//! `peregrine bench`: a load generator with HDR-histogram reports.
//!
//! Producers stamp every message with its producer, sequence number and intended send
//! time; consumers measure end-to-end latency from that time (so a fixed-rate run is
//! corrected for coordinated omission) and record what arrived, and every run checks
//! delivery: acknowledged messages never received are lost, and fail the run.

mod amqp;
mod consumer;
mod delivery;
mod payload;
mod producer;
mod queue;
pub mod report;
mod sns;
mod spin;
mod sqs;

use crate::args::{parse_cores, AcksArg};
use crate::client::auth::Credentials;
use crate::client::tls::ClientTls;
use crate::client::Client;
use crate::embedded::BrokerProcess;
use crate::native::messages::{Acks, TopicSpec};
use clap::{Args, ValueEnum};
use consumer::{ConsumerPlan, Progress};
use delivery::Ledger;
use producer::ProducerPlan;
use report::{histogram, Percentiles, Summary};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long consumers wait for missing messages after the producers finished.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As fast as possible, producers and consumers together.
    Throughput,
    /// A fixed `--rate`, latency measured from each message's intended send time.
    Latency,
    /// Producers only: publish throughput and acknowledgement latency.
    Produce,
    /// Consumers only, from a backlog filled first (not timed).
    Consume,
    /// A message queue: batched publishes, a push subscription per consumer with
    /// `--prefetch`, manual acks in batches.
    Queue,
    /// `queue` at a fixed `--rate`, latency from each message's intended send time.
    QueueLatency,
    /// A durable queue through AMQP 0-9-1 with a real client (lapin): persistent
    /// messages, publisher confirms (`--confirm-window`), manual acks with `--prefetch`.
    Amqp,
    /// `amqp` at a fixed `--rate`, latency from each message's intended send time.
    AmqpLatency,
    /// A queue through the SQS API (JSON 1.0 over HTTP): `--senders` post
    /// SendMessageBatch of 10, `--receivers` receive 10 with a 1 s long poll and delete
    /// them with DeleteMessageBatch; checks by MessageId that each message is deleted once.
    Sqs,
    /// `sqs` at a fixed `--rate`, latency from each message's intended send time.
    SqsLatency,
    /// SNS fan-out (query protocol over HTTP): a topic with three SQS queues subscribed
    /// (raw delivery); `--senders` post PublishBatch of 10, `--receivers` per queue drain
    /// it as in `sqs` mode; checks that every queue got every message exactly once.
    Sns,
    /// `sns` at a fixed `--rate`, latency from each message's intended send time to its
    /// receipt from a queue.
    SnsLatency,
}

impl Mode {
    /// The modes that run through message queues rather than a topic.
    fn is_queue(self) -> bool {
        matches!(self, Mode::Queue | Mode::QueueLatency)
    }

    /// The modes that speak AMQP 0-9-1 (to Peregrine or to any AMQP broker).
    fn is_amqp(self) -> bool {
        matches!(self, Mode::Amqp | Mode::AmqpLatency)
    }

    /// The modes that speak the SQS API on the HTTP listener.
    fn is_sqs(self) -> bool {
        matches!(self, Mode::Sqs | Mode::SqsLatency)
    }

    /// The modes that speak SNS (and SQS, to drain the subscribed queues) on the HTTP
    /// listener.
    fn is_sns(self) -> bool {
        matches!(self, Mode::Sns | Mode::SnsLatency)
    }

    /// The modes whose clients speak HTTP (SQS, SNS), with `--senders`/`--receivers`.
    fn is_http(self) -> bool {
        self.is_sqs() || self.is_sns()
    }

    /// The modes that run at a fixed `--rate`.
    fn is_fixed_rate(self) -> bool {
        matches!(
            self,
            Mode::Latency
                | Mode::QueueLatency
                | Mode::AmqpLatency
                | Mode::SqsLatency
                | Mode::SnsLatency
        )
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "throughput")]
    pub mode: Mode,
    /// A running broker; without it (or with --embedded) the bench starts its own.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Start a broker for the run, on a temporary data directory.
    #[arg(long)]
    pub embedded: bool,
    /// Shards of the embedded broker (default: one per core).
    #[arg(long)]
    pub broker_shards: Option<usize>,
    /// Extra flags for the embedded broker, e.g. "--poll-us 50".
    #[arg(long, allow_hyphen_values = true)]
    pub broker_args: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Message size in bytes (at least 20, the bench's own header).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages in all (split over the producers).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Run for this many seconds instead of a message count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Most messages per batch (latency mode sends what is due, up to this).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Messages per second in latency mode (all producers together).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    #[arg(long, value_enum, default_value = "leader")]
    pub acks: AcksArg,
    /// Send each partition's and queue's requests to its owning shard's own port.
    #[arg(long)]
    pub shard_aware: bool,
    /// Print one JSON line instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Write the end-to-end latency distribution (.hgrm); the ack one goes to FILE.ack.
    #[arg(long)]
    pub hgrm: Option<std::path::PathBuf>,
    /// Write a latency-by-percentile chart (SVG).
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Pin the bench's own threads to these cores, e.g. `1` (default: not pinned).
    #[arg(long)]
    pub cores: Option<String>,
    /// Latency mode with one busy-polling thread that sends, reads acknowledgements and
    /// consumes (1 producer, 1 consumer, 1 partition): no wake-up on the measured path.
    /// Give it a core of its own with `--cores`.
    #[arg(long)]
    pub spin: bool,
    /// Queue modes: most unacked messages per consumer.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u32,
    /// Queue modes: publish batches each producer keeps in flight (sent before the
    /// answer to an earlier one is in, as a Kafka producer pipelines).
    #[arg(long, default_value_t = 2)]
    pub in_flight: usize,
    /// Queue and SQS modes: queues, spread over the broker's shards as partitions are.
    /// Producer (sender) and consumer (receiver) `i` use queue `i % queues`; their
    /// counts are raised to this when lower, so that every queue has both.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Queue mode: publish every message with no consumer attached, then drain the
    /// backlog; reports the broker's resident set (sampled every 100 ms from /proc)
    /// in each phase.
    #[arg(long)]
    pub backlog: bool,
    /// AMQP modes: the broker to measure, e.g. `amqp://guest:guest@127.0.0.1:5673/%2f`
    /// for a RabbitMQ (default: the embedded broker's AMQP listener).
    #[arg(long)]
    pub amqp_uri: Option<String>,
    /// AMQP modes: most publishes each producer keeps unconfirmed.
    #[arg(long, default_value_t = 1000)]
    pub confirm_window: u32,
    /// SQS and SNS modes: the broker's HTTP listener, e.g. `http://127.0.0.1:8080`
    /// (default: the embedded broker's).
    #[arg(long)]
    pub sqs_endpoint: Option<String>,
    /// SQS and SNS modes: sending (publishing) clients (threads, one keep-alive
    /// connection each).
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// SNS modes: subscribe the queues without raw delivery, so that each message is
    /// delivered in its JSON envelope, signed as the broker's --sns-signing says (the
    /// report counts the envelopes by SignatureVersion).
    #[arg(long)]
    pub sns_envelope: bool,
    /// SNS modes: the topic's SignatureVersion (1: SHA1withRSA, SNS's default; 2:
    /// SHA256withRSA), which signs its envelopes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub sns_signature_version: u8,
    /// SQS and SNS modes: receiving clients (threads, one keep-alive connection each);
    /// in the SNS modes, per subscribed queue.
    #[arg(long, default_value_t = 4)]
    pub receivers: usize,
    /// Over TLS: the native modes (throughput, latency, produce, consume, queue) with
    /// --bootstrap the broker's --native-tls-addr; the AMQP modes with an amqps://
    /// --amqp-uri; the SQS and SNS modes with an https:// --sqs-endpoint. With --embedded,
    /// the embedded broker's TLS listener of the mode, which --broker-args must start
    /// (--tls-cert, --tls-key and --native-tls-addr, --amqp-tls-addr or --http-tls-addr).
    #[command(flatten)]
    pub tls: crate::cli::tls::TlsClientArgs,
    /// Native and queue modes against a broker that requires authentication: --user, with the
    /// password in --password-file or PEREGRINE_PASSWORD.
    #[command(flatten)]
    pub auth: crate::cli::auth::AuthClientArgs,
}

/// A bench run's outcome: its error says what went wrong, for the CLI to print.
pub type BenchResult = Result<(), Box<dyn std::error::Error>>;

pub fn run(args: BenchArgs) -> BenchResult {
    payload::start_clock();
    let args = validated(args)?;
    let _tmp;
    let mut _broker = None;
    let bootstrap = match (&args.bootstrap, args.embedded) {
        (Some(b), false) => b.clone(),
        // Another AMQP broker (RabbitMQ): nothing of ours to start.
        (None, false) if args.amqp_uri.is_some() || args.sqs_endpoint.is_some() => String::new(),
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("peregrine-bench-")
                .tempdir()?;
            let mut extra = Vec::new();
            if let Some(n) = args.broker_shards {
                extra.extend(["--shards".to_string(), n.to_string()]);
            }
            extra.extend(
                args.broker_args
                    .iter()
                    .flat_map(|a| a.split_whitespace().map(String::from)),
            );
            let bin = crate::embedded::current_binary()?;
            let broker = BrokerProcess::spawn(&bin, dir.path(), &extra)?;
            let addr = match args.tls.tls_ca {
                None => broker.addr.clone(),
                // The AMQP and HTTP modes take their TLS listener below.
                Some(_) if args.mode.is_amqp() || args.mode.is_http() => String::new(),
                Some(_) => tls_listener(&broker, "native_tls=", "--native-tls-addr")?,
            };
            _broker = Some(broker);
            _tmp = dir;
            addr
        }
    };
    if let Some(cores) = &args.cores {
        pin_current_thread_family(&parse_cores(cores)?);
    }
    let broker_pid = _broker.as_ref().and_then(BrokerProcess::pid);
    let tls = args.tls.client_tls()?;
    if args.mode.is_amqp() {
        let secure = args.tls.tls_ca.is_some();
        let uri = match (&args.amqp_uri, &_broker) {
            (Some(uri), _) => uri.clone(),
            (None, Some(b)) if secure => {
                let addr = tls_listener(b, "amqp_tls=", "--amqp-tls-addr")?;
                format!("amqps://guest:guest@{addr}/%2f")
            }
            (None, Some(b)) => format!("amqp://guest:guest@{}/%2f", b.amqp_addr),
            (None, None) => return Err("the AMQP modes need --amqp-uri or --embedded".into()),
        };
        let endpoint = amqp::Endpoint::new(uri, &args.tls)?;
        let cpu_before = broker_pid.and_then(process_cpu_s);
        let mut outcome = amqp::run(&args, &endpoint)?;
        return finish(&args, broker_pid, cpu_before, &mut outcome);
    }
    if args.mode.is_http() {
        let endpoint = match (&args.sqs_endpoint, &_broker) {
            (Some(e), _) => e.clone(),
            (None, Some(b)) if tls.is_some() => {
                format!(
                    "https://{}",
                    tls_listener(b, "http_tls=", "--http-tls-addr")?
                )
            }
            (None, Some(b)) => b.http_addr.clone(),
            (None, None) => {
                return Err("the SQS and SNS modes need --sqs-endpoint or --embedded".into())
            }
        };
        let endpoint = sqs::Endpoint::new(&endpoint, tls)?;
        let cpu_before = broker_pid.and_then(process_cpu_s);
        let mut outcome = if args.mode.is_sns() {
            sns::run(&args, &endpoint)?
        } else {
            sqs::run(&args, &endpoint)?
        };
        return finish(&args, broker_pid, cpu_before, &mut outcome);
    }
    let credentials = args.auth.credentials()?;
    if args.mode.is_queue() {
        let target = Target {
            bootstrap,
            tls,
            credentials,
        };
        let cpu_before = broker_pid.and_then(process_cpu_s);
        let mut outcome = queue::run(&args, &target, broker_pid)?;
        return finish(&args, broker_pid, cpu_before, &mut outcome);
    }
    let topic = format!("bench-{}-{}", std::process::id(), crate::time::now_ms());
    Client::connect_as(&bootstrap, tls.clone(), credentials.clone())?.create_topic(TopicSpec {
        name: topic.clone(),
        partitions: args.partitions,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    })?;
    let cpu_before = broker_pid.and_then(process_cpu_s);
    let target = Target {
        bootstrap,
        tls,
        credentials,
    };
    let mut summary = execute(&args, &target, &topic)?;
    finish(&args, broker_pid, cpu_before, &mut summary)
}

/// The embedded broker's TLS listener named `field` in its ready line (`amqp_tls=`...);
/// an error naming the `serve` flag that starts it when there is none.
fn tls_listener(broker: &BrokerProcess, field: &str, flag: &str) -> Result<String, String> {
    broker
        .ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(field))
        .map(str::to_string)
        .ok_or_else(|| format!("--tls-ca with --embedded: start the broker's TLS listener with --broker-args \"--tls-cert FILE --tls-key FILE {flag} 127.0.0.1:0\""))
}

/// Adds the broker's CPU and memory to a run's outcome, prints it, writes the files,
/// and fails a run that lost acknowledged messages.
fn finish(
    args: &BenchArgs,
    broker_pid: Option<u32>,
    cpu_before: Option<f64>,
    summary: &mut Outcome,
) -> BenchResult {
    if let (Some(before), Some(after)) = (cpu_before, broker_pid.and_then(process_cpu_s)) {
        let cpu = after - before;
        let moved = summary
            .0
            .messages_received
            .max(summary.0.messages_acked)
            .max(1);
        summary.0.broker_cpu_s = Some(cpu);
        summary.0.broker_cpu_ns_per_msg = Some(cpu * 1e9 / moved as f64);
    }
    summary.0.broker_peak_rss_mb = broker_pid.and_then(peak_rss_mb);
    if args.json {
        println!("{}", serde_json::to_string(&summary.0)?);
    } else {
        println!("{}", summary.0.human());
    }
    write_outputs(args, &summary.1, &summary.2)?;
    if summary.0.lost > 0 {
        return Err(format!("{} acknowledged messages were lost", summary.0.lost).into());
    }
    Ok(())
}

fn validated(mut args: BenchArgs) -> Result<BenchArgs, String> {
    if args.size < payload::HEADER_LEN {
        return Err(format!(
            "--size must be at least {} bytes (the bench header)",
            payload::HEADER_LEN
        ));
    }
    if args.producers == 0 && args.mode != Mode::Consume || args.partitions < 1 || args.batch == 0 {
        return Err("--producers, --partitions and --batch must be at least 1".into());
    }
    let consuming = matches!(
        args.mode,
        Mode::Throughput
            | Mode::Latency
            | Mode::Consume
            | Mode::Queue
            | Mode::QueueLatency
            | Mode::Amqp
            | Mode::AmqpLatency
            | Mode::Sqs
            | Mode::SqsLatency
    );
    if args.consumers == 0 && consuming {
        return Err("this mode needs at least one consumer".into());
    }
    let native = !(args.mode.is_amqp() || args.mode.is_http());
    if args.auth.user.is_some() && !native {
        return Err(
            "--user applies to the native modes (throughput, latency, produce, consume, queue)"
                .into(),
        );
    }
    if args.messages.is_none() && args.duration.is_none() {
        args.messages = Some(if args.mode.is_fixed_rate() {
            100_000
        } else {
            1_000_000
        });
    }
    if args.spin
        && (args.mode != Mode::Latency
            || args.producers != 1
            || args.consumers != 1
            || args.partitions != 1)
    {
        return Err("--spin runs latency mode with 1 producer, 1 consumer and 1 partition".into());
    }
    if args.mode.is_amqp() {
        if args.queues != 1 || args.partitions != 1 || args.shard_aware || args.backlog {
            return Err("the AMQP modes run one queue (no --queues, --partitions, --shard-aware or --backlog)".into());
        }
        // Persistent messages with publisher confirms: what the summary calls durable.
        args.acks = AcksArg::Durable;
    } else if args.amqp_uri.is_some() {
        return Err("--amqp-uri is for the AMQP modes".into());
    }
    if (args.sns_envelope || args.sns_signature_version != 1) && !args.mode.is_sns() {
        return Err("--sns-envelope and --sns-signature-version are for the SNS modes".into());
    }
    if args.mode.is_http() {
        if args.partitions != 1 || args.shard_aware || args.backlog {
            return Err(
                "the SQS and SNS modes take no --partitions, --shard-aware or --backlog".into(),
            );
        }
        if args.queues == 0 || (args.mode.is_sns() && args.queues != 1) {
            return Err("--queues: at least 1 for the SQS modes; the SNS modes run three".into());
        }
        if args.size < sqs::STAMP_LEN {
            return Err(format!(
                "the SQS and SNS modes need --size of at least {} (the bench stamp, in text)",
                sqs::STAMP_LEN
            ));
        }
        if args.senders == 0 || args.receivers == 0 {
            return Err("--senders and --receivers must be at least 1".into());
        }
        // Every queue has a sender and a receiver.
        args.producers = args.senders.max(args.queues);
        args.consumers = args.receivers.max(args.queues);
        // A batch request holds 10 entries at most.
        args.batch = args.batch.min(sqs::BATCH_MAX);
        args.acks = if args.mode.is_sns() {
            // Publish is answered once the message is on disk (the topic's outbox).
            AcksArg::Durable
        } else {
            // Messages are deleted after they are received: the SQS acknowledgement.
            AcksArg::Leader
        };
    } else if args.sqs_endpoint.is_some() {
        return Err("--sqs-endpoint is for the SQS and SNS modes".into());
    }
    // The SQS modes spread over `--queues` too; the SNS modes run three.
    let sqs_mode = args.mode.is_http() && !args.mode.is_sns();
    if args.mode.is_queue() {
        if args.queues == 0 {
            return Err("--queues must be at least 1".into());
        }
        if args.partitions != 1 {
            return Err("the queue modes spread over --queues, not --partitions".into());
        }
        args.producers = args.producers.max(args.queues);
        args.consumers = args.consumers.max(args.queues);
    } else if args.queues != 1 && !sqs_mode {
        return Err(
            "--queues is for the queue and SQS modes; topics spread over --partitions".into(),
        );
    }
    if args.backlog && (args.mode != Mode::Queue || args.messages.is_none()) {
        return Err("--backlog is for queue mode with --messages".into());
    }
    if args.mode == Mode::Consume && args.messages.is_none() {
        return Err("consume mode needs --messages (the backlog to fill)".into());
    }
    Ok(args)
}

/// Peak resident set size of a process (VmHWM in /proc/PID/status), MiB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

fn pin_current_thread_family(cores: &[usize]) {
    // Threads spawned later inherit this affinity.
    // SAFETY: sched_setaffinity on the calling thread with a set we built.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cores {
            libc::CPU_SET(*c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One paced client's share of a queue workload (the AMQP and SQS modes): `count`
/// messages or until `deadline_ns`, `rate` per second if given.
struct PacedPlan {
    id: u32,
    count: u64,
    deadline_ns: Option<u64>,
    rate: Option<f64>,
}

/// `total` messages split over `clients` (the first ones take the remainder), each with
/// its share of `total_rate` when the run is paced.
fn paced_plans(
    clients: u64,
    total: u64,
    deadline_ns: Option<u64>,
    total_rate: Option<f64>,
) -> Vec<PacedPlan> {
    let rate = total_rate.map(|r| r / clients as f64);
    (0..clients)
        .map(|i| PacedPlan {
            id: i as u32,
            count: total / clients + u64::from(i < total % clients),
            deadline_ns,
            rate,
        })
        .collect()
}

/// Where the bench's clients connect, and how.
#[derive(Clone)]
struct Target {
    bootstrap: String,
    tls: Option<Arc<ClientTls>>,
    credentials: Option<Arc<Credentials>>,
}

impl Target {
    /// A native client on the bootstrap address, over TLS and logged in as the flags say.
    fn connect(&self) -> Result<Client, crate::client::ClientError> {
        Client::connect_as(&self.bootstrap, self.tls.clone(), self.credentials.clone())
    }
}

fn producer_plans(
    args: &BenchArgs,
    bootstrap: &Target,
    topic: &str,
    messages: Option<u64>,
    deadline: Option<u64>,
) -> Vec<ProducerPlan> {
    let n = args.producers.max(1) as u64;
    (0..n)
        .map(|i| ProducerPlan {
            id: i as u32,
            bootstrap: bootstrap.bootstrap.clone(),
            tls: bootstrap.tls.clone(),
            credentials: bootstrap.credentials.clone(),
            topic: topic.to_string(),
            partitions: args.partitions,
            messages: messages.map(|m| m / n + u64::from(i < m % n)),
            deadline_ns: deadline,
            size: args.size,
            batch: args.batch,
            acks: args.acks.into(),
            rate: (args.mode == Mode::Latency).then(|| args.rate as f64 / n as f64),
            shard_aware: args.shard_aware,
        })
        .collect()
}

fn consumer_plans(args: &BenchArgs, bootstrap: &Target, topic: &str) -> Vec<ConsumerPlan> {
    let n = args.consumers.max(1);
    (0..n)
        .map(|i| ConsumerPlan {
            bootstrap: bootstrap.bootstrap.clone(),
            tls: bootstrap.tls.clone(),
            credentials: bootstrap.credentials.clone(),
            topic: topic.to_string(),
            partitions: (0..args.partitions)
                .filter(|p| *p as usize % n == i)
                .collect(),
            producers: args.producers.max(1),
            shard_aware: args.shard_aware,
        })
        .filter(|p| !p.partitions.is_empty())
        .collect()
}

pub(crate) type Outcome = (
    Summary,
    hdrhistogram::Histogram<u64>,
    hdrhistogram::Histogram<u64>,
);

fn execute(
    args: &BenchArgs,
    bootstrap: &Target,
    topic: &str,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let sent = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Progress::default());
    if args.mode == Mode::Consume {
        // The backlog, not timed.
        for h in spawn_producers(
            producer_plans(args, bootstrap, topic, args.messages, None),
            &sent,
        ) {
            if let Some(e) = h.join().map_err(|_| "producer panicked")?.error {
                return Err(e.into());
            }
        }
    }
    let start_ns = payload::now_ns();
    let deadline = args.duration.map(|d| start_ns + (d * 1e9) as u64);
    let plans = producer_plans(args, bootstrap, topic, args.messages, deadline);
    let reporter = spawn_progress(sent.clone(), progress.clone(), args.json);
    if args.spin {
        let plan = plans.into_iter().next().ok_or("no producer")?;
        let (p, c) = spin::run(plan, 1, DRAIN_TIMEOUT, &progress, &sent);
        drop(reporter);
        return Ok(summarize(args, start_ns, vec![p], vec![c]));
    }
    let consumers: Vec<_> = if args.mode == Mode::Produce {
        Vec::new()
    } else {
        consumer_plans(args, bootstrap, topic)
            .into_iter()
            .map(|plan| {
                let p = progress.clone();
                std::thread::spawn(move || consumer::run(plan, p))
            })
            .collect()
    };
    let producers = if args.mode == Mode::Consume {
        Vec::new()
    } else {
        spawn_producers(plans, &sent)
    };
    let producers: Vec<_> = producers
        .into_iter()
        .map(|h| h.join().map_err(|_| "producer panicked"))
        .collect::<Result<_, _>>()?;
    // What the consumers should see: with acks=none nothing is acknowledged, so every
    // message sent counts.
    let expected = match (args.mode, Acks::from(args.acks)) {
        (Mode::Consume, _) => args.messages.unwrap_or(0),
        (_, Acks::None) => producers.iter().map(|p| p.sent).sum(),
        _ => producers.iter().map(|p| p.acked.len()).sum(),
    };
    wait_for(&progress, expected, !consumers.is_empty());
    progress.stop.store(true, Ordering::Relaxed);
    let consumers: Vec<_> = consumers
        .into_iter()
        .map(|h| h.join().map_err(|_| "consumer panicked"))
        .collect::<Result<_, _>>()?;
    drop(reporter);
    Ok(summarize(args, start_ns, producers, consumers))
}

/// Folds every producer's and consumer's results into one report.
pub(crate) fn summarize(
    args: &BenchArgs,
    start_ns: u64,
    producers: Vec<producer::ProducerResult>,
    consumers: Vec<consumer::ConsumerResult>,
) -> Outcome {
    let mut ack_ns = histogram();
    let mut ledger = Ledger::new(args.producers.max(1));
    let (mut first_send, mut last_ack) = (u64::MAX, 0);
    let mut messages_sent = 0;
    for (i, r) in producers.into_iter().enumerate() {
        if let Some(e) = &r.error {
            eprintln!("producer {i}: {e}");
        }
        messages_sent += r.sent;
        first_send = first_send.min(r.first_send_ns);
        last_ack = last_ack.max(r.last_ack_ns);
        let _ = ack_ns.add(&r.ack_ns);
        ledger.acked[i] = r.acked;
    }
    // What the consumers should see: with acks=none nothing is acknowledged, so every
    // message sent counts.
    let delivered = match Acks::from(args.acks) {
        Acks::None => messages_sent,
        _ => ledger.acked_total(),
    };
    let mut e2e_ns = histogram();
    let (mut first_recv, mut last_recv) = (u64::MAX, 0);
    for r in consumers {
        if let Some(e) = &r.error {
            eprintln!("consumer: {e}");
        }
        let _ = e2e_ns.add(&r.e2e_ns);
        first_recv = first_recv.min(r.first_receive_ns);
        last_recv = last_recv.max(r.last_receive_ns);
        for (p, set) in r.ledger.received.iter().enumerate() {
            ledger.received[p].merge(set);
        }
        ledger.duplicated += r.ledger.duplicated;
    }
    let received = ledger.received_total();
    let (count, from, to) = match args.mode {
        Mode::Produce => (delivered, first_send, last_ack.max(first_send + 1)),
        Mode::Consume => (received, start_ns, last_recv),
        _ => (received, first_send, last_recv),
    };
    let duration_s = to.saturating_sub(from).max(1) as f64 / 1e9;
    let msgs_per_s = count as f64 / duration_s;
    let queue_mode = args.mode.is_queue() || args.mode.is_amqp() || args.mode.is_http();
    let summary = Summary {
        mode: format!("{:?}", args.mode).to_lowercase(),
        acks: format!("{:?}", args.acks).to_lowercase(),
        producers: args.producers,
        consumers: args.consumers,
        partitions: if queue_mode { 0 } else { args.partitions },
        queues: if queue_mode { args.queues } else { 0 },
        size: args.size,
        batch: args.batch,
        shard_aware: args.shard_aware,
        rate: args.mode.is_fixed_rate().then_some(args.rate),
        messages_sent: if args.mode == Mode::Consume {
            args.messages.unwrap_or(0)
        } else {
            messages_sent
        },
        messages_acked: ledger.acked_total(),
        messages_received: received,
        duration_s,
        msgs_per_s,
        mb_per_s: msgs_per_s * args.size as f64 / 1e6,
        e2e_us: Percentiles::of(&e2e_ns),
        ack_us: Percentiles::of(&ack_ns),
        lost: if args.mode == Mode::Produce {
            0
        } else {
            ledger.lost()
        },
        duplicated: ledger.duplicated,
        broker_cpu_s: None,
        broker_cpu_ns_per_msg: None,
        broker_peak_rss_mb: None,
    };
    (summary, e2e_ns, ack_ns)
}

fn spawn_producers(
    plans: Vec<ProducerPlan>,
    sent: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<producer::ProducerResult>> {
    plans
        .into_iter()
        .map(|plan| {
            let s = sent.clone();
            std::thread::spawn(move || producer::run(plan, s))
        })
        .collect()
}

/// Waits until the consumers have `expected` messages, or made no progress for a while.
pub(crate) fn wait_for(progress: &Progress, expected: u64, consuming: bool) {
    if !consuming {
        return;
    }
    let mut last = progress.received.load(Ordering::Relaxed);
    let mut idle = Duration::ZERO;
    let step = Duration::from_millis(5);
    while progress.received.load(Ordering::Relaxed) < expected && idle < DRAIN_TIMEOUT {
        std::thread::sleep(step);
        let now = progress.received.load(Ordering::Relaxed);
        idle = if now == last {
            idle + step
        } else {
            Duration::ZERO
        };
        last = now;
    }
}

/// Prints a progress line every second on stderr until dropped.
struct Reporter(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Reporter {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn spawn_progress(sent: Arc<AtomicU64>, progress: Arc<Progress>, quiet: bool) -> Reporter {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if quiet {
        return Reporter(done);
    }
    let flag = done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut ticks = 0u64;
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            ticks += 1;
            if ticks.is_multiple_of(10) {
                eprintln!(
                    "[{:>4.0} s] sent {} received {}",
                    start.elapsed().as_secs_f64(),
                    sent.load(Ordering::Relaxed),
                    progress.received.load(Ordering::Relaxed)
                );
            }
        }
    });
    Reporter(done)
}

fn write_outputs(
    args: &BenchArgs,
    e2e: &hdrhistogram::Histogram<u64>,
    ack: &hdrhistogram::Histogram<u64>,
) -> BenchResult {
    if let Some(path) = &args.hgrm {
        std::fs::write(path, report::hgrm(e2e))?;
        let mut ack_path = path.clone().into_os_string();
        ack_path.push(".ack");
        std::fs::write(ack_path, report::hgrm(ack))?;
    }
    if let Some(path) = &args.plot {
        let title =
            format!("peregrine bench {:?}: latency by percentile", args.mode).to_lowercase();
        std::fs::write(
            path,
            report::svg(&[("end to end", e2e), ("publish ack", ack)], &title),
        )?;
    }
    Ok(())
}
