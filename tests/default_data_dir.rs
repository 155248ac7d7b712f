//! The README's `peregrine serve` uses the default data directory `./peregrine-data`, a
//! relative path: the broker must work from it. (Its own test binary, because it
//! changes the process's working directory.)

mod common;
use common::{run_cli, BIN};
use peregrine::embedded::BrokerProcess;
use std::path::Path;
use std::time::Duration;

#[test]
fn relative_data_dir_serves_topics_and_survives_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::env::set_current_dir(tmp.path()).expect("cd");
    let data = Path::new("./peregrine-data");
    let mut b = BrokerProcess::spawn(Path::new(BIN), data, &[]).expect("broker starts");
    run_cli(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    let input = "alice:1\nbob:2\nalice:3\n";
    run_cli(
        &[
            "produce",
            "orders",
            "--key-separator",
            ":",
            "--acks",
            "durable",
            "--bootstrap",
            &b.addr,
        ],
        input,
    );
    let out = run_cli(
        &[
            "consume",
            "orders",
            "--format",
            "%k %v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(b.stop(Duration::from_secs(30)), "clean shutdown");
    assert!(tmp.path().join("peregrine-data/meta/topics.json").exists());
    let b = BrokerProcess::spawn(Path::new(BIN), data, &[]).expect("broker restarts");
    let again = run_cli(
        &[
            "consume",
            "orders",
            "--format",
            "%k %v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert_eq!(again, out);
}
