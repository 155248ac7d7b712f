//! The queue side of the torture load: a publisher with AMQP publisher confirms
//! (lapin, persistent messages through the default exchange) and a native consumer
//! that receives and acks (an ack is answered once it is on disk). Both write what the
//! broker acknowledged into one ledger; the consumer also fails the run at once when a
//! message it had settled is handed out again.

use super::control::{lock, Control};
use super::kafka_load::Errors;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};
use peregrine::client::Client;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub const QUEUE: &str = "torture-queue";
/// Publishes waiting for their confirm at once.
const CONFIRM_WINDOW: usize = 16;
/// Pause between two publishes: at most about 1,000 a second.
const PUBLISH_PACE: Duration = Duration::from_millis(1);
/// The longest one AMQP step (connect, publish, a confirm) may take.
const AMQP_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages one receive may hand out, and how long it waits for the first.
const RECEIVE_MAX: u32 = 32;
const RECEIVE_WAIT_MS: u32 = 100;
/// Between two attempts to reach a broker that is down.
const RETRY: Duration = Duration::from_millis(100);

/// Message `n` has the body `a{n}`.
#[derive(Debug, Default, Clone)]
pub struct QueueLedger {
    /// Highest message number handed to `basic.publish` (every lower one was too).
    pub published: u64,
    pub confirmed: BTreeSet<u64>,
    pub nacked: BTreeSet<u64>,
    /// Acks the broker answered: these must never be delivered again.
    pub settled: BTreeSet<u64>,
    /// Acks sent but not answered (the broker died): delivered again or not.
    pub ack_unknown: BTreeSet<u64>,
    pub received: u64,
    pub errors: Errors,
}

pub fn body(n: u64) -> String {
    format!("a{n}")
}

pub fn number_of(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_prefix('a')?
        .parse()
        .ok()
}

/// Publishes with confirms until the run stops, on one connection per load phase.
pub fn amqp_publisher(ctl: &Control, ledger: &Mutex<QueueLedger>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctl.fail(format!("AMQP publisher: no tokio runtime: {e}"));
            return;
        }
    };
    rt.block_on(async {
        let mut next: u64 = 0;
        while !ctl.stopping() {
            if ctl.pause_requested() {
                ctl.wait_paused_async().await;
                continue;
            }
            let (conn, ch) = match open(ctl).await {
                Ok(c) => c,
                Err(e) => {
                    lock(ledger).errors.note(e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if let Err(e) = publish_until_paused(ctl, ledger, &ch, &mut next).await {
                lock(ledger).errors.note(e);
            }
            let _ = tokio::time::timeout(AMQP_TIMEOUT, conn.close(200, "pause".into())).await;
        }
    });
}

async fn open(ctl: &Control) -> Result<(Connection, Channel), String> {
    let uri = format!("amqp://guest:guest@{}/%2f", ctl.amqp_addr);
    let conn = within(
        "connect",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    within(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok((conn, ch))
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(AMQP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: nothing within {AMQP_TIMEOUT:?}")),
    }
}

/// Publishes until a pause or stop is asked, then waits for every confirm; an error
/// leaves the outcome of what was in flight unknown.
async fn publish_until_paused(
    ctl: &Control,
    ledger: &Mutex<QueueLedger>,
    ch: &Channel,
    next: &mut u64,
) -> Result<(), String> {
    let mut window: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let result = async {
        while !ctl.pause_requested() && !ctl.stopping() {
            if window.len() >= CONFIRM_WINDOW {
                if let Some((n, confirm)) = window.pop_front() {
                    settle(ledger, n, confirm).await?;
                }
            }
            *next += 1;
            let n = *next;
            lock(ledger).published = n;
            let props = BasicProperties::default().with_delivery_mode(2);
            let payload = body(n);
            let publish = ch.basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                props,
            );
            window.push_back((n, within("basic.publish", publish).await?));
            tokio::time::sleep(PUBLISH_PACE).await;
        }
        while let Some((n, confirm)) = window.pop_front() {
            settle(ledger, n, confirm).await?;
        }
        Ok(())
    }
    .await;
    // Whatever is left was published and not confirmed: stored or not.
    window.clear();
    result
}

async fn settle(
    ledger: &Mutex<QueueLedger>,
    n: u64,
    confirm: PublisherConfirm,
) -> Result<(), String> {
    match within(&format!("confirm of {n}"), confirm).await? {
        Confirmation::Ack(_) => {
            lock(ledger).confirmed.insert(n);
            Ok(())
        }
        Confirmation::Nack(_) => {
            lock(ledger).nacked.insert(n);
            Ok(())
        }
        Confirmation::NotRequested => Err(format!("publish {n}: confirms not on")),
    }
}

/// Receives and acks until the run stops; a reconnect follows every error.
pub fn queue_consumer(ctl: &Control, ledger: &Mutex<QueueLedger>) {
    let mut client: Option<Client> = None;
    while !ctl.stopping() {
        if ctl.pause_requested() {
            ctl.wait_paused();
            continue;
        }
        let mut c = match client.take() {
            Some(c) => c,
            None => match Client::connect(&ctl.native_addr()) {
                Ok(c) => c,
                Err(e) => {
                    lock(ledger).errors.note(format!("connect: {e}"));
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        match receive_and_ack(ctl, ledger, &mut c) {
            Ok(()) => client = Some(c),
            Err(e) => {
                lock(ledger).errors.note(e);
                std::thread::sleep(RETRY);
            }
        }
    }
}

fn receive_and_ack(
    ctl: &Control,
    ledger: &Mutex<QueueLedger>,
    c: &mut Client,
) -> Result<(), String> {
    let got = c
        .receive(QUEUE, RECEIVE_MAX, RECEIVE_WAIT_MS, false)
        .map_err(|e| format!("receive: {e}"))?;
    if got.is_empty() {
        return Ok(());
    }
    let mut numbers = Vec::with_capacity(got.len());
    {
        let mut l = lock(ledger);
        l.received += got.len() as u64;
        for r in &got {
            match number_of(&r.body) {
                Some(n) if l.settled.contains(&n) => ctl.fail(format!(
                    "queue {QUEUE}: message {n}, acknowledged before, delivered again (delivery {})",
                    r.delivery.deliveries
                )),
                Some(n) => numbers.push(n),
                None => ctl.fail(format!(
                    "queue {QUEUE}: a message nobody published: {:?}",
                    String::from_utf8_lossy(&r.body)
                )),
            }
        }
    }
    let handles: Vec<u64> = got.iter().map(|r| r.delivery.handle).collect();
    match c.ack(QUEUE, &handles) {
        Ok(()) => {
            let mut l = lock(ledger);
            for n in numbers {
                l.ack_unknown.remove(&n);
                l.settled.insert(n);
            }
            Ok(())
        }
        Err(e) => {
            lock(ledger).ack_unknown.extend(numbers);
            Err(format!("ack: {e}"))
        }
    }
}
