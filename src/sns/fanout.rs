//! The fan-out worker: one per SNS topic, on the shard that owns its backing log
//! `__sns-{id}`/0. It reads the log from its committed cursor, delivers each record to
//! every confirmed subscription whose filter policy matches, and commits the cursor
//! after. After a crash it resumes from the cursor and delivers again; targets drop the
//! second copy by its origin key (`targets`).
//!
//! The cursor is the committed offset of group `__sns-fanout-{id}` on the log (a simple
//! commit: no member, generation -1), so it is as durable as Kafka consumers' offsets;
//! the worker deletes the group when its topic is deleted.
//!
//! HTTP deliveries run in tasks of their own (a slow endpoint must not stop the topic),
//! at most `HTTP_PENDING_MAX` per topic; the cursor is committed only below the lowest
//! offset with a delivery still pending, so a crash retries those.
//!
//! A supervisor per shard (`start`) watches the catalog and starts and stops workers;
//! both live in the shard's background task queue.

use super::http_delivery::{self, RetryPolicy, Url};
use super::signing::{self, Signer};
use super::targets::{self, DeadLetter, Delivery, Failure};
use super::trust;
use crate::engine::{CommitEntry, Engine, EngineError, FetchArgs, Object, OffsetSpec};
use crate::engine::{SnsSubscription, SnsTopicMeta};
use crate::runtime;
use peregrine_aws_wire::sns::envelope::{self, Confirmation, ConfirmationKind, Signature};
use peregrine_aws_wire::sns::filter::{FilterPolicy, Scope};
use peregrine_aws_wire::sns::record::Stored;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the supervisor looks for topics gained or lost.
const SUPERVISE_TICK: Duration = Duration::from_millis(50);
/// How long a fetch waits for a new record (a publish wakes it at once).
const FETCH_WAIT_MS: u32 = 500;
/// Bytes read per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// HTTP deliveries (retries included) one topic may have in flight; past it the
/// worker waits.
pub const HTTP_PENDING_MAX: usize = 1000;
/// Records delivered per step (one fetch); the rest wait for the next.
const RECORDS_PER_STEP: usize = 1024;
/// Deliveries to queues and Kafka topics one topic runs at once (concurrent durable
/// publishes share their queue's fdatasync).
const DELIVERIES_IN_FLIGHT: u64 = 64;
/// Waits after a failure that may go away (a full queue, a shard shutting down).
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The group whose committed offset is topic `id`'s cursor.
pub fn cursor_group(id: u64) -> String {
    format!("__sns-fanout-{id}")
}

/// Starts this shard's supervisor (once, when the shard's engine starts).
pub fn start(engine: &Engine) {
    let supervise = supervise(engine.clone());
    match runtime::spawn_into(supervise, engine.shard().queues.background) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!("starting the sns fan-out supervisor: {e}"),
    }
}

/// Runs a worker for each SNS topic whose log this shard owns, while it exists.
async fn supervise(engine: Engine) {
    let mut running: HashMap<u64, Rc<Cell<bool>>> = HashMap::new();
    let mut seen = None;
    while !engine.shutdown().is_triggered() {
        let catalog = engine.shard().catalog();
        if seen != Some(catalog.version) {
            seen = Some(catalog.version);
            if engine.shard_id() == crate::engine::CONTROLLER_SHARD {
                if let Err(e) = crate::engine::restore_backing_logs(&engine).await {
                    tracing::error!("restoring the backing logs of sns topics: {e}");
                }
            }
            let owned: HashMap<u64, String> = catalog
                .sns
                .values()
                .filter(|m| owns_log(&engine, m))
                .map(|m| (m.id, m.name.clone()))
                .collect();
            running.retain(|id, stop| {
                let keep = owned.contains_key(id);
                if !keep {
                    stop.set(true);
                    crate::engine::forget_dedup_window(*id);
                }
                keep
            });
            for (id, name) in owned {
                if running.contains_key(&id) {
                    continue;
                }
                let stop = Rc::new(Cell::new(false));
                let worker = Worker::new(engine.clone(), name, id, stop.clone());
                match runtime::spawn_into(worker.run(), engine.shard().queues.background) {
                    Ok(task) => {
                        task.detach();
                        running.insert(id, stop);
                    }
                    Err(e) => tracing::error!("starting an sns fan-out worker: {e}"),
                }
            }
        }
        runtime::sleep(SUPERVISE_TICK).await;
    }
    for stop in running.values() {
        stop.set(true);
    }
}

fn owns_log(engine: &Engine, meta: &SnsTopicMeta) -> bool {
    let topic = meta.backing_topic();
    let log = Object::Partition {
        topic: &topic,
        partition: 0,
    };
    engine.owner(log) == Ok(engine.shard_id())
}

/// A subscription's filter policy, parsed once per value.
struct Filter {
    source: (Option<String>, Option<String>),
    /// `None`: no policy (everything matches).
    policy: Option<Result<FilterPolicy, String>>,
}

impl Filter {
    fn of(sub: &SnsSubscription) -> Filter {
        let source = (
            sub.attributes.get("FilterPolicy").cloned(),
            sub.attributes.get("FilterPolicyScope").cloned(),
        );
        let policy = source.0.as_deref().map(|json| {
            let scope = source
                .1
                .as_deref()
                .and_then(Scope::from_name)
                .unwrap_or_default();
            FilterPolicy::parse(json, scope).map_err(|e| e.to_string())
        });
        Filter { source, policy }
    }

    fn is_of(&self, sub: &SnsSubscription) -> bool {
        self.source.0.as_ref() == sub.attributes.get("FilterPolicy")
            && self.source.1.as_ref() == sub.attributes.get("FilterPolicyScope")
    }

    fn matches(&self, stored: &Stored) -> bool {
        match &self.policy {
            None => true,
            Some(Ok(policy)) => policy.matches(&stored.attributes, &stored.message),
            // The front end checks policies before storing them; one that does not
            // parse (from an older release) matches nothing rather than everything.
            Some(Err(_)) => false,
        }
    }
}

/// HTTP deliveries in flight, by the offset of their record.
#[derive(Default)]
struct Pending {
    by_offset: RefCell<BTreeMap<i64, usize>>,
    total: Cell<usize>,
}

impl Pending {
    fn add(&self, offset: i64) {
        *self.by_offset.borrow_mut().entry(offset).or_insert(0) += 1;
        self.total.set(self.total.get() + 1);
    }

    fn done(&self, offset: i64) {
        let mut map = self.by_offset.borrow_mut();
        if let Some(n) = map.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                map.remove(&offset);
            }
            self.total.set(self.total.get() - 1);
        }
    }

    fn lowest(&self) -> Option<i64> {
        self.by_offset.borrow().keys().next().copied()
    }
}

struct Worker {
    engine: Engine,
    name: String,
    id: u64,
    log: String,
    stop: Rc<Cell<bool>>,
    topic_arn: String,
    base_url: String,
    signer: Rc<Signer>,
    filters: HashMap<String, Filter>,
    pending: Rc<Pending>,
    /// HTTP subscriptions whose confirmation this run has sent.
    confirmations_sent: HashSet<String>,
    /// Tokens of the UnsubscribeConfirmations sent, or held when this run started:
    /// those are not sent again after a restart (a kill -9 right after an Unsubscribe
    /// may lose its notice; SNS too sends it once, without retries).
    unsubscribes_sent: Option<HashSet<String>>,
    /// The catalog version `send_confirmations` last looked at: a confirmation to send
    /// comes only with a catalog change, so the subscriptions (thousands, perhaps) are
    /// not walked again on every step.
    confirmations_version: Option<u64>,
    committed: i64,
    /// The log's end when this run started: records below it may have been delivered
    /// by an earlier run (Kafka targets are searched for them first).
    replay_end: i64,
    current: Option<Current>,
}

/// A topic as one catalog version holds it.
#[derive(Clone)]
struct Current {
    version: u64,
    meta: Rc<SnsTopicMeta>,
    /// Its confirmed subscriptions.
    subs: Rc<Vec<Rc<SnsSubscription>>>,
}

impl Worker {
    fn new(engine: Engine, name: String, id: u64, stop: Rc<Cell<bool>>) -> Worker {
        let topic_arn = engine.config().sqs.topic_arn(&name);
        let base_url = base_url(engine.config().http_addr);
        let signer = Signer::new(
            engine.config().sqs.sns_signing.clone(),
            engine.config().sqs.sns_signing_scope,
            &cert_base_url(engine.config()),
        );
        Worker {
            log: peregrine_shards::sns::backing_topic(id),
            engine,
            name,
            id,
            stop,
            topic_arn,
            base_url,
            signer: Rc::new(signer),
            filters: HashMap::new(),
            pending: Rc::new(Pending::default()),
            confirmations_sent: HashSet::new(),
            unsubscribes_sent: None,
            confirmations_version: None,
            committed: -1,
            replay_end: 0,
            current: None,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.get() || self.engine.shutdown().is_triggered()
    }

    /// The topic as the catalog holds it now and its confirmed subscriptions, copied
    /// once per catalog version (a topic may have thousands); `None` once it is gone.
    fn meta(&mut self) -> Option<Current> {
        let catalog = self.engine.shard().catalog();
        if let Some(current) = self
            .current
            .as_ref()
            .filter(|c| c.version == catalog.version)
        {
            return Some(current.clone());
        }
        let Some(meta) = catalog.sns.get(&self.name).filter(|m| m.id == self.id) else {
            self.current = None;
            return None;
        };
        let subs = meta
            .subscriptions
            .values()
            .filter(|s| s.confirmed)
            .map(|s| Rc::new(s.clone()))
            .collect();
        let current = Current {
            version: catalog.version,
            meta: Rc::new(meta.clone()),
            subs: Rc::new(subs),
        };
        self.current = Some(current.clone());
        Some(current)
    }

    async fn run(mut self) {
        let Some((mut cursor, end)) = self.load_cursor().await else {
            return;
        };
        self.replay_end = end;
        tracing::debug!(sns_topic = %self.name, cursor, "fan-out worker started");
        let mut backoff = RETRY_MIN;
        while !self.stopped() {
            let Some(current) = self.meta() else {
                break;
            };
            if self.confirmations_version != Some(current.version) {
                self.confirmations_version = Some(current.version);
                self.send_confirmations(&current.meta).await;
            }
            match self.step(cursor).await {
                Ok(next) => {
                    backoff = RETRY_MIN;
                    cursor = next;
                }
                Err((next, why)) => {
                    cursor = next;
                    warn_limited(format_args!(
                        "sns topic {}: delivery from {cursor} deferred: {why}",
                        self.name
                    ));
                    runtime::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
            self.commit(cursor).await;
        }
        // Stopped because its topic is gone (the supervisor may see that first), not
        // for a shutdown: its cursor goes too.
        if self.meta().is_none() && !self.engine.shutdown().is_triggered() {
            self.delete_cursor().await;
        }
    }

    /// The committed cursor (or the log's start) and the log's end now; `None` when
    /// stopped first.
    async fn load_cursor(&self) -> Option<(i64, i64)> {
        let mut backoff = RETRY_MIN;
        while !self.stopped() {
            let group = cursor_group(self.id);
            match self.engine.fetch_offsets(&group, Some(&self.log)).await {
                Ok(offsets) => {
                    let committed = offsets
                        .iter()
                        .find(|c| c.topic == self.log && c.partition == 0)
                        .map_or(-1, |c| c.offset);
                    let start = self.engine.list_offsets(&self.log, 0, OffsetSpec::Earliest);
                    let end = self.engine.list_offsets(&self.log, 0, OffsetSpec::Latest);
                    match (start.await, end.await) {
                        (Ok(start), Ok(end)) => {
                            let cursor = if committed >= 0 { committed } else { start };
                            return Some((cursor, end));
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::warn!(sns_topic = %self.name, "finding the log's ends: {e}")
                        }
                    }
                }
                Err(e) => tracing::warn!(sns_topic = %self.name, "reading the fan-out cursor: {e}"),
            }
            runtime::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        None
    }

    /// Commits the cursor, held below the lowest pending HTTP delivery.
    async fn commit(&mut self, cursor: i64) {
        let at = self.pending.lowest().map_or(cursor, |low| low.min(cursor));
        if at <= self.committed {
            return;
        }
        let entry = CommitEntry {
            topic: self.log.clone(),
            partition: 0,
            offset: at,
        };
        let group = cursor_group(self.id);
        match self
            .engine
            .commit_offsets(&group, "", -1, vec![entry])
            .await
        {
            Ok(()) => self.committed = at,
            // Delivered again after a restart; the origin keys keep one copy.
            Err(e) => tracing::warn!(sns_topic = %self.name, "committing the fan-out cursor: {e}"),
        }
    }

    async fn delete_cursor(&self) {
        // A topic deleted before its first commit has no group: nothing to delete.
        if let Err(e) = self.engine.delete_group(&cursor_group(self.id)).await {
            tracing::debug!(sns_topic = %self.name, "deleting the fan-out cursor: {e}");
        }
        tracing::debug!(sns_topic = %self.name, "fan-out worker stopped: topic deleted");
    }

    /// Fetches from `cursor` and delivers what came; `Ok(next cursor)`, or the offset
    /// to start again from and why.
    async fn step(&mut self, cursor: i64) -> Result<i64, (i64, String)> {
        let args = FetchArgs {
            offset: cursor,
            max_bytes: FETCH_BYTES,
            max_wait_ms: FETCH_WAIT_MS,
            min_bytes: 1,
            isolation: Default::default(),
            pending: false,
        };
        let fetched = match self.engine.fetch(&self.log, 0, args).await {
            Ok(f) => f,
            Err(EngineError::OffsetOutOfRange(_)) => return Ok(self.skip_to_start(cursor).await),
            Err(e) => return Err((cursor, e.to_string())),
        };
        // The subscriptions as they are now, after the wait: a subscription made before
        // a publish was answered gets the message.
        let Some(current) = self.meta() else {
            return Ok(cursor);
        };
        let catalog = self.engine.shard().catalog();
        let Ok(log_id) = catalog.topic(&self.log).map(|t| t.id) else {
            return Err((cursor, format!("its log {} is missing", self.log)));
        };
        let mut records = Vec::new();
        for chunk in &fetched.batches {
            crate::engine::sns_records(chunk, cursor, |offset, stored| {
                records.push((offset, stored))
            });
        }
        records.truncate(RECORDS_PER_STEP);
        let next = records.last().map_or(cursor, |(offset, _)| offset + 1);
        let lanes = self.plan(&current, log_id, records).await;
        self.run_lanes(current.meta.clone(), log_id, lanes).await?;
        Ok(next)
    }

    /// The deliveries to queues and Kafka topics that `records` make, in lanes that
    /// run concurrently: one per subscription on a FIFO topic (its order kept), one per
    /// delivery otherwise. HTTP deliveries start here, in record order.
    async fn plan(
        &mut self,
        current: &Current,
        log_id: u64,
        records: Vec<(i64, Option<Stored>)>,
    ) -> Vec<Vec<Job>> {
        let (meta, subs) = (&*current.meta, &*current.subs);
        let mut lanes: Vec<Vec<Job>> = Vec::new();
        if meta.fifo {
            lanes.resize_with(subs.len(), Vec::new);
        }
        for (offset, stored) in records {
            let Some(stored) = stored else {
                warn_limited(format_args!(
                    "sns topic {}: skipping the record at {offset}: not an SNS message",
                    self.name
                ));
                continue;
            };
            let stored = Rc::new(stored);
            for (i, sub) in subs.iter().enumerate() {
                if !self.filter_of(sub).matches(&stored) {
                    continue;
                }
                if http_delivery::is_http(&sub.protocol) {
                    self.spawn_http(meta, sub, (log_id, offset), &stored).await;
                    continue;
                }
                let job = Job {
                    replayed: offset < self.replay_end,
                    offset,
                    stored: stored.clone(),
                    sub: sub.clone(),
                };
                match lanes.get_mut(i).filter(|_| meta.fifo) {
                    Some(lane) => lane.push(job),
                    None => lanes.push(vec![job]),
                }
            }
        }
        lanes.retain(|lane| !lane.is_empty());
        lanes
    }

    /// Runs the lanes, at most `DELIVERIES_IN_FLIGHT` at once; the lowest offset that
    /// must be tried again, and why, when a delivery may work later.
    async fn run_lanes(
        &self,
        meta: Rc<SnsTopicMeta>,
        log_id: u64,
        lanes: Vec<Vec<Job>>,
    ) -> Result<(), (i64, String)> {
        let ctx = Rc::new(LaneContext {
            engine: self.engine.clone(),
            meta,
            log_id,
            topic_arn: self.topic_arn.clone(),
            base_url: self.base_url.clone(),
            signer: self.signer.clone(),
            limit: glommio::sync::Semaphore::new(DELIVERIES_IN_FLIGHT),
        });
        let mut tasks = Vec::with_capacity(lanes.len());
        for lane in lanes {
            let first = lane.first().map_or(0, |j| j.offset);
            match runtime::spawn_into(
                run_lane(ctx.clone(), lane),
                self.engine.shard().queues.background,
            ) {
                Ok(task) => tasks.push(task),
                Err(e) => return Err((first, format!("starting a delivery: {e}"))),
            }
        }
        let mut failed: Option<(i64, String)> = None;
        for task in tasks {
            if let Err((offset, why)) = task.await {
                if failed.as_ref().is_none_or(|(low, _)| offset < *low) {
                    failed = Some((offset, why));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Where to read from when `cursor` is outside the log: its start, whether
    /// retention deleted records before their delivery or the log is newer than the
    /// cursor (made again after a client deleted it: all it holds is undelivered).
    async fn skip_to_start(&mut self, cursor: i64) -> i64 {
        let start = self
            .engine
            .list_offsets(&self.log, 0, OffsetSpec::Earliest)
            .await;
        let end = self
            .engine
            .list_offsets(&self.log, 0, OffsetSpec::Latest)
            .await;
        let (Ok(start), Ok(end)) = (start, end) else {
            return cursor;
        };
        if start > cursor {
            tracing::warn!(sns_topic = %self.name, lost = start - cursor, "records left the log before their delivery");
            return start;
        }
        if end < cursor {
            tracing::warn!(sns_topic = %self.name, "the log is newer than the cursor: reading it from its start");
            // Commits may go below what this run committed on the old log.
            self.committed = start - 1;
            return start;
        }
        cursor
    }

    /// The TLS client configuration an https endpoint is reached with; None for http,
    /// and (logged) when the CA files cannot be read: the attempts then fail and retry.
    fn tls_for(&self, url: &Url) -> Option<Arc<rustls::ClientConfig>> {
        if !url.tls {
            return None;
        }
        match trust::client_config(&self.engine.config().sqs.sns_https_ca) {
            Ok(config) => Some(config),
            Err(e) => {
                warn_limited(format_args!("https delivery: {e}"));
                None
            }
        }
    }

    fn filter_of(&mut self, sub: &SnsSubscription) -> &Filter {
        let stale = self.filters.get(&sub.id).is_none_or(|f| !f.is_of(sub));
        if stale {
            self.filters.insert(sub.id.clone(), Filter::of(sub));
        }
        &self.filters[&sub.id]
    }

    /// Starts an HTTP delivery with its retries, once fewer than `HTTP_PENDING_MAX` are
    /// in flight.
    async fn spawn_http(
        &self,
        meta: &SnsTopicMeta,
        sub: &SnsSubscription,
        (log_id, offset): (u64, i64),
        stored: &Stored,
    ) {
        while self.pending.total.get() >= HTTP_PENDING_MAX && !self.stopped() {
            runtime::sleep(RETRY_MIN).await;
        }
        let Ok(url) = Url::parse(&sub.endpoint) else {
            return;
        };
        let tls = self.tls_for(&url);
        let d = Delivery {
            topic: meta,
            topic_arn: &self.topic_arn,
            sub,
            log_id,
            replayed: offset < self.replay_end,
            offset,
            stored,
            base_url: &self.base_url,
            signer: &self.signer,
        };
        let policy = RetryPolicy::of(
            sub.attributes.get("DeliveryPolicy").map(String::as_str),
            meta.attributes.get("DeliveryPolicy").map(String::as_str),
        );
        let post = HttpPost {
            url,
            tls,
            headers: targets::http_headers(&d, "Notification"),
            body: d.body().await,
            policy,
            stop: self.stop.clone(),
            dead_letter: d
                .dead_letter(&self.engine.config().sqs)
                .await
                .map(|letter| (self.engine.clone(), letter)),
        };
        let pending = self.pending.clone();
        pending.add(offset);
        let what = format!("{} offset {offset} to {}", self.name, sub.endpoint);
        let task = async move {
            post.send(&what).await;
            pending.done(offset);
        };
        match runtime::spawn_into(task, self.engine.shard().queues.background) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => {
                tracing::error!("starting an http delivery: {e}");
                self.pending.done(offset);
            }
        }
    }

    /// Sends the SubscriptionConfirmation of each http subscription still pending, and
    /// the UnsubscribeConfirmation of each one unsubscribed, that this run has not sent
    /// yet.
    async fn send_confirmations(&mut self, meta: &SnsTopicMeta) {
        for sub in meta.subscriptions.values() {
            let Some(token) = sub.token.as_deref() else {
                continue;
            };
            if sub.confirmed || !self.confirmations_sent.insert(sub.id.clone()) {
                continue;
            }
            self.confirm(meta, sub, token, ConfirmationKind::Subscription)
                .await;
        }
        let held = || {
            meta.unsubscribed
                .iter()
                .filter_map(|s| s.token.clone())
                .collect()
        };
        let sent = self.unsubscribes_sent.get_or_insert_with(held);
        let fresh: Vec<&SnsSubscription> = meta
            .unsubscribed
            .iter()
            .filter(|s| {
                s.token
                    .as_ref()
                    .is_some_and(|t| !sent.contains(t) && sent.insert(t.clone()))
            })
            .collect();
        for sub in fresh {
            let Some(token) = sub.token.as_deref() else {
                continue;
            };
            let subscription_arn = format!("{}:{}", self.topic_arn, sub.id);
            let kind = ConfirmationKind::Unsubscribe {
                subscription_arn: &subscription_arn,
            };
            self.confirm(meta, sub, token, kind).await;
        }
    }

    /// Posts one confirmation to `sub`'s endpoint, with the subscription's retries.
    async fn confirm(
        &self,
        meta: &SnsTopicMeta,
        sub: &SnsSubscription,
        token: &str,
        kind: ConfirmationKind<'_>,
    ) {
        let Ok(url) = Url::parse(&sub.endpoint) else {
            return;
        };
        let tls = self.tls_for(&url);
        let subscribe_url = format!(
            "{}/?Action=ConfirmSubscription&TopicArn={}&Token={token}",
            self.base_url,
            targets::query_escape(&self.topic_arn)
        );
        let message_id = peregrine_aws_wire::sqs::receipt::uuid(
            u128::from(self.id) << 64 | u128::from(crc32c::crc32c(token.as_bytes())),
        );
        let confirmation = Confirmation {
            kind,
            topic_arn: &self.topic_arn,
            token,
            subscribe_url: &subscribe_url,
            message_id: &message_id,
            timestamp_ms: crate::time::now_ms(),
        };
        let version = signing::version_of(meta);
        let value = self
            .signer
            .sign_for(&sub.protocol, version, || {
                envelope::confirmation_string_to_sign(&confirmation)
            })
            .await;
        let signature = value.as_deref().map(|value| Signature {
            version,
            value,
            cert_url: self.signer.cert_url(),
        });
        let body = envelope::confirmation(&confirmation, signature.as_ref());
        let mut headers = vec![
            ("x-amz-sns-message-type", kind.type_name().into()),
            ("x-amz-sns-message-id", message_id),
            ("x-amz-sns-topic-arn", self.topic_arn.clone()),
        ];
        if let ConfirmationKind::Unsubscribe { subscription_arn } = kind {
            headers.push(("x-amz-sns-subscription-arn", subscription_arn.to_string()));
        }
        let post = HttpPost {
            url,
            tls,
            headers,
            body,
            policy: RetryPolicy::of(
                sub.attributes.get("DeliveryPolicy").map(String::as_str),
                meta.attributes.get("DeliveryPolicy").map(String::as_str),
            ),
            stop: self.stop.clone(),
            dead_letter: None,
        };
        let what = format!("{} of {} to {}", kind.type_name(), self.name, sub.endpoint);
        let task = async move { post.send(&what).await };
        match runtime::spawn_into(task, self.engine.shard().queues.background) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => tracing::error!("starting an http confirmation: {e}"),
        }
    }
}

/// One record for one queue or Kafka subscription.
struct Job {
    /// Perhaps delivered by an earlier run.
    replayed: bool,
    offset: i64,
    stored: Rc<Stored>,
    sub: Rc<SnsSubscription>,
}

/// What the lanes of one step share.
struct LaneContext {
    engine: Engine,
    meta: Rc<SnsTopicMeta>,
    log_id: u64,
    topic_arn: String,
    base_url: String,
    signer: Rc<Signer>,
    limit: glommio::sync::Semaphore,
}

/// Delivers a lane's jobs in order; stops at the first that may work later.
async fn run_lane(ctx: Rc<LaneContext>, lane: Vec<Job>) -> Result<(), (i64, String)> {
    let first = lane.first().map_or(0, |j| j.offset);
    let _slot = ctx
        .limit
        .acquire_permit(1)
        .await
        .map_err(|e| (first, e.to_string()))?;
    for job in lane {
        let d = Delivery {
            topic: &ctx.meta,
            topic_arn: &ctx.topic_arn,
            sub: &job.sub,
            log_id: ctx.log_id,
            replayed: job.replayed,
            offset: job.offset,
            stored: &job.stored,
            base_url: &ctx.base_url,
            signer: &ctx.signer,
        };
        let sent = match job.sub.protocol.as_str() {
            "sqs" => targets::to_queue(&ctx.engine, &d).await,
            "kafka" => targets::to_kafka(&ctx.engine, &d).await,
            other => Err(Failure::Skip(format!(
                "protocol '{other}' is not delivered"
            ))),
        };
        let protocol = job.sub.protocol.as_str();
        match sent {
            Ok(()) => crate::metrics::local::sns_delivery(protocol, "delivered"),
            Err(Failure::Skip(why)) => {
                crate::metrics::local::sns_delivery(protocol, "failed");
                warn_limited(format_args!(
                    "sns topic {}: the message at {} not delivered to subscription {}: {why}",
                    ctx.meta.name, job.offset, job.sub.id
                ));
                if let Some(letter) = d.dead_letter(&ctx.engine.config().sqs).await {
                    dead_letter(&ctx.engine, protocol, letter)
                        .await
                        .map_err(|why| (job.offset, why))?;
                }
            }
            Err(Failure::Retry(why)) => {
                crate::metrics::local::sns_delivery(protocol, "retried");
                return Err((job.offset, format!("subscription {}: {why}", job.sub.id)));
            }
        }
    }
    Ok(())
}

/// One HTTP message with its retry schedule.
struct HttpPost {
    url: Url,
    /// An https endpoint's TLS client configuration.
    tls: Option<Arc<rustls::ClientConfig>>,
    headers: Vec<(&'static str, String)>,
    body: String,
    policy: RetryPolicy,
    stop: Rc<Cell<bool>>,
    /// Where the message goes when every retry failed (a subscription's RedrivePolicy).
    dead_letter: Option<(Engine, DeadLetter)>,
}

impl HttpPost {
    /// Tries, then retries on the policy's schedule; gives up (logged) after the last,
    /// or when the worker stops (a restart delivers it again).
    async fn send(mut self, what: &str) {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut delays = self.policy.delays().into_iter();
        let protocol = if self.url.tls { "https" } else { "http" };
        loop {
            let sent = http_delivery::post(
                &self.url,
                self.tls.as_ref(),
                &headers,
                &self.body,
                http_delivery::ATTEMPT_TIMEOUT,
            )
            .await;
            let Err(e) = sent else {
                crate::metrics::local::sns_delivery(protocol, "delivered");
                return;
            };
            let Some(delay) = delays.next() else {
                crate::metrics::local::sns_delivery(protocol, "failed");
                warn_limited(format_args!(
                    "{protocol} delivery of {what} failed after its retries: {e}"
                ));
                if let Some((engine, letter)) = self.dead_letter.take() {
                    if let Err(why) = dead_letter(&engine, protocol, letter).await {
                        warn_limited(format_args!("dead letter of {what}: {why}"));
                    }
                }
                return;
            };
            crate::metrics::local::sns_delivery(protocol, "retried");
            tracing::debug!("{protocol} delivery of {what}: {e}; retrying in {delay:?}");
            runtime::sleep(delay).await;
            if self.stop.get() {
                return;
            }
        }
    }
}

/// Sends a failed delivery to its subscription's dead-letter queue; why it must be
/// tried again, when it may work later.
async fn dead_letter(engine: &Engine, protocol: &str, letter: DeadLetter) -> Result<(), String> {
    let queue = letter.queue.clone();
    match targets::to_dead_letter(engine, letter).await {
        Ok(()) => {
            crate::metrics::local::sns_delivery(protocol, "dead_lettered");
            Ok(())
        }
        Err(Failure::Skip(why)) => {
            warn_limited(format_args!("dead-letter queue {queue}: {why}"));
            Ok(())
        }
        Err(Failure::Retry(why)) => Err(format!("dead-letter queue {queue}: {why}")),
    }
}

/// Delivery failures are logged at most once per this interval per shard (a deleted
/// queue still subscribed, or a dead endpoint, fails every message); the line counts
/// those not logged.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

thread_local! {
    /// When this shard last logged a delivery failure, and the failures since.
    static WARNED: Cell<(Option<Instant>, u64)> = const { Cell::new((None, 0)) };
}

/// Logs `what` unless a failure was logged less than `WARN_INTERVAL` ago; whether it did.
fn warn_limited(what: std::fmt::Arguments<'_>) -> bool {
    let now = Instant::now();
    let (last, unlogged) = WARNED.get();
    if last.is_some_and(|at| now.duration_since(at) < WARN_INTERVAL) {
        WARNED.set((last, unlogged + 1));
        return false;
    }
    WARNED.set((Some(now), 0));
    tracing::warn!(not_logged_since = unlogged, "{what}");
    true
}

/// `http://host:port` of the HTTP listener as a client on this host reaches it.
fn base_url(addr: SocketAddr) -> String {
    format!("http://{}", host_port(addr))
}

/// Where SigningCertURL points: the HTTPS listener (`--http-tls-addr`) when there is
/// one, since verifiers fetch certificates over HTTPS only (as SNS's are), else the
/// HTTP listener.
fn cert_base_url(config: &crate::config::ServerConfig) -> String {
    match config.tls.as_ref().and_then(|t| t.http_addr) {
        Some(addr) => format!("https://{}", host_port(addr)),
        None => base_url(config.http_addr),
    }
}

/// `host:port` of a listener's address as a client on this host reaches it.
fn host_port(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("{ip}:{}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_at_most_once_a_second() {
        assert!(warn_limited(format_args!("first")));
        assert!(!warn_limited(format_args!("second")));
        assert_eq!(WARNED.get().1, 1, "counted, not logged");
    }

    #[test]
    fn the_base_url_names_a_reachable_address() {
        let any = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(base_url(any), "http://127.0.0.1:8080");
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9));
        assert_eq!(base_url(v6), "http://[::1]:9");
    }
}
