//! SNS topics and subscriptions (catalog changes on the controller, as `admin` makes
//! the others) and durable publish to a topic's backing log (on the owner of
//! `__sns-{id}`/0). Delivery is the fan-out worker's (`crate::sns`), which reads that log.
//!
//! Errors, as the front end maps them: a missing topic or subscription is
//! `UnknownTopic`; a cap reached is `PreconditionFailed` (TopicLimitExceeded or
//! SubscriptionLimitExceeded, by the call); bad arguments and a topic or subscription
//! created again with other settings are `InvalidRequest`.

use super::admin::{self, ObjectCounts};
use super::error::EngineError;
use super::mesh::CallClass;
use super::placement::CONTROLLER_SHARD;
use super::shard::Shard;
use super::types::{Acks, FetchArgs, OffsetSpec, SnsSubscription, SnsTopicChange, SnsTopicMeta};
use super::Engine;
use bytes::BytesMut;
use peregrine_aws_wire::sns::record::{self, Stored};
use peregrine_shards::records::{self as records_view, BatchBuilder};
use peregrine_shards::sns::SnsError;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

/// Subscription protocols the broker delivers to.
pub const SNS_PROTOCOLS: [&str; 4] = ["sqs", "http", "https", "kafka"];

impl From<SnsError> for EngineError {
    fn from(e: SnsError) -> EngineError {
        let text = e.to_string();
        match e {
            SnsError::UnknownTopic(_) | SnsError::UnknownSubscription(_) => {
                EngineError::UnknownTopic(text)
            }
            SnsError::Mismatch(_) | SnsError::Invalid(_) => EngineError::InvalidRequest(text),
            SnsError::Limit(_) => EngineError::PreconditionFailed(text),
            SnsError::Catalog(c) => c.into(),
        }
    }
}

impl Engine {
    /// Creates SNS topic `name` with its backing log; the same name again answers the
    /// existing topic when every attribute and tag given has its value there.
    pub async fn create_sns_topic(
        &self,
        name: &str,
        fifo: bool,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<SnsTopicMeta, EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move {
            create_topic(&s, &name, fifo, (attributes, tags)).await
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Deletes SNS topic `name`, its subscriptions and its log (undelivered messages
    /// too); `Ok` when there is no such topic.
    pub async fn delete_sns_topic(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { delete_topic(&s, &name).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// An SNS topic, from this shard's catalog.
    pub fn sns_topic(&self, name: &str) -> Option<SnsTopicMeta> {
        self.shard().catalog().sns.get(name).cloned()
    }

    /// Every SNS topic, by name.
    pub fn sns_topics(&self) -> Vec<SnsTopicMeta> {
        self.shard().catalog().sns.values().cloned().collect()
    }

    /// Sets and removes attributes and tags of a topic; answers it after the change.
    pub async fn alter_sns_topic(
        &self,
        name: &str,
        change: SnsTopicChange,
    ) -> Result<SnsTopicMeta, EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move {
            let _serial = s.admin_lock.acquire_permit(1).await;
            let catalog = s.catalog();
            if let Some(next) = catalog.with_sns_topic_change(&name, &change)? {
                save(&s, next).await?;
            }
            Ok(s.catalog().sns_topic(&name)?.clone())
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Subscribes `endpoint` to `topic` (see `check_endpoint` for what each protocol
    /// takes). The same protocol and endpoint again answers the existing subscription
    /// when every attribute given has its value there. `http(s)` subscriptions wait for
    /// their confirmation (the fan-out worker sends the token); the others are
    /// confirmed at once.
    pub async fn subscribe_sns(
        &self,
        topic: &str,
        protocol: &str,
        endpoint: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<SnsSubscription, EngineError> {
        let http = crate::sns::http_delivery::is_http(protocol);
        let sub = SnsSubscription {
            id: random_uuid()?,
            protocol: protocol.to_string(),
            endpoint: endpoint.to_string(),
            attributes,
            confirmed: !http,
            token: if http { Some(random_hex(32)?) } else { None },
            created_ms: crate::time::now_ms(),
        };
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move { subscribe(&s, &topic, sub).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Confirms the subscription of `topic` that waits for `token` (again: the same
    /// answer), or restores the one an UnsubscribeConfirmation's token names; an unknown
    /// token is `InvalidRequest`.
    pub async fn confirm_subscription(
        &self,
        topic: &str,
        token: &str,
        authenticated_unsubscribe: bool,
    ) -> Result<SnsSubscription, EngineError> {
        let (topic, token) = (topic.to_string(), token.to_string());
        let job = move |s: Rc<Shard>| async move {
            let _serial = s.admin_lock.acquire_permit(1).await;
            let max = s.config.object_limits.max_sns_subscriptions_per_topic;
            let (next, sub) =
                s.catalog()
                    .with_sns_confirmed(&topic, &token, authenticated_unsubscribe, max)?;
            if let Some(next) = next {
                save(&s, next).await?;
                tracing::info!(topic = %topic, subscription = %sub.id, "subscription confirmed");
            }
            Ok(sub)
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Removes a subscription; `Ok` when the topic or the subscription does not exist.
    /// A confirmed http(s) one is kept aside with a new token, which the fan-out worker
    /// sends in an UnsubscribeConfirmation and ConfirmSubscription takes to restore it.
    pub async fn unsubscribe(&self, topic: &str, subscription_id: &str) -> Result<(), EngineError> {
        let (topic, id) = (topic.to_string(), subscription_id.to_string());
        let restore_token = random_hex(32)?;
        let job = move |s: Rc<Shard>| async move {
            let _serial = s.admin_lock.acquire_permit(1).await;
            let next = s
                .catalog()
                .without_sns_subscription(&topic, &id, &restore_token);
            if let Some(next) = next {
                save(&s, next).await?;
                tracing::info!(topic = %topic, subscription = %id, "unsubscribed");
            }
            Ok(())
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Sets one attribute of a subscription (an empty value removes it); answers the
    /// subscription after the change.
    pub async fn alter_subscription(
        &self,
        topic: &str,
        subscription_id: &str,
        key: &str,
        value: String,
    ) -> Result<SnsSubscription, EngineError> {
        let (topic, id, key) = (
            topic.to_string(),
            subscription_id.to_string(),
            key.to_string(),
        );
        let job = move |s: Rc<Shard>| async move {
            let _serial = s.admin_lock.acquire_permit(1).await;
            let change = (key.as_str(), value);
            let (next, sub) = s
                .catalog()
                .with_sns_subscription_attribute(&topic, &id, change)?;
            check_filter(&sub.attributes)?;
            if let Some(next) = next {
                save(&s, next).await?;
            }
            Ok(sub)
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }
}

/// What one entry of a publish became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsPublished {
    /// Its offset in the backing log (the original's, for a duplicate).
    pub offset: i64,
    pub message_id: String,
    /// FIFO topics: the offset as 20 digits.
    pub sequence_number: Option<String>,
    /// A FIFO duplicate within the dedup window: not stored again.
    pub duplicate: bool,
}

/// How long a FIFO topic remembers a deduplication id, as SNS.
pub const SNS_DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most deduplication ids one FIFO topic remembers; past it the oldest are forgotten
/// before their 5 minutes (a FIFO topic takes 300 publishes a second in AWS, 90,000 in
/// a window; ours may take more, and this bounds the memory).
pub const SNS_DEDUP_IDS_MAX: usize = 100_000;
/// Bytes read per fetch while rebuilding a dedup window from the log.
const DEDUP_SCAN_BYTES: u32 = 1 << 20;

/// The MessageId of the message at `offset` of SNS topic `id`: stable, so the worker
/// derives the same one from the record.
pub fn sns_message_id(id: u64, offset: i64) -> String {
    peregrine_aws_wire::sqs::receipt::uuid(u128::from(id) << 64 | u128::from(offset as u64))
}

/// The SequenceNumber of a FIFO topic's message at `offset`.
pub fn sns_sequence_number(offset: i64) -> String {
    format!("{offset:020}")
}

impl Engine {
    /// Publishes `entries` to SNS topic `topic`: one batch appended durably to its log,
    /// answered in entry order. FIFO topics need a group and a dedup id on each entry
    /// (`InvalidRequest`) and answer a dedup id seen in the last 5 minutes (or earlier
    /// in the call) with the original, not stored again.
    pub async fn sns_publish(
        &self,
        topic: &str,
        entries: Vec<Stored>,
    ) -> Result<Vec<SnsPublished>, EngineError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Only what the owner needs crosses shards (not the subscriptions).
        let meta = {
            let catalog = self.shard().catalog();
            let meta = catalog.sns_topic(topic)?;
            Published {
                name: meta.name.clone(),
                id: meta.id,
                fifo: meta.fifo,
            }
        };
        if meta.fifo {
            if let Some(i) = entries
                .iter()
                .position(|e| e.group_id.is_none() || e.dedup_id.is_none())
            {
                return Err(EngineError::InvalidRequest(format!(
                    "entry {i}: a FIFO topic's messages need a group id and a deduplication id"
                )));
            }
        }
        let backing = peregrine_shards::sns::backing_topic(meta.id);
        let owner = self.partition_owner(&backing, 0)?;
        let job = move |s: Rc<Shard>| async move { publish_here(&s, &meta, entries).await };
        self.on_owner(owner, CallClass::Client, job).await
    }
}

/// A FIFO topic's recent deduplication ids, on the owner of its log. Publishes to the
/// topic run one at a time (`serial`), so a check and its append never interleave.
struct DedupWindow {
    serial: glommio::sync::Semaphore,
    loaded: Cell<bool>,
    /// dedup id -> (offset, remembered until).
    ids: RefCell<HashMap<String, (i64, i64)>>,
    order: RefCell<VecDeque<(i64, String)>>,
}

impl DedupWindow {
    fn new() -> DedupWindow {
        DedupWindow {
            serial: glommio::sync::Semaphore::new(1),
            loaded: Cell::new(false),
            ids: RefCell::new(HashMap::new()),
            order: RefCell::new(VecDeque::new()),
        }
    }

    fn get(&self, id: &str, now_ms: i64) -> Option<i64> {
        self.forget(now_ms);
        self.ids.borrow().get(id).map(|(offset, _)| *offset)
    }

    fn remember(&self, id: String, offset: i64, at_ms: i64, now_ms: i64) {
        let until = at_ms.saturating_add(SNS_DEDUP_WINDOW_MS);
        if until <= now_ms {
            return;
        }
        self.ids.borrow_mut().insert(id.clone(), (offset, until));
        self.order.borrow_mut().push_back((until, id));
        self.forget(now_ms);
    }

    /// Drops what is past its time, and the oldest past `SNS_DEDUP_IDS_MAX`.
    fn forget(&self, now_ms: i64) {
        let mut order = self.order.borrow_mut();
        let mut ids = self.ids.borrow_mut();
        while let Some((until, id)) = order.front() {
            if *until > now_ms && ids.len() <= SNS_DEDUP_IDS_MAX {
                break;
            }
            // A later publish of the same id has its own entry further on.
            if ids.get(id).is_some_and(|(_, u)| u == until) {
                ids.remove(id);
            }
            order.pop_front();
        }
    }
}

thread_local! {
    /// This shard's FIFO dedup windows, by SNS topic id (shards are threads).
    static WINDOWS: RefCell<HashMap<u64, Rc<DedupWindow>>> = RefCell::new(HashMap::new());
}

fn window_of(id: u64) -> Rc<DedupWindow> {
    WINDOWS.with(|w| {
        w.borrow_mut()
            .entry(id)
            .or_insert_with(|| Rc::new(DedupWindow::new()))
            .clone()
    })
}

/// Forgets the dedup window of a topic this shard no longer serves.
pub(crate) fn forget_window(id: u64) {
    WINDOWS.with(|w| w.borrow_mut().remove(&id));
}

/// Publish on the owner of the topic's log.
/// The topic a publish goes to, as its log's owner needs it.
struct Published {
    name: String,
    id: u64,
    fifo: bool,
}

async fn publish_here(
    shard: &Rc<Shard>,
    meta: &Published,
    entries: Vec<Stored>,
) -> Result<Vec<SnsPublished>, EngineError> {
    let backing = peregrine_shards::sns::backing_topic(meta.id);
    if shard.catalog().sns.get(&meta.name).map(|m| m.id) != Some(meta.id) {
        forget_window(meta.id);
        return Err(SnsError::UnknownTopic(meta.name.clone()).into());
    }
    if !meta.fifo {
        let base = append(shard, &backing, &entries).await?;
        let answers = (0..entries.len() as i64).map(|i| published(meta, base + i, false));
        return Ok(answers.collect());
    }
    let window = window_of(meta.id);
    let _serial = window.serial.acquire_permit(1).await;
    if !window.loaded.get() {
        load_window(shard, &backing, &window).await?;
        window.loaded.set(true);
    }
    let now = crate::time::now_ms();
    // Each entry: Ok(index among the appended) or Err(the original's offset).
    let mut fresh: Vec<Stored> = Vec::with_capacity(entries.len());
    let mut placed: Vec<Result<usize, i64>> = Vec::with_capacity(entries.len());
    for entry in entries {
        let dedup = entry.dedup_id.as_deref().unwrap_or_default();
        if let Some(offset) = window.get(dedup, now) {
            placed.push(Err(offset));
        } else if let Some(i) = fresh
            .iter()
            .position(|f| f.dedup_id.as_deref() == Some(dedup))
        {
            placed.push(Ok(i));
        } else {
            placed.push(Ok(fresh.len()));
            fresh.push(entry);
        }
    }
    let base = if fresh.is_empty() {
        0
    } else {
        append(shard, &backing, &fresh).await?
    };
    for (i, f) in fresh.iter().enumerate() {
        let dedup = f.dedup_id.clone().unwrap_or_default();
        window.remember(dedup, base + i as i64, now, now);
    }
    // A repeat within the call is a duplicate of the first entry that carried its id.
    let mut first_seen = vec![false; fresh.len()];
    let answers = placed.into_iter().map(|p| match p {
        Err(offset) => published(meta, offset, true),
        Ok(i) => {
            let duplicate = std::mem::replace(&mut first_seen[i], true);
            published(meta, base + i as i64, duplicate)
        }
    });
    Ok(answers.collect())
}

fn published(meta: &Published, offset: i64, duplicate: bool) -> SnsPublished {
    SnsPublished {
        offset,
        message_id: sns_message_id(meta.id, offset),
        sequence_number: meta.fifo.then(|| sns_sequence_number(offset)),
        duplicate,
    }
}

/// Appends `entries` as one batch, durably; answers the first one's offset.
async fn append(shard: &Rc<Shard>, backing: &str, entries: &[Stored]) -> Result<i64, EngineError> {
    let now = crate::time::now_ms();
    let encoded: Vec<_> = entries.iter().map(record::encode).collect();
    let bytes: usize = encoded
        .iter()
        .map(|(h, v)| v.len() + h.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>())
        .sum();
    let mut builder = BatchBuilder::new(now, bytes + 64 * entries.len());
    for (headers, value) in &encoded {
        let headers: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        builder.push(None, Some(value), now, &headers);
    }
    let batch = builder
        .finish()
        .ok_or_else(|| EngineError::Internal("an sns batch without records".into()))?;
    let produced =
        super::partitions::produce(shard, backing, 0, Acks::Durable, BytesMut::from(&batch[..]))
            .await?;
    debug_assert_eq!(
        produced.last_offset - produced.base_offset + 1,
        entries.len() as i64
    );
    Ok(produced.base_offset)
}

/// Rebuilds a FIFO topic's window from the last 5 minutes of its log (found through
/// the time index) when this shard first publishes to it.
async fn load_window(
    shard: &Rc<Shard>,
    backing: &str,
    window: &DedupWindow,
) -> Result<(), EngineError> {
    let now = crate::time::now_ms();
    let since = OffsetSpec::Timestamp(now - SNS_DEDUP_WINDOW_MS);
    let mut offset = super::partitions::list_offsets(shard, backing, 0, since).await?;
    loop {
        let args = FetchArgs {
            offset,
            max_bytes: DEDUP_SCAN_BYTES,
            max_wait_ms: 0,
            min_bytes: 0,
            isolation: Default::default(),
            pending: true,
        };
        let fetched = super::partitions::fetch(shard, backing, 0, args).await?;
        let mut next = offset;
        for chunk in &fetched.batches {
            for_each_record(chunk, offset, |at, stored| {
                next = next.max(at + 1);
                if let Some(dedup) = stored.and_then(|s| s.dedup_id.map(|d| (d, s.published_ms))) {
                    window.remember(dedup.0, at, dedup.1, now);
                }
            });
        }
        if next <= offset || next >= fetched.high_watermark {
            return Ok(());
        }
        offset = next;
    }
}

/// Calls `f(offset, record)` for each record at or after `from` in a chunk of fetched
/// batches; `None` for a record that is not an SNS message (a Kafka client wrote to
/// the log, or the batch is compressed or a control batch).
pub(crate) fn for_each_record(chunk: &[u8], from: i64, mut f: impl FnMut(i64, Option<Stored>)) {
    let Ok(batches) = peregrine_shards::batch::split(chunk) else {
        return;
    };
    for (range, header) in batches {
        if header.is_control() {
            f(header.last_offset(), None);
            continue;
        }
        let Ok(found) = records_view::records(&chunk[range]) else {
            f(header.last_offset(), None);
            continue;
        };
        for r in found {
            let Ok(r) = r else {
                f(header.last_offset(), None);
                break;
            };
            if r.offset < from {
                continue;
            }
            let stored = r
                .headers()
                .ok()
                .and_then(|h| record::decode(&h, r.value.unwrap_or_default()).ok());
            f(r.offset, stored);
        }
    }
}

/// Gives every SNS topic its backing log again where a client deleted it as a plain
/// topic (on the controller, when the catalog changes): publish and delivery work
/// again, on an empty log.
pub(crate) async fn restore_backing_logs(engine: &Engine) -> Result<(), EngineError> {
    let lost = |c: &peregrine_shards::catalog::Catalog| {
        c.sns
            .values()
            .any(|m| !c.topics.contains_key(&m.backing_topic()))
    };
    if !lost(&engine.shard().catalog()) {
        return Ok(());
    }
    let job = |s: Rc<Shard>| async move {
        let _serial = s.admin_lock.acquire_permit(1).await;
        let now = crate::time::now_ms();
        let Some((next, names)) = s.catalog().with_backing_logs(s.nshards, now)? else {
            return Ok(());
        };
        save(&s, next).await?;
        for name in names {
            tracing::warn!(sns_topic = %name, "its backing log was deleted; made again, empty");
        }
        Ok(())
    };
    engine
        .on_owner(CONTROLLER_SHARD, CallClass::Internal, job)
        .await
}

/// Writes `next` and hands it to every shard (the admin lock held).
async fn save(
    shard: &Rc<Shard>,
    next: peregrine_shards::catalog::Catalog,
) -> Result<(), EngineError> {
    admin::publish(shard, next).await
}

async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    fifo: bool,
    (attributes, tags): (BTreeMap<String, String>, BTreeMap<String, String>),
) -> Result<SnsTopicMeta, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    let now = crate::time::now_ms();
    let placed = (shard.nshards, now);
    let Some(next) = catalog.with_sns_topic(name, fifo, attributes, tags, placed)? else {
        return Ok(catalog.sns_topic(name)?.clone());
    };
    let limits = &shard.config.object_limits;
    if next.sns.len() > limits.max_sns_topics {
        return Err(EngineError::PreconditionFailed(format!(
            "sns topic limit reached: the broker holds {} SNS topics and its cap is {} \
             (`peregrine serve --max-sns-topics`); delete unused topics, or raise the cap",
            catalog.sns.len(),
            limits.max_sns_topics
        )));
    }
    // Its backing log is a topic: the topic and partition caps hold too.
    let grown = admin::check_growth(ObjectCounts::of(&catalog), ObjectCounts::of(&next), limits);
    grown.map_err(|e| EngineError::PreconditionFailed(e.to_string()))?;
    save(shard, next).await?;
    let meta = shard.catalog().sns_topic(name)?.clone();
    tracing::info!(sns_topic = %name, id = meta.id, "sns topic created");
    Ok(meta)
}

async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let Some((next, removed, backing)) = shard.catalog().without_sns_topic(name) else {
        return Ok(());
    };
    save(shard, next).await?;
    // Every owner has deleted the backing partition; its folder goes last. The fan-out
    // worker deletes its cursor when it sees the topic gone.
    if let Some(backing) = backing {
        admin::remove_folder(backing.topic_dir(&shard.config.data_dir), "topic").await;
    }
    tracing::info!(sns_topic = %name, id = removed.id, "sns topic deleted");
    Ok(())
}

async fn subscribe(
    shard: &Rc<Shard>,
    topic: &str,
    sub: SnsSubscription,
) -> Result<SnsSubscription, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    let meta = catalog.sns_topic(topic)?;
    check_endpoint(shard, meta, &sub.protocol, &sub.endpoint)?;
    check_filter(&sub.attributes)?;
    let max = shard.config.object_limits.max_sns_subscriptions_per_topic;
    let (next, sub) = catalog.with_sns_subscription(topic, sub, max)?;
    if let Some(next) = next {
        save(shard, next).await?;
        tracing::info!(sns_topic = %topic, subscription = %sub.id, protocol = %sub.protocol, "subscribed");
    }
    Ok(sub)
}

/// A subscription's filter policy must parse (the fan-out worker would otherwise drop
/// every message for it); its scope must be one SNS names.
fn check_filter(attributes: &BTreeMap<String, String>) -> Result<(), EngineError> {
    use peregrine_aws_wire::sns::filter::{FilterPolicy, Scope};
    let scope = match attributes.get("FilterPolicyScope") {
        None => Scope::default(),
        Some(name) => Scope::from_name(name).ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "FilterPolicyScope '{name}' is neither MessageAttributes nor MessageBody"
            ))
        })?,
    };
    if let Some(policy) = attributes.get("FilterPolicy") {
        FilterPolicy::parse(policy, scope)
            .map_err(|e| EngineError::InvalidRequest(format!("FilterPolicy: {e}")))?;
    }
    Ok(())
}

/// What each protocol's endpoint must be: `sqs`, the ARN of an existing queue of this
/// broker's region and account (a FIFO queue only for a FIFO topic, as in AWS); `http`,
/// an `http://` URL; `kafka`, an existing engine topic (not a backing log). `https`
/// needs a TLS client the broker does not have yet.
fn check_endpoint(
    shard: &Rc<Shard>,
    topic: &SnsTopicMeta,
    protocol: &str,
    endpoint: &str,
) -> Result<(), EngineError> {
    let catalog = shard.catalog();
    let invalid = |m: String| Err(EngineError::InvalidRequest(m));
    match protocol {
        "sqs" => {
            let settings = &shard.config.sqs;
            let Some(queue) = settings.queue_of_arn(endpoint) else {
                return invalid(format!(
                    "sqs endpoint '{endpoint}' is not a queue ARN of this broker \
                     (arn:aws:sqs:{}:{}:QUEUE)",
                    settings.region, settings.account_id
                ));
            };
            let Ok(meta) = catalog.queue(queue) else {
                return invalid(format!(
                    "sqs endpoint '{endpoint}': queue '{queue}' does not exist"
                ));
            };
            if meta.config.fifo && !topic.fifo {
                return invalid(format!(
                    "queue '{queue}' is a FIFO queue: only FIFO topics deliver to FIFO queues"
                ));
            }
            Ok(())
        }
        "http" | "https" => match crate::sns::http_delivery::Url::parse(endpoint) {
            Ok(url) if url.tls == (protocol == "https") => Ok(()),
            Ok(_) => invalid(format!(
                "{protocol} endpoint '{endpoint}' must start with {protocol}://"
            )),
            Err(e) => invalid(format!("{protocol} endpoint '{endpoint}': {e}")),
        },
        "kafka" => {
            let backing = endpoint.starts_with(peregrine_shards::sns::BACKING_TOPIC_PREFIX);
            if backing || catalog.topic(endpoint).is_err() {
                return invalid(format!(
                    "kafka endpoint '{endpoint}' is not a topic of this broker (create it first)"
                ));
            }
            Ok(())
        }
        other => invalid(format!(
            "protocol '{other}' is not served: use one of {}",
            SNS_PROTOCOLS.join(", ")
        )),
    }
}

/// `n` random bytes from the kernel.
fn random_bytes(n: usize) -> Result<Vec<u8>, EngineError> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the pointer and length name the unfilled rest of `buf`.
        let got = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(EngineError::Internal(format!("getrandom: {e}")));
        }
        filled += got as usize;
    }
    Ok(buf)
}

fn random_hex(n: usize) -> Result<String, EngineError> {
    Ok(random_bytes(n)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A random (version 4) UUID.
fn random_uuid() -> Result<String, EngineError> {
    let bytes = random_bytes(16)?;
    let mut v = bytes.iter().fold(0u128, |acc, b| acc << 8 | u128::from(*b));
    v = (v & !(0xf << 76)) | (0x4 << 76);
    v = (v & !(0x3 << 62)) | (0x2 << 62);
    Ok(peregrine_aws_wire::sqs::receipt::uuid(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_uuids_and_differ() {
        let (a, b) = (random_uuid().expect("a"), random_uuid().expect("b"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(random_hex(32).expect("hex").len(), 64);
    }
}
