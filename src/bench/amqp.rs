//! `peregrine bench amqp` and `amqp-latency`: the queue workload through a real AMQP
//! 0-9-1 client library (lapin), so the figure is what a RabbitMQ program would see, and
//! the same command measures RabbitMQ itself (`--amqp-uri`).
//!
//! Producers publish persistent (`delivery_mode` 2) stamped messages to one durable queue
//! through the default exchange with publisher confirms, keeping up to
//! `--confirm-window` publishes unconfirmed; a message counts as acknowledged once its
//! confirm is an ack. Consumers hold a `basic.consume` with `basic.qos --prefetch` and
//! manual acks, acking with `multiple` every half prefetch (or when the stream pauses);
//! a message counts as received once its ack is sent (AMQP does not answer acks).
//! Latency runs from each message's intended send time to its delivery, so a fixed-rate
//! run is corrected for coordinated omission.
//!
//! Over TLS (`--tls-ca`, an `amqps://` URI) lapin seals with rustls and ring, trusting
//! only the given CA, and shows `--tls-client-cert` to a broker that asks for one.
//!
//! Each client thread runs lapin on a tokio current-thread runtime of its own; lapin adds
//! one I/O thread per connection. All of them inherit the bench's `--cores` pinning, so
//! they stay off the broker's cores when the two are given different ones.

use super::consumer::{ConsumerResult, Progress};
use super::delivery::Ledger;
use super::payload::{self, now_ns, Stamp};
use super::producer::ProducerResult;
use super::report::histogram;
use super::{paced_plans, summarize, wait_for, BenchArgs, Mode, Outcome, PacedPlan, DRAIN_TIMEOUT};
use crate::cli::tls::TlsClientArgs;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The longest one client step (connect, declare, a confirm, a delivery) may take.
const STEP_TIMEOUT: Duration = DRAIN_TIMEOUT;
/// How long a consumer waits for a delivery before it acks what it holds.
const PAUSE: Duration = Duration::from_millis(20);
/// A fixed-rate producer sleeps this long at most between checks of the clock.
const RATE_SLEEP: Duration = Duration::from_micros(20);
/// `delivery_mode` of a persistent message.
const PERSISTENT: u8 = 2;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// `fut` under `STEP_TIMEOUT`, its error and a timeout both named by `what`.
async fn step<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}").into()),
        Err(_) => Err(format!("{what}: no answer in {STEP_TIMEOUT:?}").into()),
    }
}

/// Runs `body` to completion on a current-thread runtime of this thread's own.
fn on_runtime<T>(body: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(body)
}

/// The broker the clients connect to: its URI, and with `amqps://` the TLS settings.
#[derive(Clone)]
pub struct Endpoint {
    pub uri: String,
    pub tls: OwnedTLSConfig,
}

impl Endpoint {
    /// `uri` as the TLS flags say: `amqps://` needs `--tls-ca` (trusted alone, no system
    /// roots), which is refused for `amqp://`. The certificate must carry the URI's host.
    pub fn new(uri: String, tls: &TlsClientArgs) -> Result<Endpoint, String> {
        let secure = uri.starts_with("amqps://");
        let Some(ca) = &tls.tls_ca else {
            if secure {
                return Err("an amqps:// URI needs --tls-ca".into());
            }
            return Ok(Endpoint {
                uri,
                tls: OwnedTLSConfig::default(),
            });
        };
        if !secure {
            return Err("--tls-ca: the AMQP URI must be amqps://".into());
        }
        if tls.tls_server_name.is_some() {
            return Err(
                "--tls-server-name: the AMQP modes check the certificate against the URI's host"
                    .into(),
            );
        }
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let cert_chain = String::from_utf8(read(ca)?)
            .map_err(|_| format!("{}: not a PEM file", ca.display()))?;
        let identity = match (&tls.tls_client_cert, &tls.tls_client_key) {
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: read(cert)?,
                key: read(key)?,
            }),
            _ => None,
        };
        Ok(Endpoint {
            uri,
            tls: OwnedTLSConfig {
                identity,
                cert_chain: Some(cert_chain),
            },
        })
    }
}

async fn open_channel(to: &Endpoint) -> Result<(Connection, Channel), Error> {
    let runtime = lapin::runtime::default_runtime()?;
    let connect = Connection::connect_with_config(
        &to.uri,
        ConnectionProperties::default(),
        to.tls.clone(),
        runtime,
    );
    let conn = step("AMQP connect", connect).await?;
    let channel = step("channel.open", conn.create_channel()).await?;
    Ok((conn, channel))
}

/// A publish not yet confirmed: its sequence number, when it went, its confirm.
struct Unconfirmed {
    seq: u64,
    sent_ns: u64,
    confirm: PublisherConfirm,
}

/// Counts a confirmed publish; a nack fails the run.
fn settled(
    u: &Unconfirmed,
    confirmation: lapin::Confirmation,
    out: &mut ProducerResult,
) -> Result<(), Error> {
    if !confirmation.is_ack() {
        return Err(format!("publish {} was not confirmed: {confirmation:?}", u.seq).into());
    }
    let now = now_ns();
    out.last_ack_ns = now;
    out.acked.insert(u.seq);
    let _ = out.ack_ns.record(now.saturating_sub(u.sent_ns).max(1));
    Ok(())
}

/// Counts the unconfirmed publishes at the front of the window whose confirms are in
/// (a `multiple` confirm settles many at once); with `wait`, waits for at least one.
async fn settle(
    window: &mut VecDeque<Unconfirmed>,
    out: &mut ProducerResult,
    wait: bool,
) -> Result<(), Error> {
    if wait {
        if let Some(mut u) = window.pop_front() {
            let confirmation = step("publisher confirm", &mut u.confirm).await?;
            settled(&u, confirmation, out)?;
        }
    }
    while let Some(u) = window.front_mut() {
        let Some(result) = futures_lite::future::poll_once(&mut u.confirm).await else {
            break;
        };
        let confirmation = result.map_err(|e| format!("publisher confirm: {e}"))?;
        if let Some(u) = window.pop_front() {
            settled(&u, confirmation, out)?;
        }
    }
    Ok(())
}

/// How many messages to publish next: at a fixed rate what is due now (waiting for the
/// first), else as many as the window and `--batch` allow.
async fn next_batch(plan: &PacedPlan, args: &BenchArgs, seq: u64, start: u64, room: u64) -> u64 {
    let n = match plan.rate {
        Some(rate) => {
            let gap = 1e9 / rate.max(1.0);
            let due_at = start + (seq as f64 * gap) as u64;
            while now_ns() < due_at {
                // Confirms are read while this thread drives the runtime: let it look at
                // its sockets between short sleeps.
                tokio::task::yield_now().await;
                let left = Duration::from_nanos(due_at.saturating_sub(now_ns()));
                std::thread::sleep(RATE_SLEEP.min(left));
            }
            ((now_ns() - start) as f64 / gap) as u64 + 1 - seq
        }
        None => args.batch as u64,
    };
    n.clamp(1, args.batch.max(1) as u64)
        .min(room)
        .min(plan.count - seq)
}

/// Hands `bodies` to lapin all at once, so that its I/O thread writes them together, and
/// waits until they are written; returns their confirms in order.
async fn publish_all(
    ch: &Channel,
    queue: &str,
    bodies: &[Vec<u8>],
) -> Result<Vec<PublisherConfirm>, Error> {
    let props = BasicProperties::default().with_delivery_mode(PERSISTENT);
    let mut writes = Vec::with_capacity(bodies.len());
    for body in bodies {
        let mut write = Box::pin(ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props.clone(),
        ));
        // The first poll queues the message's frames.
        let done = futures_lite::future::poll_once(&mut write).await;
        writes.push((write, done));
    }
    let mut confirms = Vec::with_capacity(bodies.len());
    for (write, done) in writes {
        let written = match done {
            Some(r) => r,
            None => step("basic.publish", write).await.map(Ok)?,
        };
        confirms.push(written.map_err(|e| format!("basic.publish: {e}"))?);
    }
    Ok(confirms)
}

async fn produce(
    args: &BenchArgs,
    to: &Endpoint,
    queue: &str,
    plan: &PacedPlan,
    out: &mut ProducerResult,
) -> Result<(), Error> {
    let (conn, ch) = open_channel(to).await?;
    step(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    if plan.rate.is_some() {
        // Sleeps of tens of µs need the kernel's timer slack (50 µs by default) at its
        // least, or every message goes late by it.
        // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's slack.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64);
        }
    }
    let window_max = u64::from(args.confirm_window.max(1));
    let mut window = VecDeque::with_capacity(window_max as usize);
    let gap = plan.rate.map(|r| 1e9 / r.max(1.0));
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let start = now_ns();
    out.first_send_ns = start;
    let mut seq = 0u64;
    while seq < plan.count && plan.deadline_ns.is_none_or(|d| now_ns() < d) {
        let full = window.len() as u64 >= window_max;
        settle(&mut window, out, full).await?;
        let room = window_max.saturating_sub(window.len() as u64);
        if room == 0 {
            continue;
        }
        let n = next_batch(plan, args, seq, start, room).await;
        bodies.resize_with(n as usize, || vec![b'x'; args.size]);
        let batch_ns = now_ns();
        for (body, s) in bodies.iter_mut().zip(seq..seq + n) {
            let sent_ns = gap.map_or(batch_ns, |g| start + (s as f64 * g) as u64);
            payload::write(
                body,
                Stamp {
                    producer: plan.id,
                    seq: s,
                    sent_ns,
                },
            );
        }
        let confirms = publish_all(&ch, queue, &bodies).await?;
        for (s, confirm) in (seq..seq + n).zip(confirms) {
            window.push_back(Unconfirmed {
                seq: s,
                sent_ns: batch_ns,
                confirm,
            });
        }
        seq += n;
        out.sent = seq;
    }
    while !window.is_empty() {
        settle(&mut window, out, true).await?;
    }
    let _ = conn.close(200, "bench done".into()).await;
    Ok(())
}

fn run_producer(args: &BenchArgs, to: &Endpoint, queue: &str, plan: PacedPlan) -> ProducerResult {
    let mut out = ProducerResult {
        sent: 0,
        acked: Default::default(),
        ack_ns: histogram(),
        first_send_ns: now_ns(),
        last_ack_ns: 0,
        error: None,
    };
    if let Err(e) = on_runtime(produce(args, to, queue, &plan, &mut out)) {
        out.error = Some(e.to_string());
    }
    out
}

/// Acks everything up to `tag` in one `basic.ack multiple`, then counts the messages.
async fn ack_held(
    ch: &Channel,
    tag: u64,
    stamps: &mut Vec<Stamp>,
    out: &mut ConsumerResult,
    progress: &Progress,
) -> Result<(), Error> {
    step(
        "basic.ack",
        ch.basic_ack(tag, BasicAckOptions { multiple: true }),
    )
    .await?;
    for s in stamps.iter() {
        out.ledger.receive(s.producer, s.seq);
    }
    progress
        .received
        .fetch_add(stamps.len() as u64, Ordering::Relaxed);
    stamps.clear();
    let now = now_ns();
    if out.first_receive_ns == 0 {
        out.first_receive_ns = now;
    }
    out.last_receive_ns = now;
    Ok(())
}

async fn consume(
    args: &BenchArgs,
    to: &Endpoint,
    queue: &str,
    progress: &Progress,
    out: &mut ConsumerResult,
) -> Result<(), Error> {
    let (conn, ch) = open_channel(to).await?;
    let prefetch = u16::try_from(args.prefetch).unwrap_or(u16::MAX);
    step(
        "basic.qos",
        ch.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await?;
    let mut consumer = step(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    let ack_every = (usize::from(prefetch) / 2).max(1);
    let mut stamps = Vec::with_capacity(ack_every);
    let mut last_tag = None;
    while !progress.stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(PAUSE, consumer.next()).await {
            Ok(Some(delivery)) => {
                let d = delivery.map_err(|e| format!("delivery: {e}"))?;
                let now = now_ns();
                if let Some(stamp) = payload::read(&d.data) {
                    let _ = out.e2e_ns.record(now.saturating_sub(stamp.sent_ns).max(1));
                    stamps.push(stamp);
                }
                last_tag = Some(d.delivery_tag);
                if stamps.len() >= ack_every {
                    ack_held(&ch, d.delivery_tag, &mut stamps, out, progress).await?;
                    last_tag = None;
                }
            }
            Ok(None) => return Err("the broker cancelled the consumer".into()),
            // A pause: ack what is held so that the last messages are counted.
            Err(_) => {
                if let Some(tag) = last_tag.take() {
                    ack_held(&ch, tag, &mut stamps, out, progress).await?;
                }
            }
        }
    }
    let _ = conn.close(200, "bench done".into()).await;
    Ok(())
}

fn run_consumer(
    args: &BenchArgs,
    to: &Endpoint,
    queue: &str,
    progress: &Progress,
) -> ConsumerResult {
    let mut out = ConsumerResult {
        ledger: Ledger::new(args.producers.max(1)),
        e2e_ns: histogram(),
        first_receive_ns: 0,
        last_receive_ns: 0,
        error: None,
    };
    if let Err(e) = on_runtime(consume(args, to, queue, progress, &mut out)) {
        out.error = Some(e.to_string());
    }
    out
}

/// Declares the run's durable queue (or deletes it: `delete`).
fn queue_admin(to: &Endpoint, queue: &str, delete: bool) -> Result<(), Error> {
    on_runtime(async {
        let (conn, ch) = open_channel(to).await?;
        if delete {
            step(
                "queue.delete",
                ch.queue_delete(queue.into(), QueueDeleteOptions::default()),
            )
            .await?;
        } else {
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            step(
                "queue.declare",
                ch.queue_declare(queue.into(), options, FieldTable::default()),
            )
            .await?;
        }
        let _ = conn.close(200, "bench done".into()).await;
        Ok(())
    })
}

pub fn run(args: &BenchArgs, to: &Endpoint) -> Result<Outcome, Box<dyn std::error::Error>> {
    let queue = format!(
        "bench-amqp-{}-{}",
        std::process::id(),
        crate::time::now_ms()
    );
    queue_admin(to, &queue, false).map_err(|e| e.to_string())?;
    let total = args.messages.unwrap_or(u64::MAX);
    let producers = args.producers.max(1) as u64;
    let progress = Arc::new(Progress::default());
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|_| {
            let (a, u, q, p) = (args.clone(), to.clone(), queue.clone(), progress.clone());
            std::thread::spawn(move || run_consumer(&a, &u, &q, &p))
        })
        .collect();
    let start = now_ns();
    let deadline_ns = args.duration.map(|d| start + (d * 1e9) as u64);
    let rate = (args.mode == Mode::AmqpLatency).then_some(args.rate as f64);
    let producers: Vec<ProducerResult> = paced_plans(producers, total, deadline_ns, rate)
        .into_iter()
        .map(|plan| {
            let (a, u, q) = (args.clone(), to.clone(), queue.clone());
            std::thread::spawn(move || run_producer(&a, &u, &q, plan))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().map_err(|_| "producer panicked"))
        .collect::<Result<_, _>>()?;
    let expected = producers.iter().map(|p| p.acked.len()).sum();
    wait_for(&progress, expected, true);
    progress.stop.store(true, Ordering::Relaxed);
    let consumers: Vec<ConsumerResult> = consumers
        .into_iter()
        .map(|h| h.join().map_err(|_| "consumer panicked"))
        .collect::<Result<_, _>>()?;
    if let Err(e) = queue_admin(to, &queue, true) {
        eprintln!("could not delete the bench queue {queue}: {e}");
    }
    let confirmed: u64 = producers.iter().map(|p| p.acked.len()).sum();
    let first = producers
        .iter()
        .map(|p| p.first_send_ns)
        .min()
        .unwrap_or(start);
    let last = producers
        .iter()
        .map(|p| p.last_ack_ns)
        .max()
        .unwrap_or(start);
    let confirm_s = last.saturating_sub(first).max(1) as f64 / 1e9;
    eprintln!(
        "amqp: {confirmed} publishes confirmed in {confirm_s:.2} s ({:.0} msgs/s)",
        confirmed as f64 / confirm_s
    );
    Ok(summarize(args, start, producers, consumers))
}
