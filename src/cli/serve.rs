//! `peregrine serve`: flags, their defaults, and the broker start: the data directory's
//! lock, taken for the broker's whole run, and the initial user (`--initial-user`).

use super::CliResult;
use crate::args::parse_cores;
use crate::config::{self, ServerConfig};
use clap::Args;
use peregrine_shards::data_dir_lock::DataDirLock;
use peregrine_shards::log::{FsyncPolicy, LogConfig};
use peregrine_shards::security::offline::OfflineCatalog;
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
    /// Longest a Kafka SASL session lasts (KIP-368, Kafka's `connections.max.reauth.ms`):
    /// the client is told it at authentication and must re-authenticate before it ends,
    /// or its connection is closed at its next request. 0: sessions do not expire.
    #[arg(long, default_value_t = 0)]
    pub sasl_session_lifetime_ms: u64,
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
    /// A PEM file of CA certificates that https SNS endpoints may be signed by, beside
    /// the system's trusted CAs (repeat for more files).
    #[arg(long, value_name = "PATH")]
    pub sns_https_ca: Vec<std::path::PathBuf>,
    /// The RSA private key (PEM, PKCS#8 or PKCS#1) SNS signs its messages with, given
    /// with --sns-signing-cert, its certificate (PEM), which the HTTP listeners serve as
    /// SigningCertURL. Default: a key made at the first start and kept in the data
    /// directory (meta/sns-signing-key.pem, meta/sns-signing-cert.pem).
    #[arg(long, value_name = "PATH", requires = "sns_signing_cert")]
    pub sns_signing_key: Option<PathBuf>,
    /// The certificate of --sns-signing-key (PEM).
    #[arg(long, value_name = "PATH", requires = "sns_signing_key")]
    pub sns_signing_cert: Option<PathBuf>,
    /// Which SNS envelopes are signed: all (as SNS: every Notification and
    /// SubscriptionConfirmation, queue and Kafka envelopes included), http (only what
    /// goes to HTTP/HTTPS endpoints, which is what SNS's verifiers check), off (nothing;
    /// no key is made). A signature costs about 0.25 ms of CPU with either
    /// SignatureVersion (benches/RESULTS.md), which bounds an enveloped fan-out of
    /// distinct messages.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = SnsSigningArg::All)]
    pub sns_signing: SnsSigningArg,
    /// Require an AWS Signature V4 on every SQS and SNS request, by a --http-access-key
    /// key or a user's access key (refused: MissingAuthenticationToken,
    /// InvalidClientTokenId, SignatureDoesNotMatch). Off by default: unsigned requests
    /// and unknown keys are served as User:ANONYMOUS; known keys are still verified.
    #[arg(long)]
    pub http_auth: bool,
    /// An access key of principal User:KEY, as KEY:SECRET (repeat for more keys; the user
    /// store's keys keep secrets off the command line). The key id is 1 to 128 of A-Z
    /// a-z 0-9; the secret at least 1 byte.
    #[arg(long, value_name = "KEY:SECRET")]
    pub http_access_key: Vec<String>,
    /// A file holding the bearer token `GET /metrics` must present (`Authorization:
    /// Bearer TOKEN`; 401 without it). `/healthz` and `/readyz` stay open. Default: none,
    /// `/metrics` is open.
    #[arg(long, value_name = "PATH")]
    pub metrics_token_file: Option<PathBuf>,
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
    /// Close a native or Kafka connection (and an AMQP one with heartbeats off) that
    /// has sent and received nothing this long with nothing in progress: no request
    /// being served, no long poll, fetch or subscription waiting. Kafka's
    /// `connections.max.idle.ms`; 0: never. HTTP keep-alive connections close after 30 s.
    #[arg(long, default_value_t = config::ConnectionLimits::CONNECTIONS_MAX_IDLE_MS_DEFAULT)]
    pub connections_max_idle_ms: u64,
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
    /// Listeners that serve nothing but the login handshake until the client has
    /// authenticated: a comma list of native, native-tls, kafka, kafka-tls, amqp,
    /// amqp-tls, http, http-tls. A client whose TLS certificate was verified
    /// (--tls-client-ca) counts as authenticated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LISTENERS")]
    pub require_auth: Vec<config::Listener>,
    /// Enforce ACLs on every request of every protocol: allowed only when an ACL allows
    /// it and none denies it. Off by default: everything is allowed.
    #[arg(long)]
    pub acls: bool,
    /// A principal (User:NAME) that every ACL check allows; repeat for more.
    #[arg(long, value_name = "PRINCIPAL")]
    pub super_user: Vec<String>,
    /// A user to create when the broker starts with an empty user store (a first start),
    /// as RabbitMQ's default user: the first user of a `--require-auth` broker. Every
    /// SCRAM mechanism, the password from --initial-user-password-file. A store that
    /// holds any user is left alone. Give it rights with --super-user User:NAME.
    #[arg(long, value_name = "NAME", requires = "initial_user_password_file")]
    pub initial_user: Option<String>,
    /// A file whose first line is --initial-user's password.
    #[arg(long, value_name = "PATH", requires = "initial_user")]
    pub initial_user_password_file: Option<PathBuf>,
    /// Failed logins one peer address may have in a minute (counted across the shards); past it
    /// its logins are refused without checking the password.
    #[arg(long, default_value_t = config::SecurityConfig::LOGIN_FAILURES_PER_MINUTE_DEFAULT)]
    pub login_failures_per_minute: u32,
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
    let http_access_keys = http_access_keys(&args)?;
    let metrics_token = match &args.metrics_token_file {
        Some(path) => Some(crate::http::auth::MetricsToken::load(path)?),
        None => None,
    };
    let tls = std::mem::take(&mut args.tls).listeners()?;
    let security = security(&args, tls.as_ref())?;
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
        sasl_session_lifetime_ms: args.sasl_session_lifetime_ms,
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
        http_auth: args.http_auth,
        http_access_keys,
        metrics_token,
        amqp_addr: args.amqp_addr,
        amqp_users,
        connection_limits: config::ConnectionLimits {
            max_connections: args.max_connections,
            max_in_flight_requests: args.max_in_flight_requests,
            max_in_flight_bytes: args.max_in_flight_bytes,
            max_long_polls: args.max_long_polls,
            connections_max_idle_ms: args.connections_max_idle_ms,
        },
        object_limits,
        transaction_limits: config::TransactionLimits {
            max_transaction_timeout_ms: args.max_transaction_timeout_ms,
            max_transactional_ids_per_shard: args.max_transactional_ids_per_shard,
        },
        tls,
        security,
    })
}

/// `--require-auth`, `--acls`, `--super-user` and `--login-failures-per-minute`,
/// checked: a TLS listener named must exist, a super-user is a principal.
fn security(
    args: &ServeArgs,
    tls: Option<&config::TlsListeners>,
) -> Result<config::SecurityConfig, String> {
    use config::Listener;
    for listener in &args.require_auth {
        let configured = match listener {
            Listener::Native | Listener::Kafka | Listener::Amqp | Listener::Http => true,
            Listener::NativeTls => tls.is_some_and(|t| t.native_addr.is_some()),
            Listener::KafkaTls => tls.is_some_and(|t| t.kafka_addr.is_some()),
            Listener::AmqpTls => tls.is_some_and(|t| t.amqp_addr.is_some()),
            Listener::HttpTls => tls.is_some_and(|t| t.http_addr.is_some()),
        };
        if !configured {
            return Err(format!(
                "--require-auth {0} names a listener that is not configured (add --{0}-addr and --tls-cert)",
                listener.name()
            ));
        }
    }
    for principal in &args.super_user {
        let name = principal.strip_prefix("User:").unwrap_or("");
        if name.is_empty() || name.len() > peregrine_shards::security::users::USER_NAME_MAX {
            return Err(format!(
                "--super-user must be a principal such as User:admin, got {principal:?}"
            ));
        }
    }
    if args.login_failures_per_minute == 0 {
        return Err("--login-failures-per-minute must be at least 1".into());
    }
    Ok(config::SecurityConfig {
        require_auth: args.require_auth.iter().copied().collect(),
        acls: args.acls,
        super_users: args.super_user.clone(),
        login_failures_per_minute: args.login_failures_per_minute,
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
    // Read now, so that a bad file stops the start rather than every https delivery.
    if !args.sns_https_ca.is_empty() {
        crate::sns::trust::client_config(&args.sns_https_ca)?;
        sqs.sns_https_ca = args.sns_https_ca.clone();
    }
    if let (Some(key), Some(cert)) = (&args.sns_signing_key, &args.sns_signing_cert) {
        sqs.sns_signing_files = Some((key.clone(), cert.clone()));
    }
    sqs.sns_signing_scope = args.sns_signing.into();
    Ok(sqs)
}

/// Longest access key id `--http-access-key` takes (AWS's).
const HTTP_ACCESS_KEY_ID_MAX: usize = 128;

/// The `--http-access-key`s, checked.
fn http_access_keys(args: &ServeArgs) -> Result<config::HttpAccessKeys, String> {
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
    Ok(keys)
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
    let initial_user = match (&args.initial_user, &args.initial_user_password_file) {
        (Some(name), Some(file)) => Some((name.clone(), super::auth::read_password_file(file)?)),
        _ => None,
    };
    let config = config_from(args)?;
    // Held until the broker has stopped: no second broker and no `--data-dir` command
    // may change the directory under this one.
    let lock = DataDirLock::acquire(&config.data_dir)?;
    if let Some((name, password)) = initial_user {
        create_initial_user(&lock, &config.data_dir, &name, &password)?;
    }
    crate::server::run(config, front_ends())?;
    drop(lock);
    Ok(())
}

/// `--initial-user`: created only in an empty user store (see the flag).
fn create_initial_user(
    lock: &DataDirLock,
    data_dir: &std::path::Path,
    name: &str,
    password: &str,
) -> Result<(), String> {
    let mut catalog = OfflineCatalog::load(lock, data_dir).map_err(|e| e.to_string())?;
    let created = catalog
        .add_initial_user(name, password)
        .map_err(|e| format!("--initial-user {name}: {e}"))?;
    if created {
        tracing::info!(
            user = name,
            "initial user created (the user store was empty)"
        );
    } else {
        tracing::info!(
            user = name,
            "--initial-user left alone: the user store holds users already"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Listener;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn config(flags: &[&str]) -> Result<ServerConfig, String> {
        let argv = std::iter::once("serve").chain(flags.iter().copied());
        let parsed = Serve::try_parse_from(argv).map_err(|e| e.to_string())?;
        config_from(parsed.args)
    }

    #[test]
    fn security_flags_are_read_and_checked() {
        let c = config(&[
            "--require-auth",
            "kafka,native",
            "--require-auth",
            "amqp",
            "--acls",
            "--super-user",
            "User:admin",
            "--login-failures-per-minute",
            "3",
        ])
        .expect("valid");
        assert!(c.require_auth(Listener::Kafka) && c.require_auth(Listener::Amqp));
        assert!(c.require_auth(Listener::Native));
        assert!(!c.require_auth(Listener::Http) && !c.require_auth(Listener::KafkaTls));
        assert!(c.security.acls);
        assert_eq!(c.security.super_users, ["User:admin"]);
        assert_eq!(c.security.login_failures_per_minute, 3);

        let defaults = config(&[]).expect("valid");
        assert_eq!(defaults.security, config::SecurityConfig::default());
        assert!(!defaults.security.acls && defaults.security.require_auth.is_empty());
        assert_eq!(defaults.security.login_failures_per_minute, 10);

        for (flags, says) in [
            (&["--require-auth", "kafka-tls"][..], "not configured"),
            (&["--require-auth", "smtp"], "invalid value"),
            (&["--super-user", "admin"], "--super-user"),
            (&["--super-user", "User:"], "--super-user"),
            (&["--login-failures-per-minute", "0"], "at least 1"),
        ] {
            let e = config(flags).expect_err("refused");
            assert!(e.contains(says), "{flags:?}: {e}");
        }
    }
}

/// `--sns-signing`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnsSigningArg {
    All,
    Http,
    Off,
}

impl From<SnsSigningArg> for crate::sns::signing::Scope {
    fn from(a: SnsSigningArg) -> crate::sns::signing::Scope {
        use crate::sns::signing::Scope;
        match a {
            SnsSigningArg::All => Scope::All,
            SnsSigningArg::Http => Scope::Http,
            SnsSigningArg::Off => Scope::Off,
        }
    }
}
