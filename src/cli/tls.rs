//! The TLS flags: `serve`'s TLS listeners and files, and the native clients' (`produce`,
//! `consume`, `bench`) way to connect over TLS; `Broker`, the target of the client
//! commands, also carries their credential flags (`cli::auth`).

use crate::client::tls::ClientTls;
use crate::config::TlsListeners;
use crate::server::tls::TlsFiles;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Default)]
pub struct TlsServeArgs {
    /// PEM certificate chain (leaf first) the TLS listeners present. Reloaded on SIGHUP
    /// and when the file changes: new connections get the new certificate.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate(s) of the CA that signs client certificates: TLS clients must show
    /// one (mTLS); its subject's CN (or first SAN) is the connection's principal.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Native protocol over TLS, beside --native-addr; each shard also listens on its
    /// own TLS port (port + 1 + shard, or free ports when 0).
    #[arg(long, requires = "tls_cert")]
    pub native_tls_addr: Option<SocketAddr>,
    /// Kafka over TLS (`security.protocol=ssl`), beside --kafka-addr; each shard also
    /// listens on its own TLS port (port + 1 + shard, or free ports when 0).
    #[arg(long, requires = "tls_cert")]
    pub kafka_tls_addr: Option<SocketAddr>,
    /// `host:port` told to Kafka clients that came in over TLS. Default: the Kafka TLS
    /// address.
    #[arg(long, requires = "kafka_tls_addr")]
    pub advertised_kafka_tls_addr: Option<String>,
    /// AMQP 0-9-1 over TLS (amqps; RabbitMQ's port is 5671), beside --amqp-addr.
    #[arg(long, requires = "tls_cert")]
    pub amqp_tls_addr: Option<SocketAddr>,
    /// HTTPS (metrics, health, SQS, SNS), beside --http-addr.
    #[arg(long, requires = "tls_cert")]
    pub http_tls_addr: Option<SocketAddr>,
}

impl TlsServeArgs {
    /// The TLS listeners asked for; None without --tls-cert. A certificate without any
    /// TLS address would do nothing, and is refused.
    pub fn listeners(self) -> Result<Option<TlsListeners>, String> {
        let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) else {
            return Ok(None);
        };
        let addrs = [
            self.native_tls_addr,
            self.kafka_tls_addr,
            self.amqp_tls_addr,
            self.http_tls_addr,
        ];
        if addrs.iter().all(Option::is_none) {
            return Err("--tls-cert needs at least one TLS listener: --native-tls-addr, --kafka-tls-addr, --amqp-tls-addr or --http-tls-addr".into());
        }
        Ok(Some(TlsListeners {
            files: TlsFiles {
                cert,
                key,
                client_ca: self.tls_client_ca,
            },
            native_addr: self.native_tls_addr,
            kafka_addr: self.kafka_tls_addr,
            advertised_kafka_addr: self.advertised_kafka_tls_addr,
            amqp_addr: self.amqp_tls_addr,
            http_addr: self.http_tls_addr,
            native_shard_ports: Vec::new(),
            kafka_shard_ports: Vec::new(),
        }))
    }
}

/// How a native client reaches a TLS listener (`--native-tls-addr`).
#[derive(Args, Debug, Default, Clone)]
pub struct TlsClientArgs {
    /// Connect over TLS, trusting broker certificates signed by this CA (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to show a broker that asks for one (--tls-client-ca).
    #[arg(long, requires = "tls_ca", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM private key of --tls-client-cert.
    #[arg(long, requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// The name the broker's certificate must carry. Default: the bootstrap host.
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl TlsClientArgs {
    /// The client's TLS settings; None without --tls-ca (plaintext).
    pub fn client_tls(&self) -> Result<Option<Arc<ClientTls>>, String> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = self
            .tls_client_cert
            .as_deref()
            .zip(self.tls_client_key.as_deref());
        ClientTls::from_files(ca, identity, self.tls_server_name.clone())
            .map(|t| Some(Arc::new(t)))
            .map_err(|e| e.to_string())
    }
}

/// The broker a command talks to: its native address, over TLS when `--tls-ca` is given,
/// authenticated when `--user` is.
#[derive(Args, Debug, Clone)]
pub struct Broker {
    #[arg(long, default_value = super::BOOTSTRAP_DEFAULT)]
    pub bootstrap: String,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    #[command(flatten)]
    pub auth: super::auth::AuthClientArgs,
}

impl Broker {
    /// A native client connected to it (and authenticated).
    pub fn connect(&self) -> Result<crate::client::Client, Box<dyn std::error::Error>> {
        connect(&self.bootstrap, &self.tls, &self.auth)
    }
}

/// A native client connected to `bootstrap` as the flags say: TLS, credentials.
pub fn connect(
    bootstrap: &str,
    tls: &TlsClientArgs,
    auth: &super::auth::AuthClientArgs,
) -> Result<crate::client::Client, Box<dyn std::error::Error>> {
    Ok(crate::client::Client::connect_as(
        bootstrap,
        tls.client_tls()?,
        auth.credentials()?,
    )?)
}
