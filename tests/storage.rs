//! Storage through the real broker: torn tails, lost indexes and retention, each
//! checked after a restart (flipped bytes: tests/torn_bytes.rs).

mod common;
use common::{run_cli, Broker};
use peregrine_shards::batch::BatchHeader;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The segment files of partition 0 of `topic`, oldest first.
fn segments(data_dir: &Path, topic: &str, ext: &str) -> Vec<PathBuf> {
    let topics = data_dir.join("topics");
    let dir = std::fs::read_dir(&topics)
        .expect("topics dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{topic}-")))
        })
        .expect("topic dir")
        .join("0");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

/// Byte ranges of the valid batches at the start of a segment file.
fn batch_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(h) = BatchHeader::parse(&bytes[pos..]) {
        if h.batch_length <= 0 || pos + h.total_len() > bytes.len() {
            break;
        }
        out.push((pos, pos + h.total_len()));
        pos += h.total_len();
    }
    out
}

/// Filler that makes each message about 110 bytes, so segments roll at test sizes.
const PAD: &str = "................................................................................................";

fn produce_batches(b: &Broker, topic: &str, batches: usize, per_batch: usize) {
    for i in 0..batches {
        let input: String = (0..per_batch)
            .map(|j| format!("b{i}-{j} {PAD}\n"))
            .collect();
        run_cli(
            &[
                "produce",
                topic,
                "--partition",
                "0",
                "--acks",
                "durable",
                "--bootstrap",
                &b.addr,
            ],
            &input,
        );
    }
}

fn consume_all(b: &Broker, topic: &str) -> Vec<String> {
    run_cli(
        &[
            "consume",
            topic,
            "--partition",
            "0",
            "--format",
            "%o %v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    )
    .lines()
    .map(String::from)
    .collect()
}

fn expected(batches: usize, per_batch: usize) -> Vec<String> {
    (0..batches)
        .flat_map(|i| (0..per_batch).map(move |j| (i, j)))
        .enumerate()
        .map(|(o, (i, j))| format!("{o} b{i}-{j} {PAD}"))
        .collect()
}

#[test]
fn torn_tail_is_truncated_on_restart() {
    let mut b = Broker::start();
    b.create_topic("torn", 1);
    produce_batches(&b, "torn", 10, 10);
    assert!(b.stop());
    let log = segments(&b.data_dir, "torn", "log")
        .pop()
        .expect("a segment");
    let original = std::fs::read(&log).expect("read segment");
    let ranges = batch_ranges(&original);
    assert_eq!(ranges.len(), 10);
    let (last_start, last_end) = ranges[9];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cut = last_start + 1 + (x as usize % (last_end - last_start - 1));
        let mut torn = original[..cut].to_vec();
        if round % 2 == 1 {
            // Noise after the cut, the file still ending inside the batch (noise
            // through the batch's end would be a complete batch failing its CRC32C:
            // damage, which refuses the start, see tests/torn_bytes.rs).
            torn.extend(std::iter::repeat_n(0xab, 300.min(last_end - cut - 1)));
        }
        std::fs::write(&log, &torn).expect("write torn segment");
        b.restart();
        assert_eq!(consume_all(&b, "torn"), expected(9, 10), "cut at {cut}");
        // Appends continue right after the last whole batch.
        run_cli(
            &[
                "produce",
                "torn",
                "--partition",
                "0",
                "--acks",
                "durable",
                "--bootstrap",
                &b.addr,
            ],
            "again\n",
        );
        let all = consume_all(&b, "torn");
        assert_eq!(all.last().map(String::as_str), Some("90 again"));
        assert!(b.stop());
    }
}

#[test]
fn deleted_index_is_rebuilt() {
    let mut b = Broker::start();
    run_cli(
        &[
            "topic",
            "create",
            "idx",
            "--segment-bytes",
            "65536",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    produce_batches(&b, "idx", 40, 100);
    assert!(b.stop());
    let indexes = segments(&b.data_dir, "idx", "index");
    assert!(indexes.len() > 2, "several segments rolled: {indexes:?}");
    for i in &indexes {
        std::fs::remove_file(i).expect("delete index");
    }
    // And a damaged one: garbage in the newest index.
    std::fs::write(indexes.last().expect("index"), b"garbage!").expect("write");
    b.restart();
    assert_eq!(consume_all(&b, "idx"), expected(40, 100));
    let mid = run_cli(
        &[
            "consume",
            "idx",
            "--partition",
            "0",
            "--from",
            "2345",
            "--max",
            "1",
            "--format",
            "%o %v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert_eq!(mid, format!("{}\n", expected(40, 100)[2345]));
}

#[test]
fn retention_by_bytes_and_time_removes_only_whole_segments() {
    let b = Broker::start_with(&["--retention-check-ms", "100"]);
    let bs = b.addr.as_str();
    run_cli(
        &[
            "topic",
            "create",
            "sized",
            "--segment-bytes",
            "65536",
            "--retention-bytes",
            "200000",
            "--bootstrap",
            bs,
        ],
        "",
    );
    run_cli(
        &[
            "topic",
            "create",
            "timed",
            "--segment-bytes",
            "65536",
            "--retention-ms",
            "1000",
            "--bootstrap",
            bs,
        ],
        "",
    );
    produce_batches(&b, "sized", 60, 100);
    produce_batches(&b, "timed", 30, 100);
    std::thread::sleep(Duration::from_millis(2500));
    for topic in ["sized", "timed"] {
        let desc = run_cli(&["topic", "describe", topic, "--bootstrap", bs], "");
        let row: Vec<i64> = desc
            .lines()
            .nth(2)
            .expect("row")
            .split('\t')
            .map(|f| f.parse().expect("number"))
            .collect();
        let (start, end, bytes) = (row[2], row[3], row[4]);
        assert!(start > 0, "{topic}: old segments removed: {desc}");
        assert_eq!(end, if topic == "sized" { 6000 } else { 3000 });
        if topic == "sized" {
            assert!(
                (200_000 - 65_536..=200_000 + 65_536).contains(&bytes),
                "{desc}"
            );
        }
        // What is left starts at a segment boundary and is whole and contiguous.
        let left = consume_all(&b, topic);
        assert_eq!(left.len() as i64, end - start, "{topic}");
        assert!(
            left[0].starts_with(&format!("{start} ")),
            "{topic}: {}",
            left[0]
        );
        let seg_bases: Vec<i64> = segments(&b.data_dir, topic, "log")
            .iter()
            .map(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
                    .expect("base")
            })
            .collect();
        assert_eq!(
            seg_bases[0], start,
            "{topic}: start offset is a segment base"
        );
    }
}
