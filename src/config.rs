//! The broker's settings, with the embedded defaults a bare `peregrine serve` uses.

use peregrine_shards::log::FsyncPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DATA_DIR_DEFAULT: &str = "./peregrine-data";
pub const NATIVE_ADDR_DEFAULT: &str = "127.0.0.1:7070";
pub const KAFKA_ADDR_DEFAULT: &str = "127.0.0.1:9092";
pub const MAX_FRAME_BYTES_DEFAULT: u32 = 8 << 20;
pub const CACHE_MB_DEFAULT: usize = 256;
/// Cross-core calls of each kind one shard may have in flight: four native connections'
/// worth of pipelined requests (1,024 each), a few hundred bytes each while they wait.
pub const CROSS_CORE_IN_FLIGHT_MAX_DEFAULT: usize = 4096;

/// What one client connection, and all the connections of one listener, may make the
/// broker hold (`--max-connections`, `--max-in-flight-requests`, `--max-in-flight-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per listener kind (native, Kafka, HTTP), counted across every
    /// shard and the shards' own ports; one past it is accepted and closed at once.
    pub max_connections: usize,
    /// Requests one native or Kafka connection may have read and not yet answered; past
    /// it the connection is not read (TCP backpressure).
    pub max_in_flight_requests: usize,
    /// Request bytes one native or Kafka connection may hold in flight; past it the
    /// connection is not read. A frame larger than this is still served, alone.
    pub max_in_flight_bytes: u64,
    /// Long polls (a Fetch or a pull Receive waiting for data) one shard keeps waiting
    /// at once; past it a long poll is answered at once with what there is, which both
    /// protocols allow. Bounds what clients, including gone ones, leave waiting.
    pub max_long_polls: usize,
    /// A native, Kafka or AMQP (heartbeats off) connection idle this long, with nothing
    /// in progress (no request being served, no long poll or subscription waiting), is
    /// closed, as Kafka's `connections.max.idle.ms`; 0: never.
    pub connections_max_idle_ms: u64,
}

impl ConnectionLimits {
    /// Per listener: far above what a broker serves in practice, well under the file
    /// descriptors a production host allows (raise `ulimit -n` to match a higher value).
    pub const MAX_CONNECTIONS_DEFAULT: usize = 10_000;
    /// Enough pipelining for any client (librdkafka keeps at most 5 produce requests
    /// per partition leader by default; the native bench pipelines hundreds).
    pub const MAX_IN_FLIGHT_REQUESTS_DEFAULT: usize = 1024;
    /// With the request bound, this bounds a connection's request memory.
    pub const MAX_IN_FLIGHT_BYTES_DEFAULT: u64 = 64 << 20;
    /// Per shard: one per connection at the connection bound.
    pub const MAX_LONG_POLLS_DEFAULT: usize = 10_000;
    /// Kafka's broker default (10 minutes): far longer than any client's own idle close
    /// (librdkafka 9 min, the Java client 9 min), so a client closes first.
    pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: Self::MAX_CONNECTIONS_DEFAULT,
            max_in_flight_requests: Self::MAX_IN_FLIGHT_REQUESTS_DEFAULT,
            max_in_flight_bytes: Self::MAX_IN_FLIGHT_BYTES_DEFAULT,
            max_long_polls: Self::MAX_LONG_POLLS_DEFAULT,
            connections_max_idle_ms: Self::CONNECTIONS_MAX_IDLE_MS_DEFAULT,
        }
    }
}

/// How many topics, partitions, queues, exchanges, bindings and groups clients may
/// create (`--max-topics`, `--max-partitions`, `--max-queues`, `--max-exchanges`,
/// `--max-bindings`, `--max-groups-per-shard`). Each object holds memory and open files for as long as it
/// exists, so each count has a cap; a create past it is refused with an error that
/// names the flag, and a redeclare of an existing object or a delete is never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLimits {
    /// Topics in the catalog.
    pub max_topics: usize,
    /// Partitions of all topics together (each holds its segment files open).
    pub max_partitions: u64,
    /// Message queues in the catalog.
    pub max_queues: usize,
    /// Exchanges in the catalog.
    pub max_exchanges: usize,
    /// Bindings of all exchanges together.
    pub max_bindings: usize,
    /// Consumer groups (with members or committed offsets) each shard owns.
    pub max_groups_per_shard: usize,
    /// SNS topics in the catalog (each is also an engine topic of one partition).
    pub max_sns_topics: usize,
    /// Subscriptions of one SNS topic.
    pub max_sns_subscriptions_per_topic: usize,
}

impl ObjectLimits {
    /// Far more topics than a broker of ours serves in practice; bounds the catalog
    /// (its file and the snapshot each shard holds) to a few MiB.
    pub const MAX_TOPICS_DEFAULT: usize = 10_000;
    /// Each partition holds open segment files and in-memory indexes; 100,000 is what a
    /// production host serves once `ulimit -n` is raised, as Kafka needs too.
    pub const MAX_PARTITIONS_DEFAULT: u64 = 100_000;
    /// As topics: a queue holds a journal and its messages' metadata.
    pub const MAX_QUEUES_DEFAULT: usize = 10_000;
    /// Exchanges hold only their bindings; as many as queues.
    pub const MAX_EXCHANGES_DEFAULT: usize = 10_000;
    /// Ten per queue; at most `BINDING_ARGUMENTS_MAX_BYTES` of key and headers each.
    pub const MAX_BINDINGS_DEFAULT: usize = 100_000;
    pub const MAX_GROUPS_PER_SHARD_DEFAULT: usize =
        peregrine_shards::groups::GROUPS_PER_SHARD_DEFAULT;
    /// As topics: each SNS topic holds a backing topic (and its fan-out cursor, a group).
    pub const MAX_SNS_TOPICS_DEFAULT: usize = 10_000;
    /// AWS allows 12.5 million; ours live in the catalog, so far fewer.
    pub const MAX_SNS_SUBSCRIPTIONS_PER_TOPIC_DEFAULT: usize = 10_000;
}

impl Default for ObjectLimits {
    fn default() -> ObjectLimits {
        ObjectLimits {
            max_topics: Self::MAX_TOPICS_DEFAULT,
            max_partitions: Self::MAX_PARTITIONS_DEFAULT,
            max_queues: Self::MAX_QUEUES_DEFAULT,
            max_exchanges: Self::MAX_EXCHANGES_DEFAULT,
            max_bindings: Self::MAX_BINDINGS_DEFAULT,
            max_groups_per_shard: Self::MAX_GROUPS_PER_SHARD_DEFAULT,
            max_sns_topics: Self::MAX_SNS_TOPICS_DEFAULT,
            max_sns_subscriptions_per_topic: Self::MAX_SNS_SUBSCRIPTIONS_PER_TOPIC_DEFAULT,
        }
    }
}

/// What Kafka transactions may hold (`--max-transaction-timeout-ms`,
/// `--max-transactional-ids-per-shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Largest `transaction.timeout.ms` a producer may ask for; InitProducerId with a
    /// larger one is refused (Kafka's `transaction.max.timeout.ms`).
    pub max_transaction_timeout_ms: i32,
    /// Transactional ids each shard's coordinator keeps; an InitProducerId for one more
    /// is refused, after ids idle for 7 days without a transaction under way are
    /// dropped (Kafka's `transactional.id.expiration.ms`).
    pub max_transactional_ids_per_shard: usize,
}

impl TransactionLimits {
    /// Kafka's default, 15 minutes.
    pub const MAX_TRANSACTION_TIMEOUT_MS_DEFAULT: i32 =
        peregrine_shards::txn::MAX_TRANSACTION_TIMEOUT_MS_DEFAULT;
    /// Each id holds a few hundred bytes of state (more while a transaction spans
    /// many partitions); 100,000 per core bounds that to tens of MiB.
    pub const MAX_TRANSACTIONAL_IDS_PER_SHARD_DEFAULT: usize =
        peregrine_shards::txn::TRANSACTIONAL_IDS_PER_SHARD_DEFAULT;
}

impl Default for TransactionLimits {
    fn default() -> TransactionLimits {
        TransactionLimits {
            max_transaction_timeout_ms: Self::MAX_TRANSACTION_TIMEOUT_MS_DEFAULT,
            max_transactional_ids_per_shard: Self::MAX_TRANSACTIONAL_IDS_PER_SHARD_DEFAULT,
        }
    }
}

/// How the SQS API names this broker (`--sqs-region`, `--sqs-account-id`): in queue
/// URLs (`http://host/{account_id}/{queue}`) and ARNs
/// (`arn:aws:sqs:{region}:{account_id}:{queue}`); and what SNS trusts beyond the
/// system's CAs when it delivers to https endpoints (`--sns-https-ca`), and the key SNS
/// signs its messages with (`--sns-signing-key`, `--sns-signing-cert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSettings {
    pub region: String,
    /// Twelve digits, as AWS account ids are.
    pub account_id: String,
    /// PEM files of CA certificates an https SNS endpoint's certificate may chain to.
    pub sns_https_ca: Vec<std::path::PathBuf>,
    /// `--sns-signing-key` and `--sns-signing-cert` (PEM files); None: the data
    /// directory's key, made at the first start (`sns::signing`).
    pub sns_signing_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The SNS signing key, loaded when the broker starts (before the shards). None
    /// with `--sns-signing off`, and in configurations no start loaded (unit tests):
    /// their signed envelopes carry empty signatures.
    pub sns_signing: Option<std::sync::Arc<crate::sns::signing::SigningKey>>,
    /// `--sns-signing`: which envelopes are signed.
    pub sns_signing_scope: crate::sns::signing::Scope,
}

impl SqsSettings {
    /// What local SQS stand-ins answer by default, so clients set up for them work.
    pub const REGION_DEFAULT: &'static str = "us-east-1";
    pub const ACCOUNT_ID_DEFAULT: &'static str = "000000000000";

    /// The ARN of queue `name`: `arn:aws:sqs:{region}:{account}:{name}`.
    pub fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account_id)
    }

    /// The queue an SQS ARN names, when it is of this region and account (whether the
    /// name is one SQS allows is the SQS front end's to check).
    pub fn queue_of_arn<'a>(&self, arn: &'a str) -> Option<&'a str> {
        let rest = arn.strip_prefix("arn:aws:sqs:")?;
        let rest = rest.strip_prefix(self.region.as_str())?.strip_prefix(':')?;
        let queue = rest
            .strip_prefix(self.account_id.as_str())?
            .strip_prefix(':')?;
        (!queue.is_empty() && !queue.contains(':')).then_some(queue)
    }

    /// The ARN of SNS topic `name`: `arn:aws:sns:{region}:{account}:{name}`.
    pub fn topic_arn(&self, name: &str) -> String {
        format!("arn:aws:sns:{}:{}:{name}", self.region, self.account_id)
    }
}

impl Default for SqsSettings {
    fn default() -> SqsSettings {
        SqsSettings {
            region: Self::REGION_DEFAULT.to_string(),
            account_id: Self::ACCOUNT_ID_DEFAULT.to_string(),
            sns_https_ca: Vec::new(),
            sns_signing_files: None,
            sns_signing: None,
            sns_signing_scope: crate::sns::signing::Scope::All,
        }
    }
}

/// The `--http-access-key KEY:SECRET` access keys: access key id → secret. Debug output names the keys, never the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HttpAccessKeys {
    secrets: std::collections::BTreeMap<String, String>,
}

impl HttpAccessKeys {
    /// Adds a key; false if the id was there already.
    pub fn insert(&mut self, key: String, secret: String) -> bool {
        self.secrets.insert(key, secret).is_none()
    }

    /// The secret of an access key id.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl std::fmt::Debug for HttpAccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.secrets.keys()).finish()
    }
}

/// What Kafka Metadata says the cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaNodes {
    /// Every shard is a node (id = shard index) on its own Kafka port, leading the
    /// partitions it owns: clients send each partition's requests to the owning core.
    PerShard,
    /// One node (id 0) on the shared Kafka port; shards forward to the owner.
    Single,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Shared native port: every shard listens on it with SO_REUSEPORT.
    pub native_addr: SocketAddr,
    pub kafka_addr: SocketAddr,
    /// `host:port` Kafka clients are told to connect to (Metadata, FindCoordinator).
    /// None: the bound Kafka address (127.0.0.1 in place of an unspecified address).
    pub advertised_kafka_addr: Option<String>,
    /// Create a topic on a Kafka Metadata or Produce request that names an unknown one.
    pub auto_create_topics: bool,
    /// Largest record batch a Kafka produce may carry (Kafka's `message.max.bytes`).
    pub kafka_message_max_bytes: u32,
    /// Longest a Kafka SASL session lasts before the client must re-authenticate
    /// (`--sasl-session-lifetime-ms`, KIP-368); 0: no limit.
    pub sasl_session_lifetime_ms: u64,
    /// How the broker describes itself to Kafka clients.
    pub kafka_nodes: KafkaNodes,
    /// Each shard's own Kafka port, by shard index (filled in when the ports are bound).
    pub kafka_shard_ports: Vec<u16>,
    /// First port of the per-shard native ports (shard i listens on base + i); 0 picks
    /// free ports, reported by Metadata.
    pub shard_port_base: u16,
    pub shards: usize,
    /// Core to pin each shard to, by shard index.
    pub cores: Vec<usize>,
    pub max_frame_bytes: u32,
    pub fsync: FsyncPolicy,
    /// See `LogConfig::write_linger`.
    pub write_linger: std::time::Duration,
    /// Per-shard cache of recent batches, in MiB.
    pub cache_mb: usize,
    /// How often each shard applies retention to its partitions.
    pub retention_check: Duration,
    /// Busy-poll this long before an idle shard parks (glommio spin_before_park).
    pub poll_us: u64,
    /// Cross-core calls of each kind (`engine::CallClass`) one shard may have in flight;
    /// a call past it waits.
    pub cross_core_in_flight_max: usize,
    /// See `LogConfig::producer_id_expiration_ms` (`--producer-id-expiration-ms`).
    pub producer_id_expiration_ms: u64,
    /// Stalls longer than this are logged (`--stall-warn-ms`); none: not detected.
    pub stall_warn: Option<std::time::Duration>,
    /// HTTP address (`/metrics`, `/healthz`, `/readyz`), shared by every shard.
    pub http_addr: SocketAddr,
    /// Region and account the SQS API puts in queue URLs and ARNs.
    pub sqs: SqsSettings,
    /// `--http-auth`: every SQS/SNS request must be signed (SigV4) by a known key.
    pub http_auth: bool,
    /// `--http-access-key`s: access keys of principal `User:<key id>`, beside the user
    /// store's.
    pub http_access_keys: HttpAccessKeys,
    /// `--metrics-token-file`: the bearer token `/metrics` asks for; None: open.
    pub metrics_token: Option<crate::http::auth::MetricsToken>,
    /// AMQP 0-9-1 address, shared by every shard.
    pub amqp_addr: SocketAddr,
    /// AMQP users besides `guest` (`--amqp-users`): name and password.
    pub amqp_users: Vec<(String, String)>,
    /// Connections per listener and what each may hold in flight.
    pub connection_limits: ConnectionLimits,
    /// Caps on the numbers of topics, partitions, queues, exchanges and groups.
    pub object_limits: ObjectLimits,
    /// Transaction timeout cap and transactional ids per shard.
    pub transaction_limits: TransactionLimits,
    /// TLS listeners beside the plaintext ones (`--tls-cert` and the `--*-tls-addr`
    /// flags); None: no TLS.
    pub tls: Option<TlsListeners>,
    /// Authentication and authorization (`--require-auth`, `--acls`, `--super-user`,
    /// `--login-failures-per-minute`).
    pub security: SecurityConfig,
}

impl ServerConfig {
    /// Whether `listener` serves nothing but the authentication handshake until the
    /// client has authenticated (`--require-auth`). A client whose TLS certificate was
    /// verified counts as authenticated.
    pub fn require_auth(&self, listener: Listener) -> bool {
        self.security.require_auth.contains(&listener)
    }
}

/// A kind of listener, as `--require-auth` names it: each protocol in plaintext and
/// over TLS (a shard's own ports count as their shared listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Listener {
    Native,
    NativeTls,
    Kafka,
    KafkaTls,
    Amqp,
    AmqpTls,
    Http,
    HttpTls,
}

impl Listener {
    /// The listener of `protocol` over TLS or not.
    pub fn of(protocol: crate::metrics::Protocol, tls: bool) -> Listener {
        use crate::metrics::Protocol;
        match (protocol, tls) {
            (Protocol::Native, false) => Listener::Native,
            (Protocol::Native, true) => Listener::NativeTls,
            (Protocol::Kafka, false) => Listener::Kafka,
            (Protocol::Kafka, true) => Listener::KafkaTls,
            (Protocol::Amqp, false) => Listener::Amqp,
            (Protocol::Amqp, true) => Listener::AmqpTls,
            (Protocol::Http, false) => Listener::Http,
            (Protocol::Http, true) => Listener::HttpTls,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Native => "native",
            Listener::NativeTls => "native-tls",
            Listener::Kafka => "kafka",
            Listener::KafkaTls => "kafka-tls",
            Listener::Amqp => "amqp",
            Listener::AmqpTls => "amqp-tls",
            Listener::Http => "http",
            Listener::HttpTls => "http-tls",
        }
    }
}

/// Who must log in where, whether ACLs are enforced, and how failed logins are limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Listeners that serve nothing but the handshake before authentication.
    pub require_auth: std::collections::BTreeSet<Listener>,
    /// `--acls`: enforce ACLs (a request is allowed only when a binding allows it and
    /// none denies it). Off: everything is allowed, as Kafka without an authorizer.
    pub acls: bool,
    /// Principals (`User:NAME`) that every ACL check allows.
    pub super_users: Vec<String>,
    /// Failed logins one peer address may have per minute (per shard); past it its
    /// logins are refused without checking the password.
    pub login_failures_per_minute: u32,
}

impl SecurityConfig {
    /// A few typos a minute, far fewer guesses than a password search needs.
    pub const LOGIN_FAILURES_PER_MINUTE_DEFAULT: u32 = 10;
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            require_auth: std::collections::BTreeSet::new(),
            acls: false,
            super_users: Vec::new(),
            login_failures_per_minute: Self::LOGIN_FAILURES_PER_MINUTE_DEFAULT,
        }
    }
}

/// The TLS listeners and the files they serve. Each one speaks the same protocol as its
/// plaintext sibling; their connections count with the sibling's under
/// `--max-connections`.
#[derive(Debug, Clone)]
pub struct TlsListeners {
    pub files: crate::server::tls::TlsFiles,
    /// Native protocol over TLS; shards' own TLS ports follow it (port + 1 + shard, or
    /// free ports when it is 0).
    pub native_addr: Option<SocketAddr>,
    /// Kafka over TLS (`security.protocol=ssl`); shards' own TLS ports follow it as for
    /// the plaintext Kafka port.
    pub kafka_addr: Option<SocketAddr>,
    /// `host:port` told to Kafka clients that came in over TLS. Default: the Kafka TLS
    /// address (127.0.0.1 in place of an unspecified address).
    pub advertised_kafka_addr: Option<String>,
    pub amqp_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    /// Each shard's own native TLS port, by shard index (filled in when bound).
    pub native_shard_ports: Vec<u16>,
    /// Each shard's own Kafka TLS port, by shard index (filled in when bound).
    pub kafka_shard_ports: Vec<u16>,
}

#[cfg(test)]
mod tests {
    use super::SqsSettings;

    #[test]
    fn sqs_settings_default_to_what_local_sqs_stand_ins_answer() {
        let sqs = SqsSettings::default();
        assert_eq!(
            (sqs.region.as_str(), sqs.account_id.as_str()),
            ("us-east-1", "000000000000")
        );
        assert_eq!(sqs.account_id.len(), 12);
    }

    #[test]
    fn queue_arns_of_this_broker_name_their_queue() {
        let s = SqsSettings::default();
        let q = |arn| s.queue_of_arn(arn);
        assert_eq!(
            s.queue_arn("orders"),
            "arn:aws:sqs:us-east-1:000000000000:orders"
        );
        assert_eq!(
            q("arn:aws:sqs:us-east-1:000000000000:orders"),
            Some("orders")
        );
        assert_eq!(q("arn:aws:sqs:eu-west-1:000000000000:orders"), None);
        assert_eq!(q("arn:aws:sqs:us-east-1:111111111111:orders"), None);
        assert_eq!(q("arn:aws:sqs:us-east-1:000000000000:"), None);
        assert_eq!(q("arn:aws:sqs:us-east-1:000000000000:a:b"), None);
        assert_eq!(s.topic_arn("t"), "arn:aws:sns:us-east-1:000000000000:t");
    }
}
