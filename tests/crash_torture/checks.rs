//! What must hold after every restart, as pure functions of what the broker gives back
//! and what the load's ledgers say it acknowledged. Each returns its findings (empty:
//! the check passed); the unit tests below show each one catches what it is for.

use super::kafka_load::{txn_value, IdemLedger, TxnLedger, PARTITIONS, TXN_RECORDS_PER_PARTITION};
use super::queue_load::QueueLedger;
use std::collections::{BTreeMap, BTreeSet};

/// A topic as read back: each partition's (offset, value) in log order.
pub type Log = BTreeMap<i32, Vec<(i64, String)>>;

/// Numbers listed in a finding at most.
const LISTED: usize = 10;

fn listed(numbers: &[u64]) -> String {
    let shown: Vec<String> = numbers.iter().take(LISTED).map(u64::to_string).collect();
    let more = numbers.len().saturating_sub(LISTED);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Idempotent producer: every acknowledged message is there exactly once, and each
/// partition's values rise with its offsets (nothing duplicated, nothing reordered,
/// whether acknowledged or not).
pub fn idempotent(topic: &str, log: &Log, ledger: &IdemLedger) -> Vec<String> {
    let mut findings = Vec::new();
    let mut present: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
    for (p, records) in log {
        let mut last: Option<(i64, u64)> = None;
        for (offset, value) in records {
            let Ok(seq) = value.parse::<u64>() else {
                findings.push(format!("{topic}/{p}@{offset}: {value:?} was never sent"));
                continue;
            };
            if seq % PARTITIONS as u64 != *p as u64 {
                findings.push(format!("{topic}/{p}@{offset}: {seq} belongs elsewhere"));
            }
            if let Some((last_offset, last_seq)) = last {
                if *offset <= last_offset {
                    findings.push(format!("{topic}/{p}: offset {offset} after {last_offset}"));
                }
                if seq == last_seq || present.get(p).is_some_and(|s| s.contains(&seq)) {
                    findings.push(format!("{topic}/{p}@{offset}: {seq} twice"));
                } else if seq < last_seq {
                    findings.push(format!(
                        "{topic}/{p}@{offset}: {seq} after {last_seq} (out of order)"
                    ));
                }
            }
            present.entry(*p).or_default().insert(seq);
            last = Some((*offset, seq));
        }
    }
    for (p, acked) in &ledger.acked {
        let have = present.get(p);
        let missing: Vec<u64> = acked
            .iter()
            .filter(|s| !have.is_some_and(|h| h.contains(s)))
            .copied()
            .collect();
        if !missing.is_empty() {
            findings.push(format!(
                "{topic}/{p}: {} acknowledged messages missing: {}",
                missing.len(),
                listed(&missing)
            ));
        }
    }
    findings
}

/// Transactional producer, read `read_committed`: each transaction is visible whole or
/// not at all, committed ones whole, aborted ones not at all, none twice, and each
/// partition in transaction order.
pub fn transactions(topic: &str, log: &Log, ledger: &TxnLedger) -> Vec<String> {
    let mut findings = Vec::new();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (p, records) in log {
        let mut last: Option<(u64, usize)> = None;
        for (offset, value) in records {
            let Some(at) = parse_txn_value(value) else {
                findings.push(format!("{topic}/{p}@{offset}: {value:?} was never sent"));
                continue;
            };
            if last.is_some_and(|l| at <= l) {
                findings.push(format!(
                    "{topic}/{p}@{offset}: {value} after {} (duplicate or out of order)",
                    last.map(|(t, i)| txn_value(t, i)).unwrap_or_default()
                ));
            }
            *seen.entry(at.0).or_default() += 1;
            last = Some(at);
        }
    }
    let whole = TXN_RECORDS_PER_PARTITION * PARTITIONS as usize;
    for (txn, count) in &seen {
        if *count != whole {
            findings.push(format!(
                "{topic}: transaction {txn} shows {count} of its {whole} records"
            ));
        }
        if !ledger.begun.contains(txn) {
            findings.push(format!("{topic}: transaction {txn} was never begun"));
        }
        if ledger.aborted.contains(txn) {
            findings.push(format!(
                "{topic}: transaction {txn} was aborted, yet visible"
            ));
        }
    }
    let missing: Vec<u64> = ledger
        .committed
        .iter()
        .filter(|t| !seen.contains_key(t))
        .copied()
        .collect();
    if !missing.is_empty() {
        findings.push(format!(
            "{topic}: {} committed transactions missing: {}",
            missing.len(),
            listed(&missing)
        ));
    }
    findings
}

fn parse_txn_value(value: &str) -> Option<(u64, usize)> {
    let (txn, i) = value.strip_prefix('t')?.split_once(':')?;
    Some((txn.parse().ok()?, i.parse().ok()?))
}

/// The queue, drained: nothing settled came back, nothing is there twice or was never
/// published, and every confirmed message is either settled, possibly settled (its
/// ack went unanswered) or still there.
pub fn queue(queue: &str, drained: &[u64], ledger: &QueueLedger) -> Vec<String> {
    let mut findings = Vec::new();
    let mut there = BTreeSet::new();
    for n in drained {
        if ledger.settled.contains(n) {
            findings.push(format!(
                "{queue}: message {n} was acknowledged, yet is back"
            ));
        }
        if !there.insert(*n) {
            findings.push(format!("{queue}: message {n} is there twice"));
        }
        if *n == 0 || *n > ledger.published {
            findings.push(format!("{queue}: message {n} was never published"));
        }
    }
    let lost: Vec<u64> = ledger
        .confirmed
        .iter()
        .filter(|n| {
            !there.contains(n) && !ledger.settled.contains(n) && !ledger.ack_unknown.contains(n)
        })
        .copied()
        .collect();
    if !lost.is_empty() {
        findings.push(format!(
            "{queue}: {} confirmed messages lost: {}",
            lost.len(),
            listed(&lost)
        ));
    }
    findings
}

/// Acknowledged commits survive: each partition's committed offset is at least the
/// last commit the broker acknowledged (a later one may have been stored unanswered).
pub fn commits(what: &str, read: &BTreeMap<i32, i64>, acked: &BTreeMap<i32, i64>) -> Vec<String> {
    let mut findings = Vec::new();
    for (p, at_least) in acked {
        let now = read.get(p).copied().unwrap_or(-1);
        if now < *at_least {
            findings.push(format!(
                "{what}/{p}: committed offset {now}, below the acknowledged commit {at_least}"
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(parts: &[(i32, &[&str])]) -> Log {
        parts
            .iter()
            .map(|(p, values)| {
                let records = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as i64, v.to_string()))
                    .collect();
                (*p, records)
            })
            .collect()
    }

    fn idem_acked(parts: &[(i32, &[u64])]) -> IdemLedger {
        IdemLedger {
            acked: parts
                .iter()
                .map(|(p, s)| (*p, s.iter().copied().collect()))
                .collect(),
            ..IdemLedger::default()
        }
    }

    #[test]
    fn idempotent_check_passes_a_whole_log_with_unacknowledged_extras() {
        let l = log(&[(0, &["2", "4", "6"]), (1, &["1", "5"])]);
        assert!(idempotent("t", &l, &idem_acked(&[(0, &[2, 4]), (1, &[5])])).is_empty());
    }

    #[test]
    fn idempotent_check_finds_loss_duplicates_and_reordering() {
        let acked = idem_acked(&[(0, &[2, 4])]);
        let lost = idempotent("t", &log(&[(0, &["2"])]), &acked);
        assert!(lost.iter().any(|f| f.contains("missing: 4")), "{lost:?}");
        let twice = idempotent("t", &log(&[(0, &["2", "4", "2"])]), &acked);
        assert!(twice.iter().any(|f| f.contains("2 twice")), "{twice:?}");
        let swapped = idempotent("t", &log(&[(0, &["4", "2"])]), &acked);
        assert!(
            swapped.iter().any(|f| f.contains("out of order")),
            "{swapped:?}"
        );
        let alien = idempotent("t", &log(&[(0, &["2", "4", "x"])]), &acked);
        assert!(alien.iter().any(|f| f.contains("never sent")), "{alien:?}");
    }

    fn txn_log(txns: &[u64]) -> Log {
        (0..PARTITIONS)
            .map(|p| {
                let mut records = Vec::new();
                for t in txns {
                    for i in 0..TXN_RECORDS_PER_PARTITION {
                        records.push((records.len() as i64, txn_value(*t, i)));
                    }
                }
                (p, records)
            })
            .collect()
    }

    fn txn_ledger(committed: &[u64], aborted: &[u64], unknown: &[u64]) -> TxnLedger {
        let set = |s: &[u64]| s.iter().copied().collect::<BTreeSet<u64>>();
        let mut begun = set(committed);
        begun.extend(aborted);
        begun.extend(unknown);
        TxnLedger {
            begun,
            committed: set(committed),
            aborted: set(aborted),
            ..TxnLedger::default()
        }
    }

    #[test]
    fn transaction_check_passes_committed_and_unknown_whole_ones() {
        let ledger = txn_ledger(&[1, 3], &[2], &[4]);
        assert!(transactions("t", &txn_log(&[1, 3, 4]), &ledger).is_empty());
        assert!(transactions("t", &txn_log(&[1, 3]), &ledger).is_empty());
    }

    #[test]
    fn transaction_check_finds_torn_aborted_missing_and_doubled_ones() {
        let ledger = txn_ledger(&[1, 3], &[2], &[4]);
        let aborted = transactions("t", &txn_log(&[1, 2, 3]), &ledger);
        assert!(
            aborted.iter().any(|f| f.contains("aborted, yet")),
            "{aborted:?}"
        );
        let missing = transactions("t", &txn_log(&[1]), &ledger);
        assert!(
            missing.iter().any(|f| f.contains("missing: 3")),
            "{missing:?}"
        );
        let mut torn = txn_log(&[1, 3, 4]);
        torn.entry(1).or_default().pop();
        let torn = transactions("t", &torn, &ledger);
        assert!(
            torn.iter().any(|f| f.contains("4 shows 5 of its 6")),
            "{torn:?}"
        );
        let doubled = transactions("t", &txn_log(&[1, 3, 3]), &ledger);
        assert!(
            doubled.iter().any(|f| f.contains("duplicate")),
            "{doubled:?}"
        );
    }

    fn queue_ledger(
        published: u64,
        confirmed: &[u64],
        settled: &[u64],
        unknown: &[u64],
    ) -> QueueLedger {
        QueueLedger {
            published,
            confirmed: confirmed.iter().copied().collect(),
            settled: settled.iter().copied().collect(),
            ack_unknown: unknown.iter().copied().collect(),
            ..QueueLedger::default()
        }
    }

    #[test]
    fn queue_check_passes_when_every_confirmed_message_is_settled_or_there() {
        let ledger = queue_ledger(6, &[1, 2, 3, 4, 5], &[1, 2], &[3]);
        assert!(queue("q", &[4, 5, 6], &ledger).is_empty());
    }

    #[test]
    fn queue_check_finds_redelivered_settled_lost_doubled_and_phantom_messages() {
        let ledger = queue_ledger(6, &[1, 2, 3, 4, 5], &[1, 2], &[3]);
        let back = queue("q", &[1, 4, 5], &ledger);
        assert!(
            back.iter().any(|f| f.contains("1 was acknowledged")),
            "{back:?}"
        );
        let lost = queue("q", &[4], &ledger);
        assert!(lost.iter().any(|f| f.contains("lost: 5")), "{lost:?}");
        let twice = queue("q", &[4, 5, 5], &ledger);
        assert!(
            twice.iter().any(|f| f.contains("5 is there twice")),
            "{twice:?}"
        );
        let phantom = queue("q", &[4, 5, 7], &ledger);
        assert!(
            phantom.iter().any(|f| f.contains("7 was never")),
            "{phantom:?}"
        );
    }

    #[test]
    fn commit_check_finds_lost_acknowledged_commits() {
        let m = |v: &[(i32, i64)]| v.iter().copied().collect::<BTreeMap<i32, i64>>();
        let acked = m(&[(0, 10), (1, 5)]);
        assert!(commits("g", &m(&[(0, 12), (1, 5)]), &acked).is_empty());
        let back = commits("g", &m(&[(0, 9), (1, 5)]), &acked);
        assert_eq!(back.len(), 1, "{back:?}");
        assert!(
            back[0].contains("9, below the acknowledged commit 10"),
            "{back:?}"
        );
        let gone = commits("g", &m(&[(0, 12)]), &acked);
        assert!(
            gone[0].contains("-1, below the acknowledged commit 5"),
            "{gone:?}"
        );
    }
}
