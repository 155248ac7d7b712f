//! One queue's delivery state machine. Pure: every call takes `now_ms` and returns what
//! happened (deliveries, dead letters); it holds no timers or files, so tests drive it
//! exactly and the owner persists what it returns.
//!
//! A message is in exactly one place: ready (by priority, highest first, then publish
//! order), delayed (by the time it becomes visible) or leased (under a receipt handle
//! until ack, nack, its holder going away or the visibility timeout). Settled messages
//! (acked, dropped, dead-lettered) are gone from the queue.
//!
//! Expiry (TTL) applies to ready and delayed messages; a leased message is not expired
//! under its consumer, and is checked again when it comes back. Max deliveries counts
//! deliveries: a message that comes back (timeout, requeue, holder gone) with that many
//! behind it is dead-lettered instead of made ready again.
//!
//! Bodies: a message's body is in memory (loaded) or only in the journal. Publishes
//! keep theirs while every waiting body is loaded and the read-ahead has room
//! (`journaled`); past it they keep only metadata. A receive hands out loaded messages
//! in order and stops at the first one that is not (`blocked`), so order never depends
//! on what is loaded; the owner's loader (`to_load`, `fill`) reads bodies near the head
//! back from the journal. A leased body stays in memory (leases are bounded by prefetch
//! and receive sizes) but out of the read-ahead's count.
//!
//! The common path (publish in order, hand out from the front, ack) touches no ordered
//! tree: fresh messages wait in a deque per priority and lease timeouts in a deque in
//! the order they were given, both cleaned lazily; only messages that come back, delays,
//! TTLs and leases of another length than the queue's (a receive's own visibility, a
//! changed one, one given before a reconfigure) use ordered sets. Entries and leases are
//! found by id in `IdSlots`, a ring in id order, so that path walks memory forward.
//!
//! A live queue may be reconfigured (`reconfigure`): a new visibility timeout applies to
//! later leases, TTL and delay to later publishes; ordering and priorities are fixed.

use super::slots::IdSlots;
use super::{
    DeadLetter, DeadReason, Delivery, Extras, Holder, Message, Overflow, PublishOptions,
    QueueConfig, QueueError, DEDUP_WINDOW_MS, ORIGIN_WINDOW_MS, READ_AHEAD_BYTES,
    VISIBILITY_TIMEOUT_MS_MAX,
};
use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    id: u64,
    holder: Holder,
    deadline_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub ready: usize,
    pub delayed: usize,
    pub in_flight: usize,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In its level's `fresh` deque (`fresh`) or `back` set.
    Ready {
        fresh: bool,
    },
    Delayed,
    Leased,
}

#[derive(Debug)]
struct Entry {
    /// Its body is empty while it is only in the journal (`len` says how long it is).
    message: Message,
    place: Place,
    len: u32,
}

impl Entry {
    /// Whether its body is in memory (a ready message is handed out only then).
    fn loaded(&self) -> bool {
        self.message.body.len() == self.len as usize
    }
}

/// The ready messages of one priority, in publish (id) order across both parts.
#[derive(Debug, Default)]
struct Level {
    /// Published (or restored) in id order and not handed out since: pushed at the
    /// back, taken from the front. An id whose message went elsewhere meanwhile (expired,
    /// taken, leased from the middle of a FIFO queue) stays until met, then is skipped:
    /// only an entry at `Ready { fresh: true }` is live here, and an id never re-enters.
    fresh: VecDeque<u64>,
    /// Ready again after a lease, a delay or a requeue.
    back: BTreeSet<u64>,
}

/// Ready messages `to_load` looks at in one call (most of them are loaded already).
const LOAD_WALK_MAX: usize = 1 << 16;

/// Ended leases may pile up in the deadline deque this far beyond the live ones before
/// a sweep drops them.
const STALE_DEADLINES_MAX: usize = 1024;

#[derive(Debug)]
pub struct Queue {
    name: String,
    config: QueueConfig,
    next_id: u64,
    next_handle: u64,
    /// Every message not settled.
    entries: IdSlots<Entry>,
    /// Ready messages by priority (index = priority).
    levels: Vec<Level>,
    ready: usize,
    /// Body bytes of ready and delayed messages (`max_bytes` bounds them).
    queued_bytes: u64,
    /// Messages a drop-head publish pushed out, until the owner takes them.
    overflowed: Vec<DeadLetter>,
    delayed: BTreeSet<(i64, u64)>,
    /// Expiry times of ready and delayed messages.
    expiring: BTreeSet<(i64, u64)>,
    leases: IdSlots<Lease>,
    /// (deadline, handle) of leases of the queue's visibility timeout, in the order
    /// they were given: one length makes that deadline order (a wall clock stepping
    /// back only delays some timeouts by the step). Ended leases leave at the front or
    /// in a sweep.
    lease_deadlines: VecDeque<(i64, u64)>,
    /// (deadline, handle) of leases of another length (given so by a receive, changed
    /// since, or given before a reconfigure): out of the deque's order. A deque entry
    /// whose deadline is no longer its lease's is stale.
    moved_deadlines: BTreeSet<(i64, u64)>,
    /// Leases per holder (a subscription's prefetch bound).
    held: FxHashMap<Holder, usize>,
    /// FIFO queues: groups with messages in flight, and how many. A receive takes a
    /// group's ready messages in order only while it has none in flight (SQS hands out
    /// several of one group in one receive, then none until they are settled).
    busy_groups: FxHashMap<String, u32>,
    /// FIFO queues: deduplication ids seen, with when they are forgotten and the id of
    /// the message stored under them (a duplicate is answered with it).
    dedup: FxHashMap<String, (i64, u64)>,
    dedup_order: VecDeque<(i64, String)>,
    /// Origin keys of dead letters stored here, with when they are forgotten.
    origins: Window,
    /// Body bytes of ready and delayed messages held in memory (the read-ahead).
    resident_bytes: u64,
    /// Ready and delayed messages whose bodies are only in the journal.
    unloaded: usize,
    /// A receive stopped at a message whose body is not loaded.
    blocked: bool,
    /// A loader is reading bodies for this queue (`start_loading`).
    loading: bool,
}

/// Keys remembered until a time, forgotten in the order they were seen.
#[derive(Debug, Default)]
struct Window {
    until: FxHashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl Window {
    fn contains(&self, key: &str) -> bool {
        self.until.contains_key(key)
    }

    fn insert(&mut self, key: String, until: i64) {
        self.until.insert(key.clone(), until);
        self.order.push_back((until, key));
    }

    fn forget(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.order.front() {
            if *until > now_ms {
                break;
            }
            if let Some((until, key)) = self.order.pop_front() {
                if self.until.get(&key) == Some(&until) {
                    self.until.remove(&key);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len().max(self.order.len())
    }
}

impl Queue {
    pub fn new(name: &str, config: QueueConfig) -> Queue {
        let levels = (0..=config.max_priority)
            .map(|_| Level::default())
            .collect();
        Queue {
            name: name.to_string(),
            config,
            next_id: 0,
            next_handle: 1,
            entries: IdSlots::default(),
            levels,
            ready: 0,
            queued_bytes: 0,
            overflowed: Vec::new(),
            delayed: BTreeSet::new(),
            expiring: BTreeSet::new(),
            leases: IdSlots::default(),
            lease_deadlines: VecDeque::new(),
            moved_deadlines: BTreeSet::new(),
            held: FxHashMap::default(),
            busy_groups: FxHashMap::default(),
            dedup: FxHashMap::default(),
            dedup_order: VecDeque::new(),
            origins: Window::default(),
            resident_bytes: 0,
            unloaded: 0,
            blocked: false,
            loading: false,
        }
    }

    /// Whether a dead letter with this origin key was stored here within
    /// `ORIGIN_WINDOW_MS` (a resumed move: drop the second copy).
    pub fn knows_origin(&self, origin: &str) -> bool {
        self.origins.contains(origin)
    }

    /// Remembers a stored dead letter's origin key, seen at `at_ms`, for
    /// `ORIGIN_WINDOW_MS`.
    pub fn remember_origin(&mut self, origin: String, at_ms: i64, now_ms: i64) {
        self.origins.forget(now_ms);
        let until = at_ms.saturating_add(ORIGIN_WINDOW_MS);
        if until > now_ms {
            self.origins.insert(origin, until);
        }
    }

    /// A queue rebuilt from its journal: every unsettled message ready again (or
    /// delayed), delivery counts kept; dedup ids (with their publish times and message
    /// ids) still inside their window. `messages` come in id order.
    pub fn restore(
        name: &str,
        config: QueueConfig,
        messages: Vec<(Message, u32)>,
        dedup: Vec<(String, i64, u64)>,
        next_id: u64,
        now_ms: i64,
    ) -> Queue {
        let mut q = Queue::new(name, config);
        q.next_id = next_id;
        for (m, len) in messages {
            q.next_id = q.next_id.max(m.id + 1);
            q.place(m, len, now_ms, true);
        }
        let mut dedup: Vec<(i64, String, u64)> = dedup
            .into_iter()
            .map(|(key, published, id)| (published + DEDUP_WINDOW_MS, key, id))
            .filter(|(until, _, _)| *until > now_ms)
            .collect();
        dedup.sort();
        for (until, key, id) in dedup {
            q.dedup.insert(key.clone(), (until, id));
            q.dedup_order.push_back((until, key));
        }
        q
    }

    fn level(&mut self, priority: u8) -> &mut Level {
        // Publish refuses priorities over the maximum; clamp anything else.
        let i = usize::from(priority).min(self.levels.len() - 1);
        &mut self.levels[i]
    }

    /// Takes back a publish that could not be journaled: the message leaves and its
    /// deduplication id is forgotten, so a retry is not dropped as a duplicate.
    pub fn unpublish(&mut self, id: u64, dedup_id: Option<&str>) -> Option<Message> {
        if let Some(d) = dedup_id {
            self.dedup.remove(d);
        }
        self.take(id)
    }

    /// Takes a ready or delayed message out (its body is empty if it was not loaded).
    pub fn take(&mut self, id: u64) -> Option<Message> {
        self.take_entry(id).map(|e| e.message)
    }

    /// Takes a ready or delayed message out as a dead letter (a move begun before a
    /// restart, finished now).
    pub fn take_dead(&mut self, id: u64, reason: DeadReason, at_ms: i64) -> Option<DeadLetter> {
        let entry = self.take_entry(id)?;
        Some(self.dead(entry, reason, at_ms))
    }

    fn take_entry(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.get(id)?;
        if entry.place == Place::Leased {
            return None;
        }
        let entry = self.entries.remove(id)?;
        self.unplace(&entry);
        Some(entry)
    }

    /// Removes a ready or delayed message's traces (its entry is already out).
    fn unplace(&mut self, entry: &Entry) {
        let m = &entry.message;
        if entry.place != Place::Leased {
            self.queued_bytes -= u64::from(entry.len);
            self.resident_bytes -= m.body.len() as u64;
            self.unloaded -= usize::from(!entry.loaded());
        }
        match entry.place {
            Place::Ready { fresh } => {
                if !fresh {
                    self.level(m.priority).back.remove(&m.id);
                }
                self.ready -= 1;
            }
            Place::Delayed => {
                self.delayed.remove(&(m.visible_at_ms, m.id));
            }
            Place::Leased => {}
        }
        if let Some(at) = m.expires_at_ms {
            self.expiring.remove(&(at, m.id));
        }
    }

    /// Leases `holder` has now.
    pub fn held_by(&self, holder: Holder) -> usize {
        self.held.get(&holder).copied().unwrap_or(0)
    }

    pub fn message(&self, id: u64) -> Option<&Message> {
        self.entries.get(id).map(|e| &e.message)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Takes a changed declaration (`QueueChange`): a new visibility timeout applies
    /// to later leases, TTL and delay to later publishes, a dead-letter target and max
    /// deliveries to messages as they come back. Ordering and priorities cannot change.
    pub fn reconfigure(&mut self, config: QueueConfig) {
        debug_assert_eq!(
            (config.fifo, config.max_priority),
            (self.config.fifo, self.config.max_priority),
            "ordering and priorities are fixed at declaration"
        );
        if config.visibility_timeout_ms != self.config.visibility_timeout_ms {
            // The deque holds leases of the old length only: live ones move to the
            // ordered set, so leases of the new length start a deque in order.
            for (deadline, handle) in std::mem::take(&mut self.lease_deadlines) {
                let live = self
                    .leases
                    .get(handle)
                    .is_some_and(|l| l.deadline_ms == deadline);
                if live {
                    self.moved_deadlines.insert((deadline, handle));
                }
            }
        }
        self.config = config;
    }

    /// The message a FIFO queue stored under deduplication id `key` within the last
    /// `DEDUP_WINDOW_MS` (a publish with it would be dropped), if any. The message may
    /// be settled already: the window outlives it, as SQS's does.
    pub fn duplicate_of(&mut self, key: &str, now_ms: i64) -> Option<u64> {
        if !self.config.fifo {
            return None;
        }
        self.forget_dedup(now_ms);
        self.dedup.get(key).map(|(_, id)| *id)
    }

    /// Adds a message; `Ok(None)` when a FIFO queue drops it as a duplicate.
    pub fn publish(
        &mut self,
        body: Bytes,
        opts: PublishOptions,
        now_ms: i64,
    ) -> Result<Option<u64>, QueueError> {
        if opts.priority > self.config.max_priority {
            return Err(QueueError::PriorityTooHigh {
                got: opts.priority,
                max: self.config.max_priority,
            });
        }
        if self.config.fifo {
            if opts.group_id.is_none() {
                return Err(QueueError::GroupIdRequired);
            }
            self.forget_dedup(now_ms);
            if opts
                .dedup_id
                .as_ref()
                .is_some_and(|d| self.dedup.contains_key(d))
            {
                return Ok(None);
            }
        }
        self.make_room(body.len() as u64, now_ms)?;
        let id = self.next_id;
        self.next_id += 1;
        if let Some(key) = &opts.dedup_id {
            let until = now_ms + DEDUP_WINDOW_MS;
            self.dedup.insert(key.clone(), (until, id));
            self.dedup_order.push_back((until, key.clone()));
        }
        let ttl = match (self.config.ttl_ms, opts.ttl_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let message = Message {
            id,
            body,
            extras: Extras::boxed(opts.headers, opts.group_id),
            priority: opts.priority,
            published_ms: now_ms,
            visible_at_ms: opts
                .deliver_at_ms
                .unwrap_or_else(|| {
                    now_ms.saturating_add(i64::try_from(self.config.delay_ms).unwrap_or(i64::MAX))
                })
                .max(now_ms),
            expires_at_ms: ttl.map(|t| now_ms.saturating_add(i64::try_from(t).unwrap_or(i64::MAX))),
            deliveries: 0,
        };
        let len = message.body.len() as u32;
        self.place(message, len, now_ms, true);
        Ok(Some(id))
    }

    /// Publishes now in the journal (the owner calls this once `append_published` took
    /// them): their bodies stay in memory while every waiting body is and the
    /// read-ahead has room, else they are dropped here and read back when near the head.
    pub fn journaled(&mut self, ids: &[u64]) {
        if self.unloaded == 0 && self.resident_bytes <= READ_AHEAD_BYTES {
            // The common case: all in memory, within the read-ahead.
            return;
        }
        for id in ids {
            let Some(entry) = self.entries.get_mut(*id) else {
                continue;
            };
            if entry.place == Place::Leased || !entry.loaded() || entry.len == 0 {
                continue;
            }
            self.resident_bytes -= u64::from(entry.len);
            entry.message.body = Bytes::new();
            self.unloaded += 1;
        }
    }

    /// Whether bodies should be read from the journal now: a receive waits for one, or
    /// the read-ahead is down to half (then it is filled again whole: each journal
    /// read brings a whole publish record, so a few large refills read it once).
    pub fn wants_load(&self) -> bool {
        !self.loading
            && self.unloaded > 0
            && (self.blocked || self.resident_bytes <= READ_AHEAD_BYTES / 2)
    }

    /// Claims the loader for this queue if there is something to load (one at a time).
    pub fn start_loading(&mut self) -> bool {
        if !self.wants_load() {
            return false;
        }
        self.loading = true;
        true
    }

    /// The last receive stopped at a body the running loader is reading: an answer
    /// with nothing in it now would only mean "not read yet".
    pub fn waits_for_load(&self) -> bool {
        self.blocked && self.loading
    }

    pub fn stop_loading(&mut self) {
        self.loading = false;
    }

    /// Ready messages whose bodies to read next, in the order they will be handed out:
    /// as many as the read-ahead has room for (at least one), looking at no more than
    /// `LOAD_WALK_MAX` ready messages.
    pub fn to_load(&self) -> Vec<u64> {
        let mut room = READ_AHEAD_BYTES.saturating_sub(self.resident_bytes);
        let mut out = Vec::new();
        let mut walked = 0;
        for level in self.levels.iter().rev() {
            let entries = &self.entries;
            let fresh = level.fresh.iter().copied().filter(|id| {
                entries.get(*id).map(|e| e.place) == Some(Place::Ready { fresh: true })
            });
            let mut fresh = fresh.peekable();
            let mut back = level.back.iter().copied().peekable();
            loop {
                let id = match (fresh.peek().copied(), back.peek().copied()) {
                    (Some(f), Some(b)) if b < f => back.next(),
                    (Some(_), _) => fresh.next(),
                    (None, Some(_)) => back.next(),
                    (None, None) => break,
                };
                let Some(entry) = id.and_then(|id| entries.get(id)) else {
                    break;
                };
                walked += 1;
                if !entry.loaded() {
                    let len = u64::from(entry.len);
                    if !out.is_empty() && len > room {
                        return out;
                    }
                    room = room.saturating_sub(len);
                    out.push(entry.message.id);
                }
                if walked >= LOAD_WALK_MAX || (room == 0 && !out.is_empty()) {
                    return out;
                }
            }
        }
        out
    }

    /// A body read back from the journal; ignored unless its message still waits for
    /// it (it may have been acked, expired or loaded meanwhile).
    pub fn fill(&mut self, id: u64, body: Bytes) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        if entry.place == Place::Leased || entry.loaded() || body.len() != entry.len as usize {
            return;
        }
        self.resident_bytes += body.len() as u64;
        entry.message.body = body;
        self.unloaded -= 1;
    }

    /// Body bytes of waiting messages held in memory, and how many waiting messages
    /// have theirs only in the journal.
    pub fn resident(&self) -> (u64, usize) {
        (self.resident_bytes, self.unloaded)
    }

    /// Messages waiting: ready or delayed (what `max_length` counts).
    pub fn queued(&self) -> usize {
        self.ready + self.delayed.len()
    }

    /// Body bytes waiting: ready or delayed (what `max_bytes` counts).
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    fn fits(&self, len: u64) -> bool {
        let c = &self.config;
        c.max_length.is_none_or(|m| (self.queued() as u64) < m)
            && c.max_bytes
                .is_none_or(|m| self.queued_bytes.saturating_add(len) <= m)
    }

    /// Makes room for one more message of `len` bytes under the queue's bounds: by
    /// refusing it (reject-publish, or a message no emptying could fit) or by pushing
    /// the oldest waiting messages out (drop-head; see `drain_overflow`).
    fn make_room(&mut self, len: u64, now_ms: i64) -> Result<(), QueueError> {
        if self.fits(len) {
            return Ok(());
        }
        let c = &self.config;
        let impossible = c.max_length == Some(0) || c.max_bytes.is_some_and(|m| len > m);
        if c.overflow == Overflow::RejectPublish || impossible {
            return Err(self.full());
        }
        while !self.fits(len) {
            let Some(id) = self.head() else {
                return Err(self.full());
            };
            let Some(entry) = self.take_entry(id) else {
                return Err(self.full());
            };
            let dead = self.dead(entry, DeadReason::MaxLength, now_ms);
            self.overflowed.push(dead);
        }
        Ok(())
    }

    fn full(&self) -> QueueError {
        let c = &self.config;
        let limit = match (c.max_length, c.max_bytes) {
            (Some(n), Some(b)) => format!("max-length {n}, max-bytes {b}"),
            (Some(n), None) => format!("max-length {n}"),
            (None, Some(b)) => format!("max-bytes {b}"),
            (None, None) => "no limit".to_string(),
        };
        QueueError::QueueFull {
            queue: self.name.clone(),
            limit,
        }
    }

    /// The oldest waiting message: the lowest ready id over every priority, else the
    /// delayed one due first. Stale fresh ids met at a deque's front are dropped.
    fn head(&mut self) -> Option<u64> {
        let mut oldest: Option<u64> = None;
        for p in 0..self.levels.len() {
            while let Some(&id) = self.levels[p].fresh.front() {
                let live =
                    self.entries.get(id).map(|e| e.place) == Some(Place::Ready { fresh: true });
                if live {
                    break;
                }
                self.levels[p].fresh.pop_front();
            }
            let level = &self.levels[p];
            let first = [level.fresh.front(), level.back.first()]
                .into_iter()
                .flatten()
                .min()
                .copied();
            oldest = [oldest, first].into_iter().flatten().min();
        }
        oldest.or_else(|| self.delayed.first().map(|(_, id)| *id))
    }

    /// Dead letters a drop-head publish pushed out: the owner moves them on (or journals
    /// them settled when the queue has no target) as for any other dead letter.
    pub fn drain_overflow(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.overflowed)
    }

    /// Puts an unleased message where it belongs: delayed or ready. `fresh`: it is the
    /// newest id placed so far (a publish, a restore in id order), so it can join the
    /// back of its level's deque.
    fn place(&mut self, message: Message, len: u32, now_ms: i64, fresh: bool) {
        let id = message.id;
        self.queued_bytes += u64::from(len);
        self.resident_bytes += message.body.len() as u64;
        self.unloaded += usize::from(message.body.len() < len as usize);
        if let Some(at) = message.expires_at_ms {
            self.expiring.insert((at, id));
        }
        let place = if message.visible_at_ms > now_ms {
            self.delayed.insert((message.visible_at_ms, id));
            Place::Delayed
        } else {
            self.make_ready(id, message.priority, fresh);
            Place::Ready { fresh }
        };
        self.entries.insert(
            id,
            Entry {
                message,
                place,
                len,
            },
        );
    }

    fn make_ready(&mut self, id: u64, priority: u8, fresh: bool) {
        let level = self.level(priority);
        if fresh {
            level.fresh.push_back(id);
        } else {
            level.back.insert(id);
        }
        self.ready += 1;
    }

    fn forget_dedup(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.dedup_order.front() {
            if *until > now_ms {
                break;
            }
            if let Some((until, id)) = self.dedup_order.pop_front() {
                // Unless it was forgotten (unpublish) and seen again since.
                if self.dedup.get(&id).is_some_and(|(u, _)| *u == until) {
                    self.dedup.remove(&id);
                }
            }
        }
    }

    /// Hands out up to `max` ready messages under leases held by `holder`.
    pub fn receive(
        &mut self,
        max: usize,
        holder: Holder,
        now_ms: i64,
    ) -> (Vec<Delivery>, Vec<DeadLetter>) {
        let mut out = Vec::new();
        let dead = self.receive_with(max, holder, now_ms, |handle, m| {
            out.push(Delivery {
                handle,
                message: m.clone(),
            })
        });
        (out, dead)
    }

    /// `receive`, showing each leased message (with its new handle and count) to
    /// `each` instead of cloning it out.
    pub fn receive_with(
        &mut self,
        max: usize,
        holder: Holder,
        now_ms: i64,
        each: impl FnMut(u64, &Message),
    ) -> Vec<DeadLetter> {
        self.receive_leasing(max, holder, None, now_ms, each)
    }

    /// `receive_with`, leasing for `lease_ms` (SQS's per-receive `VisibilityTimeout`,
    /// at most `VISIBILITY_TIMEOUT_MS_MAX`) instead of the queue's visibility timeout
    /// when given.
    pub fn receive_leasing(
        &mut self,
        max: usize,
        holder: Holder,
        lease_ms: Option<u64>,
        now_ms: i64,
        mut each: impl FnMut(u64, &Message),
    ) -> Vec<DeadLetter> {
        let lease_ms = lease_ms
            .unwrap_or(self.config.visibility_timeout_ms)
            .min(VISIBILITY_TIMEOUT_MS_MAX);
        let dead = self.tick(now_ms);
        let mut leased = 0;
        self.blocked = false;
        for p in (0..self.levels.len()).rev() {
            if leased == max || self.ready == 0 || self.blocked {
                break;
            }
            if self.config.fifo {
                for id in self.pick_fifo(p, max - leased) {
                    let to = (holder, lease_ms);
                    leased += usize::from(self.lease(id, None, to, now_ms, &mut each));
                }
            } else {
                let to = (holder, lease_ms);
                leased += self.lease_oldest(p, max - leased, to, now_ms, &mut each);
            }
        }
        if leased > 0 {
            *self.held.entry(holder).or_default() += leased;
        }
        dead
    }

    /// Leases up to `max` ready messages of level `p` to `to` (holder, lease length),
    /// oldest first, looking each up once; returns how many.
    fn lease_oldest(
        &mut self,
        p: usize,
        max: usize,
        to: (Holder, u64),
        now_ms: i64,
        each: &mut impl FnMut(u64, &Message),
    ) -> usize {
        let mut leased = 0;
        while leased < max {
            let level = &mut self.levels[p];
            let (id, fresh) = match (level.fresh.front(), level.back.first()) {
                (Some(&f), Some(&b)) if b < f => (b, false),
                (Some(&f), _) => (f, true),
                (None, Some(&b)) => (b, false),
                (None, None) => break,
            };
            // A fresh id whose message went elsewhere meanwhile is skipped (see `Level`).
            let expected = Place::Ready { fresh };
            let live = self.entries.get(id).filter(|e| e.place == expected);
            if live.is_some_and(|e| !e.loaded()) {
                // Its body is still in the journal: nothing after it goes first.
                self.blocked = true;
                break;
            }
            let level = &mut self.levels[p];
            if fresh {
                level.fresh.pop_front();
            } else {
                level.back.pop_first();
            }
            if live.is_none() {
                continue;
            }
            if self.lease(id, Some(expected), to, now_ms, each) {
                self.ready -= 1;
                leased += 1;
            }
        }
        leased
    }

    /// Takes ready ids of level `p` off it for a FIFO queue: the oldest ready message
    /// of each group with none in flight, skipping the others; up to `max`.
    fn pick_fifo(&mut self, p: usize, max: usize) -> Vec<u64> {
        let (level, entries) = (&self.levels[p], &self.entries);
        let live_fresh =
            level.fresh.iter().copied().filter(|id| {
                entries.get(*id).map(|e| e.place) == Some(Place::Ready { fresh: true })
            });
        let mut fresh = live_fresh.peekable();
        let mut back = level.back.iter().copied().peekable();
        let mut picked = Vec::new();
        let mut blocked = false;
        while picked.len() < max {
            let id = match (fresh.peek().copied(), back.peek().copied()) {
                (Some(f), Some(b)) if b < f => back.next(),
                (Some(_), _) => fresh.next(),
                (None, Some(_)) => back.next(),
                (None, None) => None,
            };
            let Some(id) = id else { break };
            let Some(entry) = entries.get(id) else {
                continue;
            };
            let group = entry.message.group_id().unwrap_or("");
            // A group with messages in flight waits until they are settled; a free
            // one gives its ready messages in order (ids are taken in order).
            if self.busy_groups.contains_key(group) {
                continue;
            }
            if !entry.loaded() {
                // Its body is still in the journal: nothing after it goes first.
                blocked = true;
                break;
            }
            picked.push((id, entry.place));
        }
        self.blocked |= blocked;
        let level = &mut self.levels[p];
        for (id, place) in &picked {
            // A fresh id goes stale by its lease; a back one leaves its set.
            if *place == (Place::Ready { fresh: false }) {
                level.back.remove(id);
            }
        }
        self.ready -= picked.len();
        picked.into_iter().map(|(id, _)| id).collect()
    }

    /// Leases a message just taken off the ready set to `holder` for `lease_ms` (the
    /// caller counts it in `held` and `ready`); false when there is no such message, or
    /// it is not at `expected` (one lookup checks and leases).
    fn lease(
        &mut self,
        id: u64,
        expected: Option<Place>,
        (holder, lease_ms): (Holder, u64),
        now_ms: i64,
        each: &mut impl FnMut(u64, &Message),
    ) -> bool {
        let Some(entry) = self.entries.get_mut(id) else {
            return false;
        };
        if expected.is_some_and(|place| place != entry.place) {
            return false;
        }
        if let Some(at) = entry.message.expires_at_ms {
            self.expiring.remove(&(at, id));
        }
        debug_assert!(entry.loaded(), "only loaded messages are handed out");
        entry.place = Place::Leased;
        entry.message.deliveries += 1;
        self.queued_bytes -= u64::from(entry.len);
        let handle = self.next_handle;
        self.next_handle += 1;
        // Bounded by `VISIBILITY_TIMEOUT_MS_MAX`, so the cast is exact.
        let deadline_ms = now_ms.saturating_add(lease_ms as i64);
        self.leases.insert(
            handle,
            Lease {
                id,
                holder,
                deadline_ms,
            },
        );
        if lease_ms == self.config.visibility_timeout_ms {
            self.lease_deadlines.push_back((deadline_ms, handle));
        } else {
            // Another length than the queue's: out of the deque's order.
            self.moved_deadlines.insert((deadline_ms, handle));
        }
        if self.config.fifo {
            let group = entry.message.group_id().unwrap_or_default().to_string();
            *self.busy_groups.entry(group).or_insert(0) += 1;
        }
        each(handle, &entry.message);
        // A leased body stays (a redelivery needs no read) but leaves the read-ahead:
        // leases are bounded by prefetch and receive sizes, not by it.
        self.resident_bytes -= entry.message.body.len() as u64;
        true
    }

    fn end_lease(&mut self, handle: u64) -> Result<Entry, QueueError> {
        let lease = self
            .leases
            .remove(handle)
            .ok_or(QueueError::UnknownHandle(handle))?;
        self.release_held(lease.holder, 1);
        self.moved_deadlines.remove(&(lease.deadline_ms, handle));
        self.sweep_deadlines();
        let entry = self
            .entries
            .remove(lease.id)
            .ok_or(QueueError::UnknownHandle(handle))?;
        if self.config.fifo {
            free_group(&mut self.busy_groups, entry.message.group_id());
        }
        Ok(entry)
    }

    fn release_held(&mut self, holder: Holder, n: usize) {
        if let Some(held) = self.held.get_mut(&holder) {
            *held = held.saturating_sub(n);
            if *held == 0 {
                self.held.remove(&holder);
            }
        }
    }

    /// Ended leases' deadlines stay queued until met or swept: sweep when they pile up.
    fn sweep_deadlines(&mut self) {
        if self.lease_deadlines.len() > 2 * self.leases.len() + STALE_DEADLINES_MAX {
            let leases = &self.leases;
            self.lease_deadlines.retain(|(deadline, handle)| {
                leases
                    .get(*handle)
                    .is_some_and(|l| l.deadline_ms == *deadline)
            });
        }
    }

    /// SQS ChangeMessageVisibility: the lease `handle` now ends `timeout_ms` after
    /// `now_ms` (0: the message is visible again at once, one delivery behind it, as
    /// after a timeout). The handle stays valid until then.
    pub fn change_visibility(
        &mut self,
        handle: u64,
        timeout_ms: u64,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        if timeout_ms > VISIBILITY_TIMEOUT_MS_MAX {
            return Err(QueueError::VisibilityTimeoutTooLong {
                got: timeout_ms,
                max: VISIBILITY_TIMEOUT_MS_MAX,
            });
        }
        let lease = self
            .leases
            .get_mut(handle)
            .ok_or(QueueError::UnknownHandle(handle))?;
        let old = lease.deadline_ms;
        // Bounded above, so the sum cannot overflow for any sane clock.
        lease.deadline_ms = now_ms.saturating_add(timeout_ms as i64);
        self.moved_deadlines.remove(&(old, handle));
        self.moved_deadlines.insert((lease.deadline_ms, handle));
        Ok(())
    }

    /// The message the live lease `handle` holds (handles restart from 1 with the
    /// broker, so a front end that hands handles to clients checks both).
    pub fn leased_id(&self, handle: u64) -> Option<u64> {
        self.leases.get(handle).map(|l| l.id)
    }

    /// Settles one delivered message (`ack_all` with one handle): it is gone. Returns
    /// its id (the owner records the ack).
    pub fn ack(&mut self, handle: u64) -> Result<u64, QueueError> {
        let mut settled = None;
        self.ack_all(&[handle], |id| settled = Some(id), |_| {});
        settled.ok_or(QueueError::UnknownHandle(handle))
    }

    /// Settles many deliveries at once: `settled` sees each acked message's id,
    /// `unknown` each handle that was not a lease. The holders' lease counts are
    /// lowered once per run of one holder's handles.
    pub fn ack_all(
        &mut self,
        handles: &[u64],
        mut settled: impl FnMut(u64),
        mut unknown: impl FnMut(u64),
    ) {
        let mut run: Option<(Holder, usize)> = None;
        for &handle in handles {
            let Some(lease) = self.leases.remove(handle) else {
                unknown(handle);
                continue;
            };
            if !self.moved_deadlines.is_empty() {
                self.moved_deadlines.remove(&(lease.deadline_ms, handle));
            }
            match &mut run {
                Some((holder, n)) if *holder == lease.holder => *n += 1,
                _ => {
                    if let Some((holder, n)) = run.replace((lease.holder, 1)) {
                        self.release_held(holder, n);
                    }
                }
            }
            let (fifo, busy_groups) = (self.config.fifo, &mut self.busy_groups);
            let removed = self.entries.remove_with(lease.id, |entry| {
                if fifo {
                    free_group(busy_groups, entry.message.group_id());
                }
            });
            if removed {
                settled(lease.id);
            } else {
                unknown(handle);
            }
        }
        if let Some((holder, n)) = run {
            self.release_held(holder, n);
        }
        self.sweep_deadlines();
    }

    /// Gives a delivered message back: ready again (`requeue`), else dead-lettered as
    /// rejected. A requeue past max deliveries or TTL dead-letters it instead.
    pub fn nack(
        &mut self,
        handle: u64,
        requeue: bool,
        now_ms: i64,
    ) -> Result<Option<DeadLetter>, QueueError> {
        let entry = self.end_lease(handle)?;
        if !requeue {
            return Ok(Some(self.dead(entry, DeadReason::Rejected, now_ms)));
        }
        Ok(self.come_back(entry, now_ms))
    }

    /// A message whose lease ended without an ack: ready again unless it has had its
    /// deliveries or has expired.
    fn come_back(&mut self, entry: Entry, now_ms: i64) -> Option<DeadLetter> {
        let message = &entry.message;
        if self
            .config
            .max_deliveries
            .is_some_and(|max| message.deliveries >= max)
        {
            return Some(self.dead(entry, DeadReason::MaxDeliveries, now_ms));
        }
        if message.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Some(self.dead(entry, DeadReason::Expired, now_ms));
        }
        let Entry {
            mut message, len, ..
        } = entry;
        message.visible_at_ms = message.visible_at_ms.min(now_ms);
        self.place(message, len, now_ms, false);
        None
    }

    fn dead(&self, entry: Entry, reason: DeadReason, now_ms: i64) -> DeadLetter {
        let target = match reason {
            DeadReason::Expired if !self.config.dead_letter_on_expiry => None,
            _ => self.config.dead_letter.clone(),
        };
        DeadLetter {
            body_on_disk: !entry.loaded(),
            message: entry.message,
            reason,
            queue: self.name.clone(),
            at_ms: now_ms,
            target,
        }
    }

    /// Every lease a subscription held comes back at once (it disconnected).
    pub fn release(&mut self, holder: Holder, now_ms: i64) -> Vec<DeadLetter> {
        let mut handles: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.holder == holder)
            .map(|(h, _)| h)
            .collect();
        // In the order they were given, so they come back in that order.
        handles.sort_unstable();
        let mut dead = Vec::new();
        for handle in handles {
            if let Ok(entry) = self.end_lease(handle) {
                dead.extend(self.come_back(entry, now_ms));
            }
        }
        dead
    }

    /// Applies time: visibility timeouts, delays that ended, expiries.
    pub fn tick(&mut self, now_ms: i64) -> Vec<DeadLetter> {
        // Also when nobody publishes: the sets shrink back within a window.
        self.forget_dedup(now_ms);
        self.origins.forget(now_ms);
        let mut dead = Vec::new();
        while let Some(&(deadline, handle)) = self.lease_deadlines.front() {
            let current = self.leases.get(handle).map(|l| l.deadline_ms);
            if current != Some(deadline) {
                // Ended, or moved to `moved_deadlines`.
                self.lease_deadlines.pop_front();
                continue;
            }
            if deadline > now_ms {
                break;
            }
            self.lease_deadlines.pop_front();
            if let Ok(entry) = self.end_lease(handle) {
                dead.extend(self.come_back(entry, now_ms));
            }
        }
        while let Some(&(deadline, handle)) = self.moved_deadlines.first() {
            if deadline > now_ms {
                break;
            }
            self.moved_deadlines.pop_first();
            if let Ok(entry) = self.end_lease(handle) {
                dead.extend(self.come_back(entry, now_ms));
            }
        }
        while let Some(&(at, id)) = self.delayed.first() {
            if at > now_ms {
                break;
            }
            self.delayed.remove(&(at, id));
            let Some(entry) = self.entries.get_mut(id) else {
                continue;
            };
            entry.place = Place::Ready { fresh: false };
            let priority = entry.message.priority;
            self.make_ready(id, priority, false);
        }
        while let Some(&(at, id)) = self.expiring.first() {
            if at > now_ms {
                break;
            }
            self.expiring.remove(&(at, id));
            let Some(entry) = self.entries.remove(id) else {
                continue;
            };
            self.unplace(&entry);
            dead.push(self.dead(entry, DeadReason::Expired, now_ms));
        }
        dead
    }

    /// When `tick` next has something to do (possibly nothing: an ended lease's
    /// deadline is dropped only then).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        [
            self.lease_deadlines.front().map(|d| d.0),
            self.moved_deadlines.first().map(|d| d.0),
            self.delayed.first().map(|d| d.0),
            self.expiring.first().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drops every ready and delayed message (leased ones stay with their consumers).
    pub fn purge(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.place != Place::Leased)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in &ids {
            self.entries.remove(*id);
        }
        for level in &mut self.levels {
            level.fresh.clear();
            level.back.clear();
        }
        self.ready = 0;
        self.queued_bytes = 0;
        self.resident_bytes = 0;
        self.unloaded = 0;
        self.delayed.clear();
        self.expiring.clear();
        ids
    }

    pub fn stats(&self) -> Stats {
        Stats {
            ready: self.ready,
            delayed: self.delayed.len(),
            in_flight: self.leases.len(),
        }
    }
}

/// One message of `group` is no longer in flight; the group is free at the last.
fn free_group(busy: &mut FxHashMap<String, u32>, group: Option<&str>) {
    let group = group.unwrap_or("");
    if let Some(n) = busy.get_mut(group) {
        *n -= 1;
        if *n == 0 {
            busy.remove(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hand-out and ack walks entries: headers and group ids stay out of line.
    #[test]
    fn a_queue_entry_stays_small() {
        let size = std::mem::size_of::<Option<Entry>>();
        println!("a queue entry is {size} bytes");
        assert!(size <= 96, "a queue entry is {size} bytes");
    }

    fn body(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn bodies(d: &[Delivery]) -> Vec<String> {
        d.iter()
            .map(|d| String::from_utf8_lossy(&d.message.body).to_string())
            .collect()
    }

    fn queue(config: QueueConfig) -> Queue {
        Queue::new("q", config)
    }

    fn publish(q: &mut Queue, s: &str, now: i64) -> u64 {
        q.publish(body(s), PublishOptions::default(), now)
            .expect("publish")
            .expect("accepted")
    }

    #[test]
    fn competing_receivers_never_get_the_same_message_and_acks_settle() {
        let mut q = queue(QueueConfig::default());
        for i in 0..10 {
            publish(&mut q, &format!("m{i}"), 0);
        }
        let (a, _) = q.receive(4, Holder::Subscription(1), 0);
        let (b, _) = q.receive(10, Holder::Subscription(2), 0);
        assert_eq!(bodies(&a), ["m0", "m1", "m2", "m3"]);
        assert_eq!(b.len(), 6);
        assert_eq!(
            q.stats(),
            Stats {
                ready: 0,
                delayed: 0,
                in_flight: 10
            }
        );
        for d in a.iter().chain(&b) {
            q.ack(d.handle).expect("ack");
        }
        assert_eq!(q.stats(), Stats::default());
        assert!(matches!(
            q.ack(a[0].handle),
            Err(QueueError::UnknownHandle(_))
        ));
    }

    #[test]
    fn an_unacked_lease_is_redelivered_after_the_visibility_timeout() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 1000,
            ..QueueConfig::default()
        });
        publish(&mut q, "job", 0);
        let (first, _) = q.receive(1, Holder::Pull, 0);
        assert!(q.receive(1, Holder::Pull, 999).0.is_empty(), "still leased");
        assert_eq!(q.next_deadline_ms(), Some(1000));
        let (again, _) = q.receive(1, Holder::Pull, 1000);
        assert_eq!(bodies(&again), ["job"]);
        assert_eq!(again[0].message.deliveries, 2);
        assert_ne!(again[0].handle, first[0].handle);
        assert!(q.ack(first[0].handle).is_err(), "the old handle is dead");
        q.ack(again[0].handle).expect("ack");
    }

    #[test]
    fn nack_requeues_or_rejects_and_max_deliveries_dead_letters() {
        let mut q = queue(QueueConfig {
            max_deliveries: Some(2),
            dead_letter: Some("dlq".into()),
            ..QueueConfig::default()
        });
        publish(&mut q, "a", 0);
        publish(&mut q, "b", 0);
        let (d, _) = q.receive(2, Holder::Pull, 0);
        assert_eq!(q.nack(d[0].handle, true, 1).expect("nack"), None);
        let rejected = q.nack(d[1].handle, false, 1).expect("nack").expect("dead");
        assert_eq!(rejected.reason, DeadReason::Rejected);
        assert_eq!(rejected.target.as_deref(), Some("dlq"));
        let (d, _) = q.receive(1, Holder::Pull, 2);
        assert_eq!(bodies(&d), ["a"]);
        let dead = q.nack(d[0].handle, true, 3).expect("nack").expect("dead");
        assert_eq!(
            (dead.reason, dead.message.deliveries),
            (DeadReason::MaxDeliveries, 2)
        );
        assert_eq!(dead.queue, "q");
        assert_eq!(q.stats(), Stats::default());
    }

    #[test]
    fn requeued_messages_keep_their_place_in_publish_order() {
        let mut q = queue(QueueConfig::default());
        for s in ["a", "b", "c", "d"] {
            publish(&mut q, s, 0);
        }
        let (d, _) = q.receive(2, Holder::Pull, 0);
        assert_eq!(bodies(&d), ["a", "b"]);
        assert_eq!(q.nack(d[1].handle, true, 1).expect("nack"), None);
        publish(&mut q, "e", 1);
        assert_eq!(q.nack(d[0].handle, true, 1).expect("nack"), None);
        let (again, _) = q.receive(10, Holder::Pull, 2);
        assert_eq!(bodies(&again), ["a", "b", "c", "d", "e"]);
        assert_eq!(q.stats().ready, 0);
    }

    #[test]
    fn ended_leases_do_not_pile_up_in_the_timeout_queue() {
        let mut q = queue(QueueConfig::default());
        for round in 0..10_000 {
            publish(&mut q, "m", round);
            let (d, _) = q.receive(1, Holder::Subscription(1), round);
            q.ack(d[0].handle).expect("ack");
        }
        assert!(q.lease_deadlines.len() <= STALE_DEADLINES_MAX + 1);
        assert_eq!(q.stats(), Stats::default());
        // A timeout still fires for a lease given among thousands of acked ones.
        publish(&mut q, "slow", 20_000);
        let (slow, _) = q.receive(1, Holder::Pull, 20_000);
        for round in 0..5_000 {
            publish(&mut q, "m", 20_000 + round);
            let (d, _) = q.receive(1, Holder::Subscription(1), 20_000 + round);
            q.ack(d[0].handle).expect("ack");
        }
        let timeout = 20_000 + crate::queues::VISIBILITY_TIMEOUT_MS_DEFAULT as i64;
        assert_eq!(q.next_deadline_ms(), Some(timeout));
        let (again, _) = q.receive(1, Holder::Pull, timeout);
        assert_eq!(again[0].message.id, slow[0].message.id);
        assert_eq!(again[0].message.deliveries, 2);
    }

    #[test]
    fn a_gone_subscription_gives_its_leases_back_at_once() {
        let mut q = queue(QueueConfig::default());
        publish(&mut q, "a", 0);
        publish(&mut q, "b", 0);
        let (held, _) = q.receive(1, Holder::Subscription(7), 0);
        assert_eq!(q.held_by(Holder::Subscription(7)), 1);
        let (pulled, _) = q.receive(1, Holder::Pull, 0);
        assert!(q.release(Holder::Subscription(7), 5).is_empty());
        assert_eq!(q.held_by(Holder::Subscription(7)), 0);
        assert_eq!(q.stats().ready, 1);
        assert!(q.ack(held[0].handle).is_err());
        q.ack(pulled[0].handle).expect("pull leases stay");
        assert_eq!(bodies(&q.receive(5, Holder::Pull, 6).0), ["a"]);
    }

    #[test]
    fn higher_priorities_first_fifo_within_one_and_over_the_maximum_refused() {
        let mut q = queue(QueueConfig {
            max_priority: 9,
            ..QueueConfig::default()
        });
        for (s, p) in [
            ("low1", 1),
            ("high1", 9),
            ("mid", 5),
            ("high2", 9),
            ("low2", 1),
        ] {
            let opts = PublishOptions {
                priority: p,
                ..PublishOptions::default()
            };
            q.publish(body(s), opts, 0).expect("publish");
        }
        let (d, _) = q.receive(10, Holder::Pull, 0);
        assert_eq!(bodies(&d), ["high1", "high2", "mid", "low1", "low2"]);
        let over = PublishOptions {
            priority: 10,
            ..PublishOptions::default()
        };
        assert_eq!(
            q.publish(body("x"), over, 0),
            Err(QueueError::PriorityTooHigh { got: 10, max: 9 })
        );
    }

    #[test]
    fn delayed_messages_appear_on_time_and_ttl_expires_unread_ones() {
        let mut q = queue(QueueConfig {
            ttl_ms: Some(1000),
            dead_letter: Some("dlx".into()),
            ..QueueConfig::default()
        });
        let later = PublishOptions {
            deliver_at_ms: Some(500),
            ..PublishOptions::default()
        };
        q.publish(body("later"), later, 0).expect("publish");
        let short = PublishOptions {
            ttl_ms: Some(100),
            ..PublishOptions::default()
        };
        q.publish(body("short"), short, 0).expect("publish");
        assert_eq!(q.stats().delayed, 1);
        let (d, dead) = q.receive(10, Holder::Pull, 200);
        assert!(d.is_empty(), "{:?}", bodies(&d));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, DeadReason::Expired);
        assert_eq!(dead[0].message.body, body("short"));
        assert_eq!(bodies(&q.receive(10, Holder::Pull, 500).0), ["later"]);
        // The queue TTL counts from publish; an expired message is never delivered.
        publish(&mut q, "stale", 600);
        let (d, dead) = q.receive(10, Holder::Pull, 1600);
        assert!(d.is_empty());
        assert_eq!(dead[0].message.body, body("stale"));
    }

    #[test]
    fn fifo_groups_keep_order_one_in_flight_and_drop_duplicates() {
        let mut q = queue(QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        });
        let msg = |g: &str, dedup: &str| PublishOptions {
            group_id: Some(g.into()),
            dedup_id: Some(dedup.into()),
            ..PublishOptions::default()
        };
        for (s, g, d) in [
            ("a1", "a", "1"),
            ("b1", "b", "2"),
            ("a2", "a", "3"),
            ("b2", "b", "4"),
        ] {
            assert!(q.publish(body(s), msg(g, d), 0).expect("publish").is_some());
        }
        assert_eq!(q.publish(body("a1 again"), msg("a", "1"), 10), Ok(None));
        assert_eq!(q.duplicate_of("1", 10), Some(0), "the original's id");
        assert_eq!(q.duplicate_of("3", 10), Some(2));
        assert_eq!(q.duplicate_of("9", 10), None);
        assert_eq!(
            q.publish(body("x"), PublishOptions::default(), 0),
            Err(QueueError::GroupIdRequired)
        );
        let (first, _) = q.receive(1, Holder::Pull, 0);
        assert_eq!(bodies(&first), ["a1"]);
        // Group a is in flight: the next receive starts at group b, in order.
        let (second, _) = q.receive(10, Holder::Pull, 0);
        assert_eq!(bodies(&second), ["b1", "b2"], "a group's messages in order");
        assert!(q.receive(10, Holder::Pull, 0).0.is_empty());
        // a1 comes back before a2: order within the group holds.
        q.nack(first[0].handle, true, 1).expect("nack");
        // Group b stays busy until both its messages are settled.
        q.ack(second[0].handle).expect("ack");
        let (next, _) = q.receive(10, Holder::Pull, 2);
        assert_eq!(bodies(&next), ["a1", "a2"]);
        q.ack(second[1].handle).expect("ack");
        assert!(
            q.receive(10, Holder::Pull, 2).0.is_empty(),
            "b is done, a in flight"
        );
        // The dedup window ends after 5 minutes.
        assert_eq!(q.duplicate_of("1", DEDUP_WINDOW_MS + 1), None);
        assert!(q
            .publish(body("a1 late"), msg("a", "1"), DEDUP_WINDOW_MS + 1)
            .expect("publish")
            .is_some());
    }

    #[test]
    fn an_unpublished_message_is_gone_and_its_dedup_id_free_again() {
        let mut q = queue(QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        });
        let opts = PublishOptions {
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            ..PublishOptions::default()
        };
        let id = q
            .publish(body("first"), opts.clone(), 0)
            .expect("publish")
            .expect("accepted");
        assert!(q.unpublish(id, Some("d")).is_some());
        assert_eq!(q.stats(), Stats::default());
        let again = q.publish(body("retry"), opts, 1).expect("publish");
        assert!(again.is_some(), "the retry is not a duplicate");
        assert_eq!(bodies(&q.receive(10, Holder::Pull, 1).0), ["retry"]);
    }

    #[test]
    fn ack_all_settles_each_lease_once_and_names_the_unknown_handles() {
        let mut q = queue(QueueConfig::default());
        for i in 0..6 {
            publish(&mut q, &format!("m{i}"), 0);
        }
        let (a, _) = q.receive(3, Holder::Subscription(1), 0);
        let (b, _) = q.receive(3, Holder::Subscription(2), 0);
        let handles = [
            a[0].handle,
            b[0].handle,
            a[1].handle,
            a[0].handle,
            999,
            b[1].handle,
        ];
        let (mut settled, mut unknown) = (Vec::new(), Vec::new());
        q.ack_all(&handles, |id| settled.push(id), |h| unknown.push(h));
        assert_eq!(settled, [0, 3, 1, 4]);
        assert_eq!(unknown, [a[0].handle, 999]);
        assert_eq!(q.held_by(Holder::Subscription(1)), 1);
        assert_eq!(q.held_by(Holder::Subscription(2)), 1);
        assert_eq!(q.stats().in_flight, 2);
    }

    #[test]
    fn change_visibility_extends_a_lease_and_its_handle_stays_valid() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 1000,
            ..QueueConfig::default()
        });
        publish(&mut q, "job", 0);
        let (d, _) = q.receive(1, Holder::Pull, 0);
        q.change_visibility(d[0].handle, 5000, 500).expect("change");
        assert_eq!(
            q.next_deadline_ms(),
            Some(1000),
            "the stale entry, then dropped"
        );
        assert!(
            q.receive(1, Holder::Pull, 1000).0.is_empty(),
            "still leased"
        );
        assert_eq!(q.next_deadline_ms(), Some(5500));
        assert!(q.receive(1, Holder::Pull, 5499).0.is_empty());
        q.ack(d[0].handle).expect("the handle is still good");
        assert_eq!(q.stats(), Stats::default());
        assert_eq!(q.next_deadline_ms(), None, "nothing left to time out");
    }

    #[test]
    fn change_visibility_to_zero_makes_the_message_visible_at_once() {
        let mut q = queue(QueueConfig::default());
        publish(&mut q, "a", 0);
        publish(&mut q, "b", 0);
        let (d, _) = q.receive(2, Holder::Pull, 0);
        q.change_visibility(d[1].handle, 0, 10).expect("change");
        let (again, _) = q.receive(5, Holder::Pull, 10);
        assert_eq!(bodies(&again), ["b"]);
        assert_eq!(again[0].message.deliveries, 2);
        assert_eq!(
            q.ack(d[1].handle),
            Err(QueueError::UnknownHandle(d[1].handle)),
            "the old lease ended"
        );
        q.ack(d[0].handle).expect("the other lease is untouched");
    }

    #[test]
    fn a_shortened_lease_times_out_before_older_ones() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 1000,
            ..QueueConfig::default()
        });
        publish(&mut q, "first", 0);
        publish(&mut q, "second", 0);
        let (a, _) = q.receive(1, Holder::Pull, 0);
        let (b, _) = q.receive(1, Holder::Pull, 100);
        q.change_visibility(b[0].handle, 50, 200).expect("change");
        assert_eq!(q.next_deadline_ms(), Some(250));
        assert_eq!(bodies(&q.receive(5, Holder::Pull, 250).0), ["second"]);
        assert_eq!(q.stats().in_flight, 2, "first is still leased");
        q.ack(a[0].handle).expect("ack");
    }

    #[test]
    fn change_visibility_refuses_unknown_handles_and_too_long_timeouts() {
        let mut q = queue(QueueConfig::default());
        publish(&mut q, "a", 0);
        let (d, _) = q.receive(1, Holder::Pull, 0);
        assert_eq!(
            q.change_visibility(999, 10, 0),
            Err(QueueError::UnknownHandle(999))
        );
        let over = VISIBILITY_TIMEOUT_MS_MAX + 1;
        assert_eq!(
            q.change_visibility(d[0].handle, over, 0),
            Err(QueueError::VisibilityTimeoutTooLong {
                got: over,
                max: VISIBILITY_TIMEOUT_MS_MAX
            })
        );
        q.ack(d[0].handle).expect("unchanged lease");
    }

    fn bounded(max_length: Option<u64>, max_bytes: Option<u64>, overflow: Overflow) -> Queue {
        queue(QueueConfig {
            max_length,
            max_bytes,
            overflow,
            dead_letter: Some("dlq".into()),
            ..QueueConfig::default()
        })
    }

    #[test]
    fn reject_publish_refuses_past_max_length_and_leased_messages_do_not_count() {
        let mut q = bounded(Some(2), None, Overflow::RejectPublish);
        publish(&mut q, "a", 0);
        publish(&mut q, "b", 0);
        let refused = q.publish(body("c"), PublishOptions::default(), 0);
        assert!(
            matches!(&refused, Err(QueueError::QueueFull { queue, .. }) if queue == "q"),
            "{refused:?}"
        );
        let (d, _) = q.receive(1, Holder::Pull, 0);
        publish(&mut q, "c", 1);
        assert_eq!(q.queued(), 2);
        assert!(q.drain_overflow().is_empty());
        q.ack(d[0].handle).expect("ack");
        assert_eq!(bodies(&q.receive(5, Holder::Pull, 2).0), ["b", "c"]);
    }

    #[test]
    fn reject_publish_refuses_past_max_bytes() {
        let mut q = bounded(None, Some(10), Overflow::RejectPublish);
        q.publish(body("12345678"), PublishOptions::default(), 0)
            .expect("fits");
        assert_eq!(q.queued_bytes(), 8);
        let err = q.publish(body("123"), PublishOptions::default(), 0);
        assert!(matches!(err, Err(QueueError::QueueFull { .. })));
        q.publish(body("12"), PublishOptions::default(), 0)
            .expect("exactly fits");
        assert_eq!(q.queued_bytes(), 10);
        q.receive(1, Holder::Pull, 0);
        assert_eq!(q.queued_bytes(), 2, "leased bodies do not count");
    }

    #[test]
    fn drop_head_dead_letters_the_oldest_until_the_new_one_fits() {
        let mut q = bounded(Some(3), Some(100), Overflow::DropHead);
        for s in ["a", "b", "c"] {
            publish(&mut q, s, 0);
        }
        publish(&mut q, "d", 1);
        let dead = q.drain_overflow();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message.body, body("a"));
        assert_eq!(dead[0].reason, DeadReason::MaxLength);
        assert_eq!(dead[0].target.as_deref(), Some("dlq"));
        // b, c, d hold 3 bytes: 98 more push out only b, as little as fits it.
        let big = "x".repeat(98);
        q.publish(body(&big), PublishOptions::default(), 2)
            .expect("fits after dropping");
        let dead: Vec<Bytes> = q
            .drain_overflow()
            .into_iter()
            .map(|d| d.message.body)
            .collect();
        assert_eq!(dead, [body("b")]);
        assert_eq!((q.queued(), q.queued_bytes()), (3, 100));
        // No emptying fits a body over max_bytes: refused, nothing dropped.
        let huge = "y".repeat(101);
        let err = q.publish(body(&huge), PublishOptions::default(), 3);
        assert!(matches!(err, Err(QueueError::QueueFull { .. })));
        assert!(q.drain_overflow().is_empty());
        assert_eq!(q.queued(), 3);
    }

    #[test]
    fn drop_head_takes_the_oldest_over_every_priority_and_skips_leased_ones() {
        let mut q = queue(QueueConfig {
            max_priority: 5,
            max_length: Some(2),
            overflow: Overflow::DropHead,
            ..QueueConfig::default()
        });
        let at = |p| PublishOptions {
            priority: p,
            ..PublishOptions::default()
        };
        q.publish(body("leased"), at(5), 0).expect("publish");
        let (d, _) = q.receive(1, Holder::Pull, 0);
        q.publish(body("low-old"), at(0), 0).expect("publish");
        q.publish(body("high-new"), at(5), 0).expect("publish");
        q.publish(body("newest"), at(1), 0).expect("publish");
        let dead = q.drain_overflow();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message.body, body("low-old"));
        assert_eq!(dead[0].target, None, "no target: dropped");
        q.ack(d[0].handle).expect("the leased one stayed leased");
        assert_eq!(
            bodies(&q.receive(5, Holder::Pull, 1).0),
            ["high-new", "newest"]
        );
    }

    #[test]
    fn a_duplicate_is_dropped_before_the_bound_applies() {
        let mut q = queue(QueueConfig {
            fifo: true,
            max_length: Some(1),
            overflow: Overflow::RejectPublish,
            ..QueueConfig::default()
        });
        let opts = |d: &str| PublishOptions {
            group_id: Some("g".into()),
            dedup_id: Some(d.into()),
            ..PublishOptions::default()
        };
        q.publish(body("a"), opts("1"), 0).expect("publish");
        assert_eq!(q.publish(body("a"), opts("1"), 1), Ok(None));
        let full = q.publish(body("b"), opts("2"), 1);
        assert!(matches!(full, Err(QueueError::QueueFull { .. })));
        let (d, _) = q.receive(1, Holder::Pull, 2);
        q.ack(d[0].handle).expect("ack");
        // The refused one's dedup id was not kept: its retry is stored.
        assert!(q
            .publish(body("b"), opts("2"), 3)
            .expect("publish")
            .is_some());
    }

    #[test]
    fn the_dedup_set_stays_within_its_window() {
        let mut q = queue(QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        });
        let step = 1_000;
        let per_window = (DEDUP_WINDOW_MS / step) as usize;
        for i in 0..3 * per_window as i64 {
            let opts = PublishOptions {
                group_id: Some("g".into()),
                dedup_id: Some(format!("d{i}")),
                ..PublishOptions::default()
            };
            q.publish(body("m"), opts, i * step).expect("publish");
            let (d, _) = q.receive(1, Holder::Pull, i * step);
            q.ack(d[0].handle).expect("ack");
            assert!(q.dedup.len() <= per_window + 1, "{} ids", q.dedup.len());
            assert!(q.dedup_order.len() <= per_window + 1);
        }
        // With nobody publishing, time alone empties it.
        q.tick(3 * per_window as i64 * step + DEDUP_WINDOW_MS);
        assert!(q.dedup.is_empty() && q.dedup_order.is_empty());
    }

    #[test]
    fn a_dedup_id_forgotten_and_seen_again_keeps_its_new_window() {
        let mut q = queue(QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        });
        let opts = PublishOptions {
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            ..PublishOptions::default()
        };
        let id = q
            .publish(body("a"), opts.clone(), 0)
            .expect("ok")
            .expect("id");
        q.unpublish(id, Some("d"));
        q.publish(body("a"), opts.clone(), 1000)
            .expect("ok")
            .expect("id");
        // The first window's end must not forget the second sighting.
        q.tick(DEDUP_WINDOW_MS + 500);
        assert_eq!(q.publish(body("a"), opts, DEDUP_WINDOW_MS + 500), Ok(None));
    }

    #[test]
    fn dead_letter_origins_are_forgotten_after_their_window() {
        let mut q = queue(QueueConfig::default());
        let step = 10_000;
        let per_window = (ORIGIN_WINDOW_MS / step) as usize;
        for i in 0..3 * per_window as i64 {
            let now = i * step;
            q.remember_origin(format!("src/{i}"), now, now);
            assert!(q.knows_origin(&format!("src/{i}")));
            assert!(q.origins.len() <= per_window + 1, "{}", q.origins.len());
        }
        let last = (3 * per_window as i64 - 1) * step;
        assert!(!q.knows_origin("src/0"), "out of its window");
        q.tick(last + ORIGIN_WINDOW_MS);
        assert_eq!(q.origins.len(), 0, "time alone empties it");
        // Replayed at restart with their old times: only those still in the window.
        q.remember_origin("old".into(), 0, ORIGIN_WINDOW_MS);
        q.remember_origin("recent".into(), 10, ORIGIN_WINDOW_MS);
        assert!(!q.knows_origin("old") && q.knows_origin("recent"));
    }

    const MIB: usize = 1 << 20;

    /// Publishes a body of `size` bytes starting with `tag` and journals it, as the
    /// owner does.
    fn publish_sized(q: &mut Queue, tag: &str, size: usize, opts: PublishOptions) -> u64 {
        let mut b = tag.as_bytes().to_vec();
        b.resize(size, b'.');
        let id = q
            .publish(Bytes::from(b), opts, 0)
            .expect("publish")
            .expect("id");
        q.journaled(&[id]);
        id
    }

    fn tags(d: &[Delivery]) -> Vec<String> {
        bodies(d)
            .into_iter()
            .map(|b| b.trim_end_matches('.').to_string())
            .collect()
    }

    #[test]
    fn a_backlog_past_the_read_ahead_keeps_only_metadata_and_is_delivered_in_order() {
        let mut q = queue(QueueConfig::default());
        let n = READ_AHEAD_BYTES as usize / MIB + 4;
        let ids: Vec<u64> = (0..n)
            .map(|i| publish_sized(&mut q, &format!("m{i}"), MIB, PublishOptions::default()))
            .collect();
        assert_eq!(
            q.resident(),
            (READ_AHEAD_BYTES, 4),
            "the newest four on disk only"
        );
        assert_eq!(
            q.queued_bytes(),
            (n * MIB) as u64,
            "bounds count every body"
        );
        let (first, _) = q.receive(n, Holder::Pull, 0);
        let want: Vec<String> = (0..n - 4).map(|i| format!("m{i}")).collect();
        assert_eq!(tags(&first), want, "stops at the first body not loaded");
        assert!(q.start_loading(), "a receive waits for a body");
        assert!(q.waits_for_load());
        assert!(!q.wants_load(), "one loader at a time");
        let to_load = q.to_load();
        assert_eq!(to_load, ids[n - 4..], "the head first, as much as fits");
        assert!(q.receive(n, Holder::Pull, 0).0.is_empty(), "not loaded yet");
        for (i, id) in to_load.iter().enumerate() {
            let mut b = format!("m{}", n - 4 + i).into_bytes();
            b.resize(MIB, b'.');
            q.fill(*id, Bytes::from(b));
        }
        q.stop_loading();
        assert_eq!(q.resident(), (4 * MIB as u64, 0));
        let (rest, _) = q.receive(n, Holder::Pull, 0);
        let want: Vec<String> = (n - 4..n).map(|i| format!("m{i}")).collect();
        assert_eq!(tags(&rest), want);
        assert_eq!(q.resident(), (0, 0));
        assert!(!q.wants_load());
    }

    #[test]
    fn while_consumers_keep_up_bodies_never_leave_memory() {
        let mut q = queue(QueueConfig::default());
        for i in 0..4 * READ_AHEAD_BYTES as usize / MIB {
            publish_sized(&mut q, &format!("m{i}"), MIB, PublishOptions::default());
            let (d, _) = q.receive(1, Holder::Pull, 0);
            assert_eq!(tags(&d), [format!("m{i}")]);
            q.ack(d[0].handle).expect("ack");
            assert_eq!(q.resident(), (0, 0));
            assert!(!q.wants_load());
        }
    }

    #[test]
    fn an_unloaded_high_priority_message_is_not_overtaken_by_loaded_lower_ones() {
        let mut q = queue(QueueConfig {
            max_priority: 9,
            ..QueueConfig::default()
        });
        let n = READ_AHEAD_BYTES as usize / MIB;
        for i in 0..n {
            publish_sized(&mut q, &format!("low{i}"), MIB, PublishOptions::default());
        }
        let high = PublishOptions {
            priority: 9,
            ..PublishOptions::default()
        };
        let urgent = publish_sized(&mut q, "urgent", MIB, high);
        assert_eq!(q.resident().1, 1, "over the read-ahead: journal only");
        assert!(
            q.receive(5, Holder::Pull, 0).0.is_empty(),
            "urgent goes first"
        );
        assert_eq!(q.to_load(), [urgent]);
        let mut b = b"urgent".to_vec();
        b.resize(MIB, b'.');
        q.fill(urgent, Bytes::from(b));
        let (d, _) = q.receive(2, Holder::Pull, 0);
        assert_eq!(tags(&d), ["urgent", "low0"]);
    }

    #[test]
    fn an_unloaded_dead_letter_says_its_body_is_on_disk() {
        let mut q = queue(QueueConfig {
            ttl_ms: Some(10),
            ..QueueConfig::default()
        });
        let n = READ_AHEAD_BYTES as usize / MIB + 1;
        for i in 0..n {
            publish_sized(&mut q, &format!("m{i}"), MIB, PublishOptions::default());
        }
        let dead = q.tick(10);
        assert_eq!(dead.len(), n);
        let on_disk: Vec<bool> = dead.iter().map(|d| d.body_on_disk).collect();
        assert_eq!(on_disk.iter().filter(|d| **d).count(), 1);
        assert!(on_disk[n - 1] && dead[n - 1].message.body.is_empty());
        assert_eq!(q.resident(), (0, 0));
    }

    #[test]
    fn purge_drops_ready_and_delayed_but_not_leased() {
        let mut q = queue(QueueConfig::default());
        publish(&mut q, "a", 0);
        publish(&mut q, "b", 0);
        let delayed = PublishOptions {
            deliver_at_ms: Some(100),
            ..PublishOptions::default()
        };
        q.publish(body("c"), delayed, 0).expect("publish");
        let (d, _) = q.receive(1, Holder::Pull, 0);
        assert_eq!(q.purge().len(), 2);
        assert_eq!(
            q.stats(),
            Stats {
                ready: 0,
                delayed: 0,
                in_flight: 1
            }
        );
        q.ack(d[0].handle).expect("ack");
    }

    #[test]
    fn queue_delay_applies_without_a_message_delay() {
        let mut q = queue(QueueConfig {
            delay_ms: 1000,
            ..QueueConfig::default()
        });
        publish(&mut q, "queue-delayed", 0);
        let now = PublishOptions {
            deliver_at_ms: Some(0),
            ..PublishOptions::default()
        };
        q.publish(body("own-delay-0"), now, 0).expect("publish");
        assert_eq!(
            q.stats().delayed,
            1,
            "only the one without a delay of its own"
        );
        assert_eq!(bodies(&q.receive(5, Holder::Pull, 0).0), ["own-delay-0"]);
        assert!(q.receive(5, Holder::Pull, 999).0.is_empty(), "not yet");
        assert_eq!(
            bodies(&q.receive(5, Holder::Pull, 1000).0),
            ["queue-delayed"]
        );
    }

    #[test]
    fn expired_messages_skip_the_dead_letter_target_when_asked() {
        let config = |on_expiry| QueueConfig {
            ttl_ms: Some(100),
            max_deliveries: Some(1),
            dead_letter: Some("dlq".into()),
            dead_letter_on_expiry: on_expiry,
            ..QueueConfig::default()
        };
        let mut kept = queue(config(true));
        publish(&mut kept, "old", 0);
        let dead = kept.tick(100);
        assert_eq!(dead[0].target.as_deref(), Some("dlq"), "today's behaviour");

        let mut sqs = queue(config(false));
        publish(&mut sqs, "tried", 0);
        let (d, _) = sqs.receive(1, Holder::Pull, 0);
        publish(&mut sqs, "unread", 0);
        let dead = sqs.tick(100);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, DeadReason::Expired);
        assert_eq!(dead[0].target, None, "an expired message is dropped");
        let over = sqs.nack(d[0].handle, true, 100).expect("lease");
        let over = over.expect("past max deliveries");
        assert_eq!(over.reason, DeadReason::MaxDeliveries);
        assert_eq!(over.target.as_deref(), Some("dlq"), "still dead-lettered");
    }

    fn receive_for(q: &mut Queue, lease_ms: Option<u64>, now: i64) -> Vec<Delivery> {
        let mut out = Vec::new();
        q.receive_leasing(1, Holder::Pull, lease_ms, now, |handle, m| {
            out.push(Delivery {
                handle,
                message: m.clone(),
            })
        });
        out
    }

    #[test]
    fn a_shorter_receive_lease_comes_back_before_older_default_ones() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 1000,
            ..QueueConfig::default()
        });
        for tag in ["default", "short", "long", "later-default"] {
            publish(&mut q, tag, 0);
        }
        let default = receive_for(&mut q, None, 0);
        let short = receive_for(&mut q, Some(50), 100);
        let long = receive_for(&mut q, Some(5000), 100);
        let later = receive_for(&mut q, None, 120);
        assert_eq!(bodies(&later), ["later-default"]);
        assert_eq!(q.next_deadline_ms(), Some(150), "the short lease first");
        // What comes back is acked at once, so that only first leases time out.
        let back_at = |q: &mut Queue, now| {
            let (d, _) = q.receive(5, Holder::Pull, now);
            for delivery in &d {
                q.ack(delivery.handle).expect("ack");
            }
            bodies(&d)
        };
        assert_eq!(back_at(&mut q, 150), ["short"]);
        assert_eq!(q.stats().in_flight, 3, "the others are still leased");
        assert_eq!(q.next_deadline_ms(), Some(1000));
        assert_eq!(back_at(&mut q, 1000), ["default"]);
        assert_eq!(back_at(&mut q, 1120), ["later-default"]);
        assert!(back_at(&mut q, 5099).is_empty(), "long holds");
        assert_eq!(back_at(&mut q, 5100), ["long"]);
        for d in [default, short, long, later] {
            assert!(q.ack(d[0].handle).is_err(), "every first lease ended");
        }
    }

    #[test]
    fn leased_id_names_the_leased_message() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 100,
            ..QueueConfig::default()
        });
        publish(&mut q, "a", 0);
        let b = publish(&mut q, "b", 0);
        let (d, _) = q.receive(2, Holder::Pull, 0);
        assert_eq!(q.leased_id(d[1].handle), Some(b));
        assert_eq!(q.leased_id(d[0].handle), Some(d[0].message.id));
        assert_eq!(q.leased_id(999), None, "no such lease");
        q.ack(d[1].handle).expect("ack");
        assert_eq!(q.leased_id(d[1].handle), None, "settled");
        let (again, _) = q.receive(2, Holder::Pull, 100);
        assert_eq!(q.leased_id(d[0].handle), None, "timed out");
        assert_eq!(q.leased_id(again[0].handle), Some(d[0].message.id));
    }

    #[test]
    fn reconfigured_visibility_keeps_deadlines_in_order() {
        let mut q = queue(QueueConfig {
            visibility_timeout_ms: 1000,
            ..QueueConfig::default()
        });
        for tag in ["old-long", "new-short"] {
            publish(&mut q, tag, 0);
        }
        let old = q.receive(1, Holder::Pull, 0).0;
        q.reconfigure(QueueConfig {
            visibility_timeout_ms: 100,
            ..q.config().clone()
        });
        let new = q.receive(1, Holder::Pull, 10).0;
        assert_eq!(
            q.next_deadline_ms(),
            Some(110),
            "the new, shorter lease first"
        );
        let again = q.receive(5, Holder::Pull, 110).0;
        assert_eq!(bodies(&again), ["new-short"]);
        q.ack(again[0].handle).expect("ack");
        assert_eq!(q.stats().in_flight, 1, "the old lease holds");
        assert!(q.ack(new[0].handle).is_err(), "timed out");
        let (back, _) = q.receive(5, Holder::Pull, 1000);
        assert_eq!(bodies(&back), ["old-long"]);
        assert!(
            q.ack(old[0].handle).is_err(),
            "timed out at its own deadline"
        );
    }
}
