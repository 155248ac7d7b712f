//! The native client library: used by the CLI, the bench and the tests.
//!
//! Blocking and simple on purpose: one `Connection` per broker port, requests pipelined
//! by id. A shard-aware client keeps one connection per shard and sends each
//! partition's requests straight to the shard that owns it, skipping the broker's
//! cross-core hop; otherwise every request goes through the bootstrap connection.

pub mod auth;
pub mod connection;
pub mod consumer;
pub mod partitioner;
pub mod producer;
pub mod queues;
pub mod records;
pub mod security;
pub mod tls;

use crate::native::messages::{
    AbortedTxn, Acks, CommitEntry, ErrorCode, Isolation, OffsetSpec, PartitionStats, Request,
    Response, TopicInfo, TopicSpec,
};
use bytes::Bytes;
pub use connection::Connection;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("{message} ({code:?})")]
    Broker { code: ErrorCode, message: String },
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What a fetch returned: raw batches plus the partition's bounds.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Below the first record of the oldest open transaction.
    pub last_stable_offset: i64,
    /// A `Committed` fetch's aborted transactions in the range (see
    /// `records::TxnFilter`); empty for an `Uncommitted` one.
    pub aborted: Vec<AbortedTxn>,
    pub batches: Bytes,
}

/// Turns an error answer into `Err`.
pub fn check(response: Response) -> Result<Response, ClientError> {
    match response {
        Response::Error { code, message } => Err(ClientError::Broker { code, message }),
        other => Ok(other),
    }
}

fn unexpected(what: &str, got: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer to {what}: {got:?}"))
}

pub struct Client {
    host: String,
    /// The bootstrap port (`connect_bootstrap`).
    port: u16,
    bootstrap: Connection,
    shard_aware: bool,
    shard_ports: Vec<u16>,
    shard_conns: HashMap<u32, Connection>,
    topics: HashMap<String, TopicInfo>,
    /// Owner shard of each queue used shard-aware.
    queue_owners: HashMap<String, u32>,
    /// Set when the broker is reached over TLS (its shards' own ports too).
    tls: Option<Arc<tls::ClientTls>>,
    /// Set by `authenticate`: every connection opened later authenticates with them.
    credentials: Option<Arc<auth::Credentials>>,
}

impl Client {
    /// Connects to `bootstrap` (`host:port`).
    pub fn connect(bootstrap: &str) -> Result<Client, ClientError> {
        Client::connect_with(bootstrap, None)
    }

    /// Connects to `bootstrap` (`host:port`), over TLS when `tls` is given: the broker's
    /// native TLS port (`--native-tls-addr`), whose metadata names its shards' TLS ports.
    pub fn connect_with(
        bootstrap: &str,
        tls: Option<Arc<tls::ClientTls>>,
    ) -> Result<Client, ClientError> {
        let not_host_port = || ClientError::Protocol(format!("'{bootstrap}' is not host:port"));
        let (host, port) = bootstrap.rsplit_once(':').ok_or_else(not_host_port)?;
        let port: u16 = port.parse().map_err(|_| not_host_port())?;
        let host = host.to_string();
        Ok(Client {
            bootstrap: Connection::connect_to(&host, port, tls.as_deref())?,
            host,
            port,
            tls,
            credentials: None,
            shard_aware: false,
            shard_ports: Vec::new(),
            shard_conns: HashMap::new(),
            topics: HashMap::new(),
            queue_owners: HashMap::new(),
        })
    }

    /// `connect_with`, then `authenticate` when `credentials` are given.
    pub fn connect_as(
        bootstrap: &str,
        tls: Option<Arc<tls::ClientTls>>,
        credentials: Option<Arc<auth::Credentials>>,
    ) -> Result<Client, ClientError> {
        let mut client = Client::connect_with(bootstrap, tls)?;
        if let Some(credentials) = credentials {
            client.authenticate(credentials)?;
        }
        Ok(client)
    }

    /// Authenticates the bootstrap connection (SCRAM) and keeps the credentials for
    /// every connection this client opens later (shard ports); returns the principal
    /// the broker now knows this client as (`User:NAME`).
    pub fn authenticate(
        &mut self,
        credentials: impl Into<Arc<auth::Credentials>>,
    ) -> Result<String, ClientError> {
        let credentials = credentials.into();
        let principal = self.bootstrap.authenticate(&credentials)?;
        self.credentials = Some(credentials);
        Ok(principal)
    }

    /// Another connection to the bootstrap address, as this client connects.
    pub fn connect_bootstrap(&self) -> Result<Connection, ClientError> {
        self.connect_port(self.port)
    }

    /// A new connection to one of the broker's ports, as this client connects: over TLS
    /// when it does, authenticated when it is.
    pub fn connect_port(&self, port: u16) -> Result<Connection, ClientError> {
        let mut conn = Connection::connect_to(&self.host, port, self.tls.as_deref())?;
        if let Some(credentials) = &self.credentials {
            conn.authenticate(credentials)?;
        }
        Ok(conn)
    }

    /// The credentials this client authenticated with, if it did.
    pub fn credentials(&self) -> Option<&Arc<auth::Credentials>> {
        self.credentials.as_ref()
    }

    /// How many shards the broker runs (from its metadata).
    pub fn shard_count(&mut self) -> Result<usize, ClientError> {
        Ok(self.known_shard_ports()?.len())
    }

    /// Each shard's own port, asked for once.
    fn known_shard_ports(&mut self) -> Result<&[u16], ClientError> {
        if self.shard_ports.is_empty() {
            self.metadata(Some(Vec::new()))?;
        }
        Ok(&self.shard_ports)
    }

    /// Sends partition and queue requests straight to their owning shard's own port.
    pub fn set_shard_aware(&mut self, on: bool) {
        self.shard_aware = on;
    }

    /// One request on the bootstrap connection; error answers become `Err`.
    pub fn call(
        &mut self,
        request: Request,
        payload: &[&[u8]],
    ) -> Result<(Response, Bytes), ClientError> {
        let (response, payload) = self.bootstrap.call(request, payload)?;
        Ok((check(response)?, payload))
    }

    pub fn metadata(&mut self, topics: Option<Vec<String>>) -> Result<Vec<TopicInfo>, ClientError> {
        match self.call(Request::Metadata { topics }, &[])?.0 {
            Response::Metadata { shards, topics } => {
                self.shard_ports = shards.iter().map(|s| s.port).collect();
                for t in &topics {
                    self.topics.insert(t.name.clone(), t.clone());
                }
                Ok(topics)
            }
            other => Err(unexpected("metadata", &other)),
        }
    }

    /// The topic's metadata, from the cache or the broker.
    pub fn topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        if let Some(t) = self.topics.get(name) {
            return Ok(t.clone());
        }
        self.metadata(Some(vec![name.to_string()]))?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol(format!("no metadata for '{name}'")))
    }

    pub fn create_topic(&mut self, spec: TopicSpec) -> Result<(), ClientError> {
        self.call(Request::CreateTopic(spec), &[]).map(|_| ())
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        self.topics.remove(name);
        let request = Request::DeleteTopic {
            name: name.to_string(),
        };
        self.call(request, &[]).map(|_| ())
    }

    pub fn describe_topic(
        &mut self,
        name: &str,
    ) -> Result<(TopicInfo, Vec<PartitionStats>), ClientError> {
        let request = Request::DescribeTopic {
            name: name.to_string(),
        };
        match self.call(request, &[])?.0 {
            Response::TopicDescribed { topic, partitions } => Ok((topic, partitions)),
            other => Err(unexpected("describe", &other)),
        }
    }

    /// The connection partition requests should use, and the shard it leads to (None:
    /// the bootstrap connection, which routes).
    pub fn connection_for(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<(Option<u32>, &mut Connection), ClientError> {
        if !self.shard_aware {
            return Ok((None, &mut self.bootstrap));
        }
        let Some((shard, port)) = self.owner_port(topic, partition)? else {
            return Ok((None, &mut self.bootstrap));
        };
        if !self.shard_conns.contains_key(&shard) {
            let conn = self.connect_port(port)?;
            self.shard_conns.insert(shard, conn);
        }
        let conn = self
            .shard_conns
            .get_mut(&shard)
            .ok_or_else(|| ClientError::Protocol("shard connection vanished".into()))?;
        Ok((Some(shard), conn))
    }

    /// The shard that owns a partition and that shard's own port (None when the
    /// metadata does not say).
    pub fn owner_port(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(u32, u16)>, ClientError> {
        let info = self.topic(topic)?;
        let Some(&shard) = usize::try_from(partition)
            .ok()
            .and_then(|p| info.owners.get(p))
        else {
            return Ok(None);
        };
        Ok(self
            .known_shard_ports()?
            .get(shard as usize)
            .map(|port| (shard, *port)))
    }

    /// The shard that owns a queue and that shard's own port (None when the metadata
    /// does not say).
    pub fn queue_owner_port(&mut self, queue: &str) -> Result<Option<(u32, u16)>, ClientError> {
        let owner = match self.queue_owners.get(queue) {
            Some(owner) => *owner,
            None => {
                let owner = self.queue_stats(queue)?.owner;
                self.queue_owners.insert(queue.to_string(), owner);
                owner
            }
        };
        Ok(self
            .known_shard_ports()?
            .get(owner as usize)
            .map(|port| (owner, *port)))
    }

    /// The connection a queue's calls use: its owner shard's when shard-aware.
    pub fn queue_connection(&mut self, queue: &str) -> Result<&mut Connection, ClientError> {
        if !self.shard_aware {
            return Ok(&mut self.bootstrap);
        }
        let Some((shard, port)) = self.queue_owner_port(queue)? else {
            return Ok(&mut self.bootstrap);
        };
        if !self.shard_conns.contains_key(&shard) {
            let conn = self.connect_port(port)?;
            self.shard_conns.insert(shard, conn);
        }
        self.connection(Some(shard))
    }

    /// Where a new connection for `queue` should go (`host:port`): its owner shard's
    /// port when shard-aware, else `bootstrap`.
    pub fn queue_address(&mut self, queue: &str, bootstrap: &str) -> Result<String, ClientError> {
        if !self.shard_aware {
            return Ok(bootstrap.to_string());
        }
        Ok(match self.queue_owner_port(queue)? {
            Some((_, port)) => format!("{}:{port}", self.host),
            None => bootstrap.to_string(),
        })
    }

    /// The host of the bootstrap address; shard ports are on it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TLS settings this client connects with (None: plaintext).
    pub fn tls(&self) -> Option<&Arc<tls::ClientTls>> {
        self.tls.as_ref()
    }

    /// The connection for a shard returned by `connection_for`.
    pub fn connection(&mut self, shard: Option<u32>) -> Result<&mut Connection, ClientError> {
        match shard {
            None => Ok(&mut self.bootstrap),
            Some(s) => self
                .shard_conns
                .get_mut(&s)
                .ok_or_else(|| ClientError::Protocol(format!("no connection to shard {s}"))),
        }
    }

    fn partition_call(
        &mut self,
        topic: &str,
        partition: i32,
        request: Request,
        payload: &[&[u8]],
    ) -> Result<(Response, Bytes), ClientError> {
        let (_, conn) = self.connection_for(topic, partition)?;
        let (response, payload) = conn.call(request, payload)?;
        Ok((check(response)?, payload))
    }

    /// Sends one or more encoded batches and waits for the acknowledgement (returns
    /// `None` for acks=none, which is never answered).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: Acks,
        batches: &[u8],
    ) -> Result<Option<(i64, i64)>, ClientError> {
        let request = Request::Produce {
            topic: topic.to_string(),
            partition,
            acks,
        };
        if acks == Acks::None {
            let (_, conn) = self.connection_for(topic, partition)?;
            conn.send(request, &[batches])?;
            return Ok(None);
        }
        match self
            .partition_call(topic, partition, request, &[batches])?
            .0
        {
            Response::Produced {
                base_offset,
                last_offset,
            } => Ok(Some((base_offset, last_offset))),
            other => Err(unexpected("produce", &other)),
        }
    }

    /// Reads uncommitted (every record appended); see `fetch_with`.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<Fetched, ClientError> {
        self.fetch_with(
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
            Isolation::Uncommitted,
        )
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`, waiting up to
    /// `max_wait_ms` for the first; `Isolation::Committed` stops at the last stable
    /// offset (read the batches through `records::TxnFilter::of`).
    pub fn fetch_with(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        max_wait_ms: u32,
        isolation: Isolation,
    ) -> Result<Fetched, ClientError> {
        let request = Request::Fetch {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes,
            max_wait_ms,
            min_bytes: 1,
            isolation,
        };
        match self.partition_call(topic, partition, request, &[])? {
            (
                Response::Fetched {
                    high_watermark,
                    log_start_offset,
                    last_stable_offset,
                    aborted,
                },
                batches,
            ) => Ok(Fetched {
                high_watermark,
                log_start_offset,
                last_stable_offset,
                aborted,
                batches,
            }),
            (other, _) => Err(unexpected("fetch", &other)),
        }
    }

    pub fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<i64, ClientError> {
        let request = Request::ListOffsets {
            topic: topic.to_string(),
            partition,
            spec,
        };
        match self.partition_call(topic, partition, request, &[])?.0 {
            Response::Offset { offset } => Ok(offset),
            other => Err(unexpected("list offsets", &other)),
        }
    }

    pub fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<CommitEntry>,
    ) -> Result<(), ClientError> {
        let request = Request::CommitOffsets {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation,
            offsets,
        };
        self.call(request, &[]).map(|_| ())
    }

    pub fn committed(&mut self, group: &str, topic: &str) -> Result<Vec<CommitEntry>, ClientError> {
        let request = Request::FetchOffsets {
            group: group.to_string(),
            topic: topic.to_string(),
        };
        match self.call(request, &[])?.0 {
            Response::Offsets { offsets } => Ok(offsets),
            other => Err(unexpected("fetch offsets", &other)),
        }
    }
}
