//! `peregrine serve`: flags, their defaults, and the broker start.

use super::CliResult;
use crate::args::parse_cores;
use crate::config::{self, ServerConfig};
use clap::Args;
use peregrine_shards::log::{FsyncPolicy, LogConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where topics, groups and metadata are stored.
    #[arg(long, default_value = config::DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Native protocol address, shared by every shard (SO_REUSEPORT).
    #[arg(long, default_value = config::NATIVE_ADDR_DEFAULT)]
    pub native_addr: SocketAddr,
    /// Kafka protocol address, shared by every shard (SO_REUSEPORT).
    #[arg(long, default_value = config::KAFKA_ADDR_DEFAULT)]
    pub kafka_addr: SocketAddr,
    /// `host:port` Kafka clients are told to connect to. Default: the Kafka address.
    #[arg(long)]
    pub advertised_kafka_addr: Option<String>,
    /// Create unknown topics named by Kafka Metadata or Produce requests (one partition).
    #[arg(long)]
    pub auto_create_topics: bool,
    /// Largest record batch a Kafka produce may carry; larger ones get
    /// MESSAGE_TOO_LARGE (Kafka's `message.max.bytes`, same default).
    #[arg(long, default_value_t = 1_048_588)]
    pub kafka_message_max_bytes: u32,
    /// How Kafka clients see the broker: each shard as a node on its own Kafka port
    /// (Kafka port + 1 + shard, or free ports when the Kafka port is 0), or one node.
    #[arg(long, value_enum, default_value = "per-shard")]
    pub kafka_nodes: config::KafkaNodes,
    /// First per-shard native port (shard i listens on base + i). Default: native port
    /// + 1, or free ports when the native port is 0.
    #[arg(long)]
    pub shard_port_base: Option<u16>,
    /// Number of shards (pinned executors). Default: one per available core.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Cores to pin the shards to, e.g. `0-3` or `0,2,4`. Default: every available core.
    #[arg(long)]
    pub cores: Option<String>,
    /// Largest native frame accepted, in bytes.
    #[arg(long, default_value_t = config::MAX_FRAME_BYTES_DEFAULT)]
    pub max_frame_bytes: u32,
    /// When to fdatasync: `durable` (only for acks=durable, group-committed),
    /// `always` (after every write), or `interval:MS`.
    #[arg(long, default_value = "durable")]
    pub fsync: FsyncPolicy,
    /// Per-shard cache of recent batches, in MiB.
    #[arg(long, default_value_t = config::CACHE_MB_DEFAULT)]
    pub cache_mb: usize,
    /// How often retention runs, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub retention_check_ms: u64,
    /// How long small acks=leader appends may wait to share one disk write, in µs
    /// (0: write each at once). Durable appends never wait.
    #[arg(long, default_value_t = 1000)]
    pub write_linger_us: u64,
    /// Busy-poll this many µs before an idle shard sleeps (latency vs. CPU).
    #[arg(long, default_value_t = 0)]
    pub poll_us: u64,
    /// Calls one shard may have running on other shards at once, per kind of call
    /// (client calls, long polls, the broker's own); a call past it waits.
    #[arg(long, default_value_t = config::CROSS_CORE_IN_FLIGHT_MAX_DEFAULT)]
    pub cross_core_in_flight_max: usize,
    /// Forget an idempotent producer's state in a partition after this many ms without
    /// a write there (Kafka's `producer.id.expiration.ms`; default one day). Bounds the
    /// state by the producers active within it; one that comes back later starts anew.
    #[arg(long, default_value_t = LogConfig::PRODUCER_ID_EXPIRATION_MS_DEFAULT)]
    pub producer_id_expiration_ms: u64,
    /// Log (WARN, with a backtrace) a task that keeps a shard's core this many ms past
    /// its time slice: glommio's stall detection. 0 turns it off.
    #[arg(long, default_value_t = crate::runtime::STALL_WARN_MS_DEFAULT)]
    pub stall_warn_ms: u64,
    /// HTTP address for operators (`/metrics`, `/healthz`, `/readyz`), shared by every
    /// shard; port 0 picks a free one (the ready line names it).
    #[arg(long, default_value = crate::http::HTTP_ADDR_DEFAULT)]
    pub http_addr: SocketAddr,
    /// Region the SQS API names in ARNs (QueueArn, RedrivePolicy targets); `[a-z0-9-]+`.
    /// Default: us-east-1.
    #[arg(long)]
    pub sqs_region: Option<String>,
    /// Account id in SQS queue URLs and ARNs: 12 digits. Default: 000000000000.
    #[arg(long)]
    pub sqs_account_id: Option<String>,
    /// Verify the AWS Signature V4 of every SQS and SNS request against the
    /// --http-access-key keys (refused: InvalidClientTokenId, SignatureDoesNotMatch).
    /// Off by default: any access key is accepted and signatures are not checked.
    #[arg(long)]
    pub http_auth: bool,
    /// An access key --http-auth accepts, as KEY:SECRET (repeat for more keys). The key
    /// id is 1 to 128 of A-Z a-z 0-9; the secret at least 1 byte.
    #[arg(long, value_name = "KEY:SECRET")]
    pub http_access_key: Vec<String>,
    /// AMQP 0-9-1 address (RabbitMQ clients), shared by every shard; port 0 picks a free
    /// one (the ready line names it).
    #[arg(long, default_value = crate::amqp::AMQP_ADDR_DEFAULT)]
    pub amqp_addr: SocketAddr,
    /// AMQP users besides `guest` (who may log in from loopback only): a file of
    /// `name:password` lines (`#` starts a comment).
    #[arg(long)]
    pub amqp_users: Option<std::path::PathBuf>,
    /// Open connections per listener (native, Kafka, HTTP), across every shard and the
    /// shards' own ports. One past it is accepted and closed at once (native clients
    /// get an error frame first); refusals are logged at most once a second per shard.
    #[arg(long, default_value_t = config::ConnectionLimits::MAX_CONNECTIONS_DEFAULT)]
    pub max_connections: usize,
    /// Requests one native or Kafka connection may have in flight (read, not yet
    /// answered); past it the broker stops reading that connection (TCP backpressure).
    #[arg(long, default_value_t = config::ConnectionLimits::MAX_IN_FLIGHT_REQUESTS_DEFAULT)]
    pub max_in_flight_requests: usize,
    /// Request bytes one native or Kafka connection may have in flight; past it the
    /// broker stops reading that connection. A larger frame is still served, alone.
    #[arg(long, default_value_t = config::ConnectionLimits::MAX_IN_FLIGHT_BYTES_DEFAULT)]
    pub max_in_flight_bytes: u64,
    /// Long polls (Fetch, pull Receive) one shard keeps waiting at once; past it a long
    /// poll is answered at once with what there is (possibly nothing).
    #[arg(long, default_value_t = config::ConnectionLimits::MAX_LONG_POLLS_DEFAULT)]
    pub max_long_polls: usize,
    /// Topics the broker may hold; creating one more is refused (Kafka
    /// POLICY_VIOLATION) until one is deleted.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_TOPICS_DEFAULT)]
    pub max_topics: usize,
    /// Partitions of all topics together; a topic creation or partition increase past
    /// it is refused (Kafka INVALID_PARTITIONS). One topic has at most 10,000 either way.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_PARTITIONS_DEFAULT)]
    pub max_partitions: u64,
    /// Message queues the broker may hold; declaring one more is refused.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_QUEUES_DEFAULT)]
    pub max_queues: usize,
    /// Exchanges the broker may hold; declaring one more is refused.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_EXCHANGES_DEFAULT)]
    pub max_exchanges: usize,
    /// Bindings of all exchanges together; binding one more is refused. Each binding's
    /// routing key and headers are at most 4 KiB.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_BINDINGS_DEFAULT)]
    pub max_bindings: usize,
    /// Consumer groups (with members or committed offsets) each shard may own; a join
    /// or commit that would create one more there is refused until one is deleted.
    #[arg(long, default_value_t = config::ObjectLimits::MAX_GROUPS_PER_SHARD_DEFAULT)]
    pub max_groups_per_shard: usize,
    /// SNS topics the broker may hold; creating one more is refused
    /// (TopicLimitExceeded). Each SNS topic is also a topic of one partition, counted
    /// under --max-topics and --max-partitions, and a consumer group (its fan-out cursor).
    #[arg(long, default_value_t = config::ObjectLimits::MAX_SNS_TOPICS_DEFAULT)]
    pub max_sns_topics: usize,
    /// Subscriptions one SNS topic may have; one more is refused
    /// (SubscriptionLimitExceeded).
    #[arg(long, default_value_t = config::ObjectLimits::MAX_SNS_SUBSCRIPTIONS_PER_TOPIC_DEFAULT)]
    pub max_sns_subscriptions_per_topic: usize,
    /// Largest transaction timeout (ms) a transactional producer may ask for; a larger
    /// one is refused (Kafka's transaction.max.timeout.ms).
    #[arg(long, default_value_t = config::TransactionLimits::MAX_TRANSACTION_TIMEOUT_MS_DEFAULT)]
    pub max_transaction_timeout_ms: i32,
    /// Transactional ids each shard may keep; an InitProducerId for one more is refused
    /// (ids idle for 7 days with no transaction under way are dropped first).
    #[arg(long, default_value_t = config::TransactionLimits::MAX_TRANSACTIONAL_IDS_PER_SHARD_DEFAULT)]
    pub max_transactional_ids_per_shard: usize,
    #[command(flatten)]
    pub tls: super::tls::TlsServeArgs,
}

pub fn config_from(mut args: ServeArgs) -> Result<ServerConfig, String> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let cores = match &args.cores {
        Some(list) => parse_cores(list)?,
        None => available.clone(),
    };
    if let Some(c) = cores
        .iter()
        .find(|c| !available.is_empty() && !available.contains(c))
    {
        return Err(format!(
            "core {c} is not available to this process (available: {available:?})"
        ));
    }
    let shards = args.shards.unwrap_or(cores.len().max(1));
    if shards == 0 || shards > 1024 {
        return Err(format!("--shards must be between 1 and 1024, got {shards}"));
    }
    // More shards than cores: they share cores round robin (useful for tests only).
    let cores = if cores.is_empty() {
        Vec::new()
    } else {
        (0..shards).map(|i| cores[i % cores.len()]).collect()
    };
    let shard_port_base = args
        .shard_port_base
        .unwrap_or(match args.native_addr.port() {
            0 => 0,
            p => p.saturating_add(1),
        });
    if args.cross_core_in_flight_max == 0 {
        return Err("--cross-core-in-flight-max must be at least 1".into());
    }
    if args.max_connections == 0 || args.max_in_flight_requests == 0 {
        return Err("--max-connections and --max-in-flight-requests must be at least 1".into());
    }
    if args.max_in_flight_bytes == 0 {
        return Err("--max-in-flight-bytes must be at least 1".into());
    }
    let object_limits = object_limits(&args)?;
    if args.max_transaction_timeout_ms < 1 || args.max_transactional_ids_per_shard == 0 {
        return Err(
            "--max-transaction-timeout-ms and --max-transactional-ids-per-shard must be at least 1"
                .into(),
        );
    }
    if args.max_frame_bytes < 1024 {
        return Err("--max-frame-bytes must be at least 1024".into());
    }
    let sqs = sqs_settings(&args)?;
    let http_auth = http_auth(&args)?;
    let tls = std::mem::take(&mut args.tls).listeners()?;
    let amqp_users = match &args.amqp_users {
        Some(path) => crate::amqp::auth::load_users(path)?,
        None => Vec::new(),
    };
    Ok(ServerConfig {
        data_dir: args.data_dir,
        native_addr: args.native_addr,
        kafka_addr: args.kafka_addr,
        advertised_kafka_addr: args.advertised_kafka_addr,
        auto_create_topics: args.auto_create_topics,
        kafka_nodes: args.kafka_nodes,
        kafka_message_max_bytes: args.kafka_message_max_bytes,
        kafka_shard_ports: Vec::new(),
        shard_port_base,
        shards,
        cores,
        max_frame_bytes: args.max_frame_bytes,
        fsync: args.fsync,
        write_linger: Duration::from_micros(args.write_linger_us),
        cache_mb: args.cache_mb,
        retention_check: Duration::from_millis(args.retention_check_ms.max(10)),
        poll_us: args.poll_us,
        cross_core_in_flight_max: args.cross_core_in_flight_max,
        producer_id_expiration_ms: args.producer_id_expiration_ms,
        stall_warn: (args.stall_warn_ms > 0).then(|| Duration::from_millis(args.stall_warn_ms)),
        http_addr: args.http_addr,
        sqs,
        http_auth,
        amqp_addr: args.amqp_addr,
        amqp_users,
        connection_limits: config::ConnectionLimits {
            max_connections: args.max_connections,
            max_in_flight_requests: args.max_in_flight_requests,
            max_in_flight_bytes: args.max_in_flight_bytes,
            max_long_polls: args.max_long_polls,
        },
        object_limits,
        transaction_limits: config::TransactionLimits {
            max_transaction_timeout_ms: args.max_transaction_timeout_ms,
            max_transactional_ids_per_shard: args.max_transactional_ids_per_shard,
        },
        tls,
    })
}

/// `--sqs-region` and `--sqs-account-id`, checked: they end up in every queue URL and
/// ARN, which clients parse.
fn sqs_settings(args: &ServeArgs) -> Result<config::SqsSettings, String> {
    let mut sqs = config::SqsSettings::default();
    if let Some(region) = &args.sqs_region {
        let valid = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "--sqs-region must be lowercase letters, digits and '-' (e.g. eu-west-3), got {region:?}"
            ));
        }
        sqs.region = region.clone();
    }
    if let Some(account) = &args.sqs_account_id {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "--sqs-account-id must be 12 digits (e.g. 123456789012), got {account:?}"
            ));
        }
        sqs.account_id = account.clone();
    }
    Ok(sqs)
}

/// Longest access key id `--http-access-key` takes (AWS's).
const HTTP_ACCESS_KEY_ID_MAX: usize = 128;

/// `--http-auth` and its `--http-access-key`s: on with at least one key, or off with
/// none (keys without the flag would do nothing, so they are refused too).
fn http_auth(args: &ServeArgs) -> Result<Option<config::HttpAccessKeys>, String> {
    if !args.http_auth {
        if !args.http_access_key.is_empty() {
            return Err(
                "--http-access-key needs --http-auth (without it any key is accepted)".into(),
            );
        }
        return Ok(None);
    }
    if args.http_access_key.is_empty() {
        return Err("--http-auth needs at least one --http-access-key KEY:SECRET".into());
    }
    let mut keys = config::HttpAccessKeys::default();
    for pair in &args.http_access_key {
        let (key, secret) = pair.split_once(':').unwrap_or((pair, ""));
        let key_ok = !key.is_empty()
            && key.len() <= HTTP_ACCESS_KEY_ID_MAX
            && key.bytes().all(|b| b.is_ascii_alphanumeric());
        if !key_ok || secret.is_empty() {
            return Err(format!(
                "--http-access-key must be KEY:SECRET, KEY 1 to {HTTP_ACCESS_KEY_ID_MAX} of A-Z a-z 0-9 and SECRET not empty (got key {key:?})"
            ));
        }
        if !keys.insert(key.to_string(), secret.to_string()) {
            return Err(format!("--http-access-key {key} is given more than once"));
        }
    }
    Ok(Some(keys))
}

/// The object caps, each at least 1 (a cap of 0 would only make every create fail).
fn object_limits(args: &ServeArgs) -> Result<config::ObjectLimits, String> {
    let caps = [
        ("--max-topics", args.max_topics as u64),
        ("--max-partitions", args.max_partitions),
        ("--max-queues", args.max_queues as u64),
        ("--max-exchanges", args.max_exchanges as u64),
        ("--max-bindings", args.max_bindings as u64),
        ("--max-groups-per-shard", args.max_groups_per_shard as u64),
        ("--max-sns-topics", args.max_sns_topics as u64),
        (
            "--max-sns-subscriptions-per-topic",
            args.max_sns_subscriptions_per_topic as u64,
        ),
    ];
    if let Some((flag, _)) = caps.iter().find(|(_, cap)| *cap == 0) {
        return Err(format!("{flag} must be at least 1"));
    }
    Ok(config::ObjectLimits {
        max_topics: args.max_topics,
        max_partitions: args.max_partitions,
        max_queues: args.max_queues,
        max_exchanges: args.max_exchanges,
        max_bindings: args.max_bindings,
        max_groups_per_shard: args.max_groups_per_shard,
        max_sns_topics: args.max_sns_topics,
        max_sns_subscriptions_per_topic: args.max_sns_subscriptions_per_topic,
    })
}

pub fn run(args: ServeArgs) -> CliResult {
    let config = config_from(args)?;
    crate::server::run(config, front_ends())?;
    Ok(())
}

/// The protocols a broker serves: each listener's connections go to one front end.
pub fn front_ends() -> crate::server::FrontEnds {
    use crate::metrics::local::connection;
    use crate::metrics::Protocol;
    use crate::server::FrontEnd;
    crate::server::FrontEnds {
        native: FrontEnd {
            serve: |engine, stream| {
                let serve = crate::native::connection::serve(engine, stream);
                Box::pin(connection(Protocol::Native, serve))
            },
            refusal: crate::native::connection::refusal,
        },
        kafka: FrontEnd {
            serve: |engine, stream| {
                Box::pin(connection(
                    Protocol::Kafka,
                    crate::kafka::serve(engine, stream),
                ))
            },
            // Kafka has no unsolicited answer: the connection is just closed.
            refusal: Vec::new,
        },
        http: FrontEnd {
            serve: |engine, stream| {
                Box::pin(connection(
                    Protocol::Http,
                    crate::http::serve(engine, stream),
                ))
            },
            refusal: crate::http::refusal,
        },
        amqp: FrontEnd {
            serve: |engine, stream| {
                Box::pin(connection(
                    Protocol::Amqp,
                    crate::amqp::serve(engine, stream),
                ))
            },
            refusal: crate::amqp::refusal,
        },
    }
}
