//! Consumer groups: every group gets every message; inside a group partitions are split
//! between members; a dead member's partitions move to the others, who resume from its
//! last commit.

mod common;
use common::{run_cli, Broker, BIN};
use peregrine::native::messages::{CommitEntry, Request, Response};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn produce(b: &Broker, topic: &str, from: usize, to: usize) {
    let input: String = (from..to).map(|i| format!("k{i}:m{i}\n")).collect();
    run_cli(
        &[
            "produce",
            topic,
            "--key-separator",
            ":",
            "--acks",
            "durable",
            "--bootstrap",
            &b.addr,
        ],
        &input,
    );
}

#[test]
fn second_group_receives_every_message() {
    let b = Broker::start();
    b.create_topic("events", 3);
    produce(&b, "events", 0, 300);
    let sorted = |s: String| s.lines().map(String::from).collect::<BTreeSet<_>>();
    let g1 = sorted(run_cli(
        &["consume", "events", "--group", "g1", "--bootstrap", &b.addr],
        "",
    ));
    let g2 = sorted(run_cli(
        &["consume", "events", "--group", "g2", "--bootstrap", &b.addr],
        "",
    ));
    let all: BTreeSet<String> = (0..300).map(|i| format!("m{i}")).collect();
    assert_eq!(g1, all);
    assert_eq!(g2, all);
    // g1 committed everything: a new member of g1 reads nothing old.
    produce(&b, "events", 300, 310);
    let again = sorted(run_cli(
        &["consume", "events", "--group", "g1", "--bootstrap", &b.addr],
        "",
    ));
    assert_eq!(again, (300..310).map(|i| format!("m{i}")).collect());
}

/// A `peregrine consume --group --follow` process and the lines it printed.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<(i32, i64, String)>>>,
}

impl Member {
    fn start(b: &Broker, topic: &str, group: &str) -> Member {
        let mut child = Command::new(BIN)
            .args([
                "consume",
                topic,
                "--group",
                group,
                "--follow",
                "--session-timeout-ms",
                "1500",
            ])
            .args(["--format", "%p %o %v", "--bootstrap", &b.addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn consumer");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(p), Some(o), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                    sink.lock().expect("lock").push((p, o, v.to_string()));
                }
            }
        });
        Member { child, lines }
    }

    fn partitions(&self) -> BTreeSet<i32> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .map(|l| l.0)
            .collect()
    }

    fn values(&self) -> BTreeSet<String> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .map(|l| l.2.clone())
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn describe(b: &Broker, group: &str) -> (String, BTreeMap<String, Vec<i32>>) {
    match b
        .client()
        .call(
            Request::DescribeGroup {
                group: group.into(),
            },
            &[],
        )
        .expect("describe")
        .0
    {
        Response::GroupDescribed { state, members, .. } => (
            state,
            members
                .into_iter()
                .map(|m| {
                    (
                        m.member_id,
                        m.assignment
                            .into_iter()
                            .flat_map(|a| a.partitions)
                            .collect(),
                    )
                })
                .collect(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stable_split(b: &Broker, group: &str, members: usize) -> BTreeMap<String, Vec<i32>> {
    let mut split = BTreeMap::new();
    wait_until("a stable assignment", Duration::from_secs(30), || {
        let (state, m) = describe(b, group);
        let ok = state == "Stable" && m.len() == members;
        split = m;
        ok
    });
    split
}

#[test]
fn three_members_split_six_partitions_and_take_over_from_a_dead_one() {
    let b = Broker::start();
    b.create_topic("work", 6);
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(&b, "work", "crew")).collect();
    let split = stable_split(&b, "crew", 3);
    let mut all_parts = Vec::new();
    for parts in split.values() {
        assert_eq!(parts.len(), 2, "each member owns two partitions: {split:?}");
        all_parts.extend(parts.iter().copied());
    }
    all_parts.sort();
    assert_eq!(
        all_parts,
        vec![0, 1, 2, 3, 4, 5],
        "every partition exactly once"
    );

    produce(&b, "work", 0, 600);
    let everything: BTreeSet<String> = (0..600).map(|i| format!("m{i}")).collect();
    wait_until("all 600 messages consumed", Duration::from_secs(30), || {
        members
            .iter()
            .flat_map(|m| m.values())
            .collect::<BTreeSet<_>>()
            == everything
    });
    // Inside one group nothing was read by two members.
    let per_member: Vec<BTreeSet<i32>> = members.iter().map(Member::partitions).collect();
    for i in 0..3 {
        for j in (i + 1)..3 {
            assert!(
                per_member[i].is_disjoint(&per_member[j]),
                "partition read by two members: {per_member:?}"
            );
        }
    }

    // Kill one member; its partitions go to the others, from its last commit.
    let victim = members.remove(0);
    let victim_parts = victim.partitions();
    drop(victim);
    let committed: BTreeMap<i32, i64> = {
        let mut c = b.client();
        c.committed("crew", "work")
            .expect("committed")
            .into_iter()
            .map(|e| (e.partition, e.offset))
            .collect()
    };
    let seen_before: Vec<usize> = members
        .iter()
        .map(|m| m.lines.lock().expect("lock").len())
        .collect();
    let killed_at = Instant::now();
    stable_split(&b, "crew", 2);
    // Detected within the 1.5 s session timeout, then one rebalance round (the bound
    // leaves room for a loaded CI machine; here it takes about 2 s).
    let handover = killed_at.elapsed();
    assert!(
        handover < Duration::from_secs(8),
        "hand-over took {handover:?}"
    );
    produce(&b, "work", 600, 900);
    let late: BTreeSet<String> = (600..900).map(|i| format!("m{i}")).collect();
    wait_until(
        "the survivors read every new message",
        Duration::from_secs(30),
        || {
            let got: BTreeSet<String> = members.iter().flat_map(|m| m.values()).collect();
            late.is_subset(&got)
        },
    );
    for (m, before) in members.iter().zip(seen_before) {
        let lines = m.lines.lock().expect("lock");
        for p in &victim_parts {
            if let Some(first) = lines[before..].iter().find(|l| l.0 == *p) {
                assert_eq!(
                    Some(&first.1),
                    committed.get(p),
                    "partition {p} resumed at the dead member's commit"
                );
            }
        }
    }
}

fn commit(c: &mut peregrine::client::Client, group: &str, partition: i32, offset: i64) {
    let offsets = vec![CommitEntry {
        topic: "t".into(),
        partition,
        offset,
    }];
    let request = Request::CommitOffsets {
        group: group.into(),
        member_id: String::new(),
        generation: -1,
        offsets,
    };
    match c.call(request, &[]) {
        Ok((Response::Ok, _)) => {}
        other => panic!("commit {group} p{partition}={offset}: {other:?}"),
    }
}

fn fetch(b: &Broker, group: &str) -> Vec<(i32, i64)> {
    let request = Request::FetchOffsets {
        group: group.into(),
        topic: "t".into(),
    };
    match b.client().call(request, &[]) {
        Ok((Response::Offsets { offsets }, _)) => {
            offsets.iter().map(|c| (c.partition, c.offset)).collect()
        }
        other => panic!("fetch {group}: {other:?}"),
    }
}

fn list_groups(b: &Broker) -> Vec<String> {
    match b.client().call(Request::ListGroups, &[]) {
        Ok((Response::Groups { groups }, _)) => groups.into_iter().map(|(g, _)| g).collect(),
        other => panic!("list groups: {other:?}"),
    }
}

/// Groups spread over both shards (the owner is a hash of the id).
const GROUPS: usize = 8;

#[test]
fn committed_offsets_are_in_each_shards_offsets_log_and_survive_kill_9() {
    let mut b = Broker::start();
    b.create_topic("t", 3);
    let mut c = b.client();
    for round in 0..20i64 {
        for g in 0..GROUPS {
            commit(
                &mut c,
                &format!("g{g}"),
                (round % 3) as i32,
                100 * g as i64 + round,
            );
        }
    }
    b.kill9();
    b.restart();
    let mut want_groups: Vec<String> = (0..GROUPS).map(|g| format!("g{g}")).collect();
    want_groups.sort();
    assert_eq!(list_groups(&b), want_groups);
    for g in 0..GROUPS {
        let base = 100 * g as i64;
        // The last round that wrote each partition: 18 (p0), 19 (p1), 17 (p2).
        let want = vec![(0, base + 18), (1, base + 19), (2, base + 17)];
        assert_eq!(fetch(&b, &format!("g{g}")), want, "g{g}");
    }
    // One partition log per shard holds them, not a file per group.
    let logs = b.data_dir.join("groups").join("__consumer_offsets");
    for shard in ["0", "1"] {
        let segment = logs.join(shard).join(format!("{:020}.log", 0));
        assert!(segment.is_file(), "{} exists", segment.display());
    }
    assert!(!b.data_dir.join("groups").join("g0").exists());
}

/// An offsets file as releases before the offsets log wrote it (groups/<id>/offsets.log).
fn write_old_offsets(groups_dir: &std::path::Path, group: &str, entries: &[(i32, i64)]) {
    let dir = groups_dir.join(group);
    std::fs::create_dir_all(&dir).expect("old group dir");
    let offsets: Vec<String> = entries
        .iter()
        .map(|(p, o)| format!(r#"{{"t":"t","p":{p},"o":{o},"m":""}}"#))
        .collect();
    let payload = format!(r#"{{"v":1,"o":[{}]}}"#, offsets.join(","));
    let mut file = (payload.len() as u32).to_le_bytes().to_vec();
    file.extend_from_slice(&crc32c::crc32c(payload.as_bytes()).to_le_bytes());
    file.extend_from_slice(payload.as_bytes());
    std::fs::write(dir.join("offsets.log"), file).expect("old offsets file");
}

#[test]
fn offsets_of_an_older_release_are_served_after_the_upgrade_and_their_files_removed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let groups_dir = tmp.path().join("groups");
    for g in 0..GROUPS {
        write_old_offsets(
            &groups_dir,
            &format!("old{g}"),
            &[(0, g as i64), (1, 10 + g as i64)],
        );
    }
    let mut b = Broker::start_in(tmp.path(), &[]);
    for g in 0..GROUPS {
        assert_eq!(
            fetch(&b, &format!("old{g}")),
            vec![(0, g as i64), (1, 10 + g as i64)]
        );
        assert!(
            !groups_dir.join(format!("old{g}")).exists(),
            "old{g}'s old directory removed"
        );
    }
    let mut c = b.client();
    commit(&mut c, "old0", 0, 99);
    b.kill9();
    b.restart();
    assert_eq!(fetch(&b, "old0"), vec![(0, 99), (1, 10)]);
    assert_eq!(fetch(&b, "old1"), vec![(0, 1), (1, 11)]);
    assert_eq!(list_groups(&b).len(), GROUPS);
}

/// How long the committers run before the kill at most (each also stops at its first
/// failed commit, which the kill causes).
const COMMITTING_MAX: Duration = Duration::from_secs(20);

#[test]
fn no_answered_commit_is_lost_when_the_broker_is_killed_while_committing() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let mut b = Broker::start();
    b.create_topic("t", 1);
    let stop = Arc::new(AtomicBool::new(false));
    // Per group: (last offset answered Ok, last offset sent).
    let progress: Vec<Arc<(AtomicI64, AtomicI64)>> = (0..GROUPS)
        .map(|_| Arc::new((AtomicI64::new(-1), AtomicI64::new(-1))))
        .collect();
    let committers: Vec<_> = progress
        .iter()
        .enumerate()
        .map(|(g, p)| {
            let (p, stop, mut c) = (p.clone(), stop.clone(), b.client());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut offset = 0i64;
                while !stop.load(Ordering::Relaxed) && start.elapsed() < COMMITTING_MAX {
                    p.1.store(offset, Ordering::SeqCst);
                    let request = Request::CommitOffsets {
                        group: format!("crash{g}"),
                        member_id: String::new(),
                        generation: -1,
                        offsets: vec![CommitEntry {
                            topic: "t".into(),
                            partition: 0,
                            offset,
                        }],
                    };
                    match c.call(request, &[]) {
                        Ok((Response::Ok, _)) => p.0.store(offset, Ordering::SeqCst),
                        _ => break, // The broker is gone.
                    }
                    offset += 1;
                }
            })
        })
        .collect();
    wait_until(
        "commits answered in every group",
        Duration::from_secs(20),
        || progress.iter().all(|p| p.0.load(Ordering::SeqCst) >= 50),
    );
    b.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in committers {
        t.join().expect("committer thread");
    }
    b.restart();
    for (g, p) in progress.iter().enumerate() {
        let (answered, sent) = (p.0.load(Ordering::SeqCst), p.1.load(Ordering::SeqCst));
        let got = fetch(&b, &format!("crash{g}"));
        assert_eq!(got.len(), 1, "crash{g}: {got:?}");
        let offset = got[0].1;
        assert!(
            (answered..=sent).contains(&offset),
            "crash{g}: committed {offset} after the kill; answered up to {answered}, sent up to {sent}"
        );
    }
}
