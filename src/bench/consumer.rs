//! A bench consumer: reads its partitions, measures end-to-end latency from each
//! message's intended send time, and records what it received for the delivery check.

use super::delivery::Ledger;
use super::payload::{self, now_ns};
use super::report::histogram;
use crate::client::consumer::{Consumer, StartFrom};
use crate::client::tls::ClientTls;
use crate::client::Client;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest one fetch round waits for new data.
const POLL_WAIT: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct ConsumerPlan {
    pub bootstrap: String,
    /// Set to connect over TLS.
    pub tls: Option<Arc<ClientTls>>,
    /// Set to authenticate (SCRAM).
    pub credentials: Option<Arc<crate::client::auth::Credentials>>,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub producers: usize,
    pub shard_aware: bool,
}

pub struct ConsumerResult {
    pub ledger: Ledger,
    pub e2e_ns: Histogram<u64>,
    pub first_receive_ns: u64,
    pub last_receive_ns: u64,
    pub error: Option<String>,
}

/// Shared by the consumers and the orchestrator.
#[derive(Default)]
pub struct Progress {
    pub received: AtomicU64,
    /// Set once every consumer may stop (all expected messages arrived, or given up).
    pub stop: AtomicBool,
}

pub fn run(plan: ConsumerPlan, progress: Arc<Progress>) -> ConsumerResult {
    let mut result = ConsumerResult {
        ledger: Ledger::new(plan.producers),
        e2e_ns: histogram(),
        first_receive_ns: 0,
        last_receive_ns: 0,
        error: None,
    };
    let consumer = Client::connect_as(&plan.bootstrap, plan.tls.clone(), plan.credentials.clone())
        .and_then(|mut client| {
            client.set_shard_aware(plan.shard_aware);
            Consumer::assign(
                client,
                &plan.topic,
                Some(plan.partitions.clone()),
                StartFrom::Earliest,
            )
        });
    let mut consumer = match consumer {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    while !progress.stop.load(Ordering::Relaxed) {
        // The receive time is taken once per fetch round, when its answers are in.
        let mut now = 0;
        let (e2e, ledger) = (&mut result.e2e_ns, &mut result.ledger);
        let polled = consumer.poll_with(POLL_WAIT, &mut |r, _| {
            if now == 0 {
                now = now_ns();
            }
            let Some(stamp) = r.value.and_then(payload::read) else {
                return;
            };
            let _ = e2e.record(now.saturating_sub(stamp.sent_ns).max(1));
            ledger.receive(stamp.producer, stamp.seq);
        });
        let count = match polled {
            Ok(n) => n,
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        };
        if count == 0 {
            continue;
        }
        if result.first_receive_ns == 0 {
            result.first_receive_ns = now;
        }
        result.last_receive_ns = now;
        progress.received.fetch_add(count as u64, Ordering::Relaxed);
    }
    result
}
