//! A full disk and failing I/O, against the real broker with real clients.
//!
//! Full disk: the broker's data directory is a small filesystem the test mounts itself
//! (root): a tmpfs (`size=`; it takes O_DIRECT since Linux 6.6), and an ext4 image on a
//! loop device, where space runs out in block groups, journal and extents as on a real
//! disk; filled with a filler file until ENOSPC. Each client then gets its protocol's storage error, what was acknowledged
//! stays readable, writes resume by themselves once the filler is removed (no
//! restart), and a restart afterwards finds every acknowledged message once, in order,
//! with no segment or journal repaired.
//!
//! I/O errors: the debug-only `PEREGRINE_FAULT_INJECT` trigger file makes every
//! fdatasync (or write) of one partition's or queue's files fail with EIO; the log must
//! acknowledge nothing it carried and stay read-only until a restart.

mod common;
use amq_protocol::protocol::{basic, AMQPClass};
use common::amqp_raw::RawAmqp;
use common::{unique, Broker};
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine::client::Client;
use peregrine::native::messages::{
    Acks, BindingSpec, ErrorCode, PublishSpec, QueueSpec, TopicSpec,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long writes may take to resume once space is freed (the log retries at least
/// every 500 ms).
const RESUME_WITHIN: Duration = Duration::from_secs(10);

/// Which filesystem a `SmallFs` is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tmpfs,
    /// ext4 on a loop device, made with no blocks reserved for root (the broker runs as
    /// root here: reserved blocks would let it write past "full").
    Ext4,
}

/// A small filesystem of a fixed size mounted on a fresh directory; unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
    /// Holds the ext4 image, outside the mount.
    _image: Option<tempfile::TempDir>,
    fillers: Vec<PathBuf>,
}

impl SmallFs {
    /// Mounts `size_mb` MiB; `None` (with the reason printed) where mounts are refused.
    fn mount(kind: Kind, size_mb: u32) -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut image = None;
        let out = match kind {
            Kind::Tmpfs => Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m")])
                .arg("tmpfs")
                .arg(dir.path())
                .output()
                .expect("run mount"),
            Kind::Ext4 => {
                let holder = tempfile::tempdir().expect("temp dir");
                let file = holder.path().join("fs.img");
                std::fs::File::create(&file)
                    .and_then(|f| f.set_len(u64::from(size_mb) << 20))
                    .expect("image file");
                let made = Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0"])
                    .arg(&file)
                    .output();
                match made {
                    Ok(out) if out.status.success() => {}
                    other => {
                        eprintln!("SKIPPED: mkfs.ext4 failed here: {other:?}");
                        return None;
                    }
                }
                let out = Command::new("mount")
                    .args(["-t", "ext4", "-o", "loop"])
                    .arg(&file)
                    .arg(dir.path())
                    .output()
                    .expect("run mount");
                image = Some(holder);
                out
            }
        };
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a small {kind:?} here ({}); disk-full tests need root \
                 and a kernel that allows mounts",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallFs {
            dir,
            _image: image,
            fillers: Vec::new(),
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes filler files until the filesystem refuses more (ENOSPC), 1 MiB then 4 KiB
    /// at a time, so that not even a block is left.
    fn fill(&mut self) {
        for (i, chunk) in [1usize << 20, 4096].into_iter().enumerate() {
            let path = self
                .path()
                .join(format!("filler-{}-{i}", self.fillers.len()));
            let mut file = std::fs::File::create(&path).expect("create filler");
            self.fillers.push(path.clone());
            let block = vec![0x5au8; chunk];
            // Bounded: the filesystem is `size_mb` MiB at most.
            loop {
                match file.write_all(&block).and_then(|()| file.sync_all()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
    }

    /// Appends to `file` (the broker's log, on this filesystem) until it is refused, so
    /// that the broker's next log line finds no space either.
    fn fill_file(&self, file: &Path) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(file)
            .expect("open for filling");
        let line = [b'.'; 63].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        // Bounded: at most the last page of the file is left.
        loop {
            match f.write_all(&line) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", file.display()),
            }
        }
    }

    /// Removes the filler files.
    fn free(&mut self) {
        for path in self.fillers.drain(..) {
            std::fs::remove_file(&path).expect("remove filler");
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn kafka_config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "20000");
    c
}

/// Keeps the outcome of each delivery report, in order.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<Result<i64, RDKafkaErrorCode>>>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        };
        self.0.lock().expect("lock").push(outcome);
    }
}

/// A producer that reports each message's first answer (no retries, no idempotence),
/// so a storage error reaches the test instead of being retried away.
fn producer(b: &Broker) -> (BaseProducer<Reports>, Reports) {
    let reports = Reports::default();
    let p = kafka_config(b)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("retries", "0")
        .set("enable.idempotence", "false")
        .create_with_context(reports.clone())
        .expect("create producer");
    (p, reports)
}

/// Produces one message and waits for its delivery report: its offset, or the error.
fn produce_one(
    (p, reports): &(BaseProducer<Reports>, Reports),
    topic: &str,
    value: &[u8],
) -> Result<i64, RDKafkaErrorCode> {
    let before = reports.0.lock().expect("lock").len();
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(value))
        .map_err(|(e, _)| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))?;
    p.flush(TIMEOUT).expect("flush");
    let got = reports.0.lock().expect("lock");
    assert_eq!(got.len(), before + 1, "one delivery report per message");
    got[before]
}

/// Produces until a produce succeeds; panics after `RESUME_WITHIN`.
fn produce_until_accepted(p: &(BaseProducer<Reports>, Reports), topic: &str, value: &[u8]) -> i64 {
    let deadline = Instant::now() + RESUME_WITHIN;
    loop {
        match produce_one(p, topic, value) {
            Ok(offset) => return offset,
            Err(RDKafkaErrorCode::KafkaStorageError) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("produce after space was freed: {e:?}"),
        }
    }
}

/// Every message of partition 0 of `topic` from the start: (offset, value).
fn read_all(b: &Broker, topic: &str, expect_at_least: usize) -> Vec<(i64, Vec<u8>)> {
    let c: BaseConsumer = kafka_config(b)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut quiet_since = Instant::now();
    // Until the expected count is reached and nothing more came for a second.
    while Instant::now() < deadline
        && (got.len() < expect_at_least || quiet_since.elapsed() < Duration::from_secs(1))
    {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got.push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                quiet_since = Instant::now();
            }
            // librdkafka reports passing trouble (a connection it re-establishes)
            // here too; what matters is what was read, checked by the caller.
            Some(Err(e)) => eprintln!("consumer error (retried): {e}"),
            None => {}
        }
    }
    got
}

/// A message value that names its number, padded to `len` bytes.
fn value(tag: &str, i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{tag}-{i:06}-").into_bytes();
    v.resize(len, b'.');
    v
}

/// Every acknowledged value appears exactly once, and in the order acknowledged.
fn assert_acked_once_in_order(read: &[(i64, Vec<u8>)], acked: &[Vec<u8>]) {
    let mut at = 0usize;
    for want in acked {
        let found = read[at..].iter().position(|(_, v)| v == want);
        let Some(found) = found else {
            panic!(
                "acknowledged message {:?} missing or out of order",
                String::from_utf8_lossy(&want[..16.min(want.len())])
            );
        };
        at += found + 1;
    }
    for want in acked {
        let copies = read.iter().filter(|(_, v)| v == want).count();
        assert_eq!(copies, 1, "acknowledged message stored {copies} times");
    }
}

/// Bounds how long the client waits for an answer (bootstrap connection, and the
/// queue owner's when `queue` is given): a broker that stopped answering fails the
/// test instead of hanging it.
fn with_timeouts(c: &mut Client, queue: Option<&str>) {
    c.connection(None)
        .and_then(|conn| conn.set_read_timeout(Some(TIMEOUT)))
        .expect("bootstrap timeout");
    if let Some(queue) = queue {
        c.queue_connection(queue)
            .and_then(|conn| conn.set_read_timeout(Some(TIMEOUT)))
            .expect("queue connection timeout");
    }
}

fn create_topic(c: &mut Client, name: &str, segment_bytes: u64) -> Result<(), ErrorCode> {
    c.create_topic(TopicSpec {
        name: name.into(),
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: Some(segment_bytes),
    })
    .map_err(|e| e.code().unwrap_or(ErrorCode::Internal))
}

/// Lines of the broker's log that say recovery found something damaged.
fn repairs(b: &Broker) -> Vec<String> {
    b.log()
        .lines()
        .filter(|l| l.contains("torn") || l.contains("corrupt") || l.contains("rebuil"))
        .map(str::to_string)
        .collect()
}

#[test]
fn kafka_produce_commit_and_create_on_a_full_disk_get_storage_errors_and_resume_when_space_is_freed(
) {
    kafka_on_a_full_disk(Kind::Tmpfs);
}

#[test]
fn kafka_on_a_full_ext4_disk_gets_storage_errors_and_resumes_when_space_is_freed() {
    kafka_on_a_full_disk(Kind::Ext4);
}

fn kafka_on_a_full_disk(kind: Kind) {
    let Some(mut fs) = SmallFs::mount(kind, 192) else {
        return;
    };
    let data = fs.path().join("data");
    let mut b = Broker::start_in(&data, &[]);
    let topic = unique("full");
    let mut admin = b.client();
    with_timeouts(&mut admin, None);
    create_topic(&mut admin, &topic, 1 << 20).expect("create topic");
    let p = producer(&b);
    let mut acked = Vec::new();
    for i in 0..20 {
        let v = value("before", i, 100);
        produce_one(&p, &topic, &v).expect("produce before the disk is full");
        acked.push(v);
    }

    fs.fill();
    fs.fill_file(&data.join("broker.log"));
    // The active segment's preallocated space still takes appends; the next segment
    // (1 MiB each) cannot be created. Bounded: 400 × 8 KiB is three segments.
    let mut refused = None;
    for i in 0..400 {
        let v = value("filling", i, 8 << 10);
        match produce_one(&p, &topic, &v) {
            Ok(_) => acked.push(v),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some(RDKafkaErrorCode::KafkaStorageError),
        "a produce on a full disk gets KAFKA_STORAGE_ERROR"
    );
    // Sealing the full segment trimmed its unused preallocation: take that space too.
    fs.fill();
    fs.fill_file(&data.join("broker.log"));
    // Refused again while the disk stays full, also with acks=1.
    assert_eq!(
        produce_one(&p, &topic, &value("still-full", 0, 100)),
        Err(RDKafkaErrorCode::KafkaStorageError)
    );
    // What was acknowledged is still served.
    let read = read_all(&b, &topic, acked.len());
    assert_acked_once_in_order(&read, &acked);

    // A group commit needs the group's offsets log, which has never been written on
    // this fresh broker: its first segment cannot be allocated.
    let group = unique("full-group");
    let consumer: BaseConsumer = kafka_config(&b)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(5))
        .expect("offset");
    let refused = consumer.commit(&commit, CommitMode::Sync);
    assert!(
        matches!(
            &refused,
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::KafkaStorageError
            ))
        ),
        "a commit on a full disk gets KAFKA_STORAGE_ERROR: {refused:?}"
    );
    // A topic cannot be declared: the catalog cannot be written.
    let declared = create_topic(&mut admin, &unique("full-new"), 1 << 20);
    assert_eq!(declared, Err(ErrorCode::StorageFull));

    fs.free();
    let v = value("after", 0, 100);
    produce_until_accepted(&p, &topic, &v);
    acked.push(v);
    for i in 1..20 {
        let v = value("after", i, 100);
        produce_one(&p, &topic, &v).expect("produce once space is back");
        acked.push(v);
    }
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("commit once space is back");
    create_topic(&mut admin, &unique("full-new"), 1 << 20).expect("declare once space is back");
    drop(consumer);
    drop(p);

    assert!(b.stop(), "clean stop");
    b.restart();
    let read = read_all(&b, &topic, acked.len());
    assert_acked_once_in_order(&read, &acked);
    assert!(
        repairs(&b).is_empty(),
        "recovery repaired: {:?}",
        repairs(&b)
    );
    let consumer: BaseConsumer = kafka_config(&b)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut ask = TopicPartitionList::new();
    ask.add_partition(&topic, 0);
    let committed = consumer.committed_offsets(ask, TIMEOUT).expect("committed");
    let offset = committed.find_partition(&topic, 0).map(|e| e.offset());
    assert_eq!(
        offset,
        Some(Offset::Offset(5)),
        "the commit made after space came back"
    );
}

fn durable() -> PublishSpec {
    PublishSpec {
        durable: true,
        ..PublishSpec::default()
    }
}

fn code_of<T: std::fmt::Debug>(r: Result<T, peregrine::client::ClientError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected a storage error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("no error code: {e}")),
    }
}

/// One SQS JSON-protocol call over a fresh HTTP connection: (status, body).
fn sqs(http_addr: &str, action: &str, body: &serde_json::Value) -> (u16, String) {
    use std::io::Read;
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: sqs.test\r\nConnection: close\r\n\
         Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AmazonSQS.{action}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = std::net::TcpStream::connect(http_addr).expect("connect HTTP");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Receives everything ready in `queue` (auto-ack off), until nothing comes for 500 ms.
fn receive_all(c: &mut Client, queue: &str) -> Vec<peregrine::client::queues::Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let batch = c.receive(queue, 64, 500, false).expect("receive");
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    got
}

#[test]
fn queue_publish_ack_and_declare_on_a_full_disk_get_storage_errors_and_resume_when_space_is_freed()
{
    queues_on_a_full_disk(Kind::Tmpfs);
}

#[test]
fn queues_on_a_full_ext4_disk_get_storage_errors_and_resume_when_space_is_freed() {
    queues_on_a_full_disk(Kind::Ext4);
}

fn queues_on_a_full_disk(kind: Kind) {
    let Some(mut fs) = SmallFs::mount(kind, 256) else {
        return;
    };
    let data = fs.path().join("data");
    let mut b = Broker::start_in(&data, &[]);
    let queue = unique("full-q");
    let mut c = b.client();
    c.declare_queue(QueueSpec {
        name: queue.clone(),
        ..QueueSpec::default()
    })
    .expect("declare");
    with_timeouts(&mut c, Some(&queue));
    c.bind(BindingSpec {
        exchange: "amq.direct".into(),
        queue: Some(queue.clone()),
        topic: None,
        routing_key: queue.clone(),
        headers: Vec::new(),
        match_all: false,
    })
    .expect("bind");
    // Published and acknowledged as durable: these must survive whatever follows.
    let mut published: Vec<Vec<u8>> = Vec::new();
    for i in 0..10 {
        let v = value("before", i, 100);
        c.publish(&queue, durable(), &v)
            .expect("publish before full");
        published.push(v);
    }
    let leased = c.receive(&queue, 2, 1000, false).expect("receive");
    assert_eq!(leased.len(), 2);
    let (status, body) = sqs(
        &b.http_addr,
        "GetQueueUrl",
        &serde_json::json!({"QueueName": queue}),
    );
    assert_eq!(status, 200, "GetQueueUrl: {body}");
    let url: serde_json::Value = serde_json::from_str(&body).expect("json");
    let url = url["QueueUrl"].as_str().expect("QueueUrl").to_string();
    let send = |addr: &str, text: &str| {
        sqs(
            addr,
            "SendMessage",
            &serde_json::json!({"QueueUrl": url, "MessageBody": text}),
        )
    };

    fs.fill();
    fs.fill_file(&data.join("broker.log"));
    // The journal's segment is preallocated (64 MiB): publishes fill it, then the next
    // segment cannot be created. Bounded: 40 × 4 MiB is more than one segment.
    let big: Vec<Vec<u8>> = (0..16).map(|i| value("filling", i, 256 << 10)).collect();
    let bodies: Vec<&[u8]> = big.iter().map(Vec::as_slice).collect();
    let mut refused = None;
    for _ in 0..40 {
        match c.publish_batch(&queue, durable(), &bodies) {
            Ok(_) => {}
            Err(e) => {
                refused = e.code();
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some(ErrorCode::StorageFull),
        "publish on a full disk"
    );
    // Sealing the full segment trimmed its unused preallocation: take that space too.
    fs.fill();
    fs.fill_file(&data.join("broker.log"));
    // Once full, every write of the journal is refused with the same clear error.
    assert_eq!(
        code_of(c.publish(&queue, durable(), b"x")),
        ErrorCode::StorageFull
    );
    assert_eq!(
        code_of(c.publish_to_exchange("amq.direct", &queue, durable(), b"x")),
        ErrorCode::StorageFull,
        "publish through an exchange"
    );
    assert_eq!(
        code_of(c.ack(&queue, &[leased[0].delivery.handle])),
        ErrorCode::StorageFull,
        "an ack cannot be journaled"
    );
    assert_eq!(
        code_of(c.nack(&queue, &[leased[1].delivery.handle], false)),
        ErrorCode::StorageFull,
        "a reject cannot be journaled"
    );
    assert_eq!(
        code_of(c.declare_queue(QueueSpec {
            name: unique("full-q-new"),
            ..QueueSpec::default()
        })),
        ErrorCode::StorageFull,
        "a declare cannot be saved"
    );
    // SQS: 503 ServiceUnavailable, which its SDKs retry.
    let (status, body) = send(&b.http_addr, "sqs-while-full");
    assert_eq!(status, 503, "SendMessage on a full disk: {body}");
    assert!(body.contains("ServiceUnavailable"), "{body}");
    // AMQP: a publisher with confirms hears a nack, and its channel stays open.
    let mut amqp = RawAmqp::open(&b.amqp_addr);
    amqp.channel_open(1);
    amqp.confirm_select(1);
    amqp.publish(1, "", &queue, b"amqp-while-full");
    match amqp.recv_method(1) {
        AMQPClass::Basic(basic::AMQPMethod::Nack(_)) => {}
        other => panic!("expected basic.nack on a full disk, got {other:?}"),
    }

    fs.free();
    let deadline = Instant::now() + RESUME_WITHIN;
    let v = value("after", 0, 100);
    loop {
        match c.publish(&queue, durable(), &v) {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::StorageFull) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("publish once space is back: {e}"),
        }
    }
    published.push(v);
    amqp.publish_confirmed(1, &queue, b"amqp-after");
    let (status, body) = send(&b.http_addr, "sqs-after");
    assert_eq!(status, 200, "SendMessage once space is back: {body}");
    // The refused ack and reject settled nothing: the same leases are acked now.
    let handles = [leased[0].delivery.handle, leased[1].delivery.handle];
    c.ack(&queue, &handles).expect("ack once space is back");
    let settled = [leased[0].body.to_vec(), leased[1].body.to_vec()];
    c.declare_queue(QueueSpec {
        name: unique("full-q-new"),
        ..QueueSpec::default()
    })
    .expect("declare once space is back");
    drop(amqp);

    assert!(b.stop(), "clean stop");
    b.restart();
    let mut c = b.client();
    let got: Vec<Vec<u8>> = receive_all(&mut c, &queue)
        .iter()
        .map(|r| r.body.to_vec())
        .collect();
    for want in &published {
        if settled.contains(want) {
            continue;
        }
        let copies = got.iter().filter(|g| *g == want).count();
        assert_eq!(
            copies,
            1,
            "published message {:?} after restart",
            String::from_utf8_lossy(&want[..16])
        );
    }
    assert!(
        !got.iter().any(|g| settled.contains(g)),
        "a message whose ack was answered came back"
    );
    assert!(got.iter().any(|g| g == b"amqp-after"));
    assert!(got.iter().any(|g| g == b"sqs-after"));
    assert!(
        repairs(&b).is_empty(),
        "recovery repaired: {:?}",
        repairs(&b)
    );
}

/// A broker whose writes or fdatasyncs fail with EIO while `trigger` lists them.
fn broker_with_faults(dir: &Path, trigger: &Path) -> Broker {
    let trigger = trigger.to_str().expect("utf-8 path");
    Broker::start_in_with_env(dir, &[], &[("PEREGRINE_FAULT_INJECT", trigger)])
}

#[test]
fn a_failed_fdatasync_acknowledges_nothing_and_leaves_the_partition_read_only_until_restart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let trigger = tmp.path().join("faults");
    let mut b = broker_with_faults(&tmp.path().join("data"), &trigger);
    let victim = unique("eio-victim");
    let healthy = unique("eio-healthy");
    let mut admin = b.client();
    create_topic(&mut admin, &victim, 1 << 20).expect("create");
    create_topic(&mut admin, &healthy, 1 << 20).expect("create");
    let p = producer(&b);
    let mut acked = Vec::new();
    for i in 0..10 {
        let v = value("before", i, 100);
        produce_one(&p, &victim, &v).expect("produce before the fault");
        acked.push(v);
    }

    std::fs::write(&trigger, format!("fdatasync {victim}\n")).expect("trigger");
    assert_eq!(
        produce_one(&p, &victim, &value("carried", 0, 100)),
        Err(RDKafkaErrorCode::KafkaStorageError),
        "data whose fdatasync failed is not acknowledged"
    );
    std::fs::remove_file(&trigger).expect("end the fault");
    // Read-only now, even with the disk healthy again: what is on disk after the
    // durable offset is unknown.
    assert_eq!(
        produce_one(&p, &victim, &value("after", 0, 100)),
        Err(RDKafkaErrorCode::KafkaStorageError),
        "the partition stays read-only"
    );
    let mut native = b.client();
    let batch = encode_batch(&[OutRecord {
        key: None,
        value: bytes::Bytes::from_static(b"native"),
        timestamp_ms: 1,
    }])
    .expect("encode");
    let refused = native.produce(&victim, 0, Acks::Leader, &batch);
    assert_eq!(code_of(refused), ErrorCode::StorageFailed);
    assert!(b.log().contains("read-only"), "the log says why");
    // Other partitions carry on, and what was acknowledged is still served.
    produce_one(&p, &healthy, b"fine").expect("another partition is unaffected");
    let read = read_all(&b, &victim, acked.len());
    assert_acked_once_in_order(&read, &acked);
    drop(p);

    b.restart();
    let read = read_all(&b, &victim, acked.len());
    assert_acked_once_in_order(&read, &acked);
    let p = producer(&b);
    produce_one(&p, &victim, b"after restart").expect("writable after a restart");
}

#[test]
fn a_failed_journal_write_refuses_the_publish_and_leaves_the_queue_read_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let trigger = tmp.path().join("faults");
    let mut b = broker_with_faults(&tmp.path().join("data"), &trigger);
    let queue = unique("eio-q");
    let mut c = b.client();
    c.declare_queue(QueueSpec {
        name: queue.clone(),
        ..QueueSpec::default()
    })
    .expect("declare");
    c.publish(&queue, durable(), b"kept").expect("publish");

    std::fs::write(&trigger, format!("write {queue}\n")).expect("trigger");
    assert_eq!(
        code_of(c.publish(&queue, durable(), b"lost")),
        ErrorCode::StorageFailed,
        "a publish whose journal write failed is not acknowledged"
    );
    std::fs::remove_file(&trigger).expect("end the fault");
    assert_eq!(
        code_of(c.publish(&queue, durable(), b"later")),
        ErrorCode::StorageFailed,
        "the queue stays read-only"
    );

    b.restart();
    let mut c = b.client();
    let got: Vec<Vec<u8>> = receive_all(&mut c, &queue)
        .iter()
        .map(|r| r.body.to_vec())
        .collect();
    assert!(
        got.contains(&b"kept".to_vec()),
        "acknowledged publish kept: {got:?}"
    );
    assert!(
        !got.contains(&b"later".to_vec()),
        "a refused publish came back"
    );
    c.publish(&queue, durable(), b"after restart")
        .expect("writable after a restart");
}
