//! What authentication and authorization cost (issue 20), against the release broker:
//!
//! - `logins`: one SCRAM login, SHA-256 and SHA-512, on the native port (the client's
//!   `authenticate`) and on the Kafka port (SaslHandshake v1 and two SaslAuthenticate
//!   v2, the messages from the same `ScramClient`), timed from the first handshake
//!   request to the verified server signature on an open connection; and the client's
//!   own share, the PBKDF2 of the password (4096 iterations), timed alone.
//! - `acls`: librdkafka (rdkafka) produces then consumes N 100-byte messages as a SCRAM
//!   user who is no super-user, on a broker with `--require-auth kafka` alone and with
//!   `--acls` too (the user's grants are prefixed, on `bench-` topics and groups), in
//!   alternating rounds on fresh data directories; both log in the same way, so the
//!   ratio is what the ACL checks cost. Measured as the broker's CPU time per message
//!   (utime + stime from /proc/PID/stat), which the machine's noise moves far less
//!   than throughput; throughputs are printed beside it. Two producer shapes: big batches (linger 5 ms)
//!   and 10 messages a request (`batch.num.messages=10`), where a produce request's
//!   fixed costs, the check among them, weigh most.
//!
//! Users and ACLs are written with `peregrine user add` / `acl add --data-dir` before
//! each start. Prints one JSON line per measurement and medians at the end.
//!
//! `cargo bench --bench auth_costs -- [logins|acls|all] [LOGINS] [MESSAGES] [ROUNDS]`
//! (defaults all 200 300000 3).

#[path = "../tests/common/kafka_raw.rs"]
#[allow(dead_code)]
mod kafka_raw;

use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use peregrine::auth::sasl::ScramClient;
use peregrine::client::auth::Credentials;
use peregrine::embedded::BrokerProcess;
use peregrine_shards::security::users::ScramMechanism;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "benchu";
const PASSWORD: &str = "bench-password-1";
const SIZE: usize = 100;
/// Longest one produce or consume phase may take.
const PHASE_MAX: Duration = Duration::from_secs(300);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_peregrine"))
}

/// Runs the CLI; panics unless it succeeds.
fn cli(args: &[&str], stdin: &str) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the CLI");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("CLI");
    assert!(
        out.status.success(),
        "peregrine {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A data directory holding the bench user and its prefixed grants on `bench-` topics
/// and groups (written offline, before the broker starts).
fn prepared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 path");
    cli(
        &["user", "add", USER, "--data-dir", d],
        &format!("{PASSWORD}\n"),
    );
    let principal = format!("User:{USER}");
    for resource in ["--topic", "--group"] {
        cli(
            &[
                "acl",
                "add",
                "--allow-principal",
                &principal,
                "--operation",
                "All",
                resource,
                "bench-",
                "--resource-pattern-type",
                "prefixed",
                "--data-dir",
                d,
            ],
            "",
        );
    }
    dir
}

fn start(dir: &Path, extra: &[&str]) -> BrokerProcess {
    let mut flags = vec!["--shards", "2", "--cache-mb", "256"];
    flags.extend_from_slice(extra);
    let flags: Vec<String> = flags.into_iter().map(String::from).collect();
    BrokerProcess::spawn(bin(), dir, &flags).expect("start the broker")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

// ---- logins ----

/// One request/answer on a raw Kafka connection.
fn kafka_call<Req: Encodable, Resp: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    id: i32,
    req: &Req,
) -> Resp {
    let mut body = BytesMut::new();
    req.encode(&mut body, version).expect("encode");
    conn.write_all(&kafka_raw::request_frame(key, version, id, &body))
        .expect("send");
    let mut answer = kafka_raw::read_frame(conn).expect("answer");
    let header =
        ResponseHeader::decode(&mut answer, key.response_header_version(version)).expect("header");
    assert_eq!(header.correlation_id, id);
    Resp::decode(&mut answer, version).expect("body")
}

/// One SCRAM login on an open Kafka connection: its duration in µs.
fn kafka_login(conn: &mut TcpStream, mechanism: ScramMechanism) -> f64 {
    let start = Instant::now();
    let mut scram = ScramClient::new(mechanism, USER, PASSWORD).expect("client");
    let hs: SaslHandshakeResponse = kafka_call(
        conn,
        ApiKey::SaslHandshake,
        1,
        1,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name())),
    );
    assert_eq!(hs.error_code, 0, "handshake");
    let auth = |conn: &mut TcpStream, id: i32, bytes: Vec<u8>| -> SaslAuthenticateResponse {
        kafka_call(
            conn,
            ApiKey::SaslAuthenticate,
            2,
            id,
            &SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()),
        )
    };
    let first = auth(conn, 2, scram.client_first());
    assert_eq!(
        first.error_code, 0,
        "client-first: {:?}",
        first.error_message
    );
    let client_final = scram.server_first(&first.auth_bytes).expect("server-first");
    let last = auth(conn, 3, client_final);
    assert_eq!(last.error_code, 0, "client-final: {:?}", last.error_message);
    scram
        .server_final(&last.auth_bytes)
        .expect("server signature");
    start.elapsed().as_secs_f64() * 1e6
}

fn native_login(addr: &str, mechanism: peregrine::native::messages::ScramMechanism) -> f64 {
    let mut conn = peregrine::client::Connection::connect(addr).expect("connect");
    let credentials = Credentials::new(USER, PASSWORD, mechanism);
    let start = Instant::now();
    conn.authenticate(&credentials).expect("login");
    start.elapsed().as_secs_f64() * 1e6
}

fn report(what: &str, mut us: Vec<f64>) {
    let (p50, p99) = (percentile(&mut us, 0.5), percentile(&mut us, 0.99));
    println!(
        "{{\"measure\":\"{what}\",\"logins\":{},\"p50_us\":{p50:.0},\"p99_us\":{p99:.0}}}",
        us.len()
    );
}

fn logins(n: usize) {
    use peregrine::native::messages::ScramMechanism as Wire;
    let dir = prepared_dir();
    let broker = start(dir.path(), &["--require-auth", "native,kafka"]);
    for (mechanism, wire) in [
        (ScramMechanism::Sha256, Wire::ScramSha256),
        (ScramMechanism::Sha512, Wire::ScramSha512),
    ] {
        let name = mechanism.name();
        let native: Vec<f64> = (0..n).map(|_| native_login(&broker.addr, wire)).collect();
        report(&format!("native login {name}"), native);
        let kafka: Vec<f64> = (0..n)
            .map(|_| {
                let mut conn = TcpStream::connect(&broker.kafka_addr).expect("connect");
                conn.set_nodelay(true).expect("nodelay");
                kafka_login(&mut conn, mechanism)
            })
            .collect();
        report(&format!("kafka login {name}"), kafka);
        let pbkdf2: Vec<f64> = (0..n)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(mechanism.salted_password(
                    PASSWORD.as_bytes(),
                    b"0123456789abcdef0123456789abcdef",
                    4096,
                ));
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        report(&format!("client PBKDF2 4096 {name}"), pbkdf2);
    }
}

// ---- ACL checks on Kafka produce and fetch ----

fn sasl(config: &mut ClientConfig, bootstrap: &str) {
    config
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-256")
        .set("sasl.username", USER)
        .set("sasl.password", PASSWORD);
}

fn produce(bootstrap: &str, topic: &str, messages: usize, small: bool) -> f64 {
    let mut config = ClientConfig::new();
    sasl(&mut config, bootstrap);
    config
        .set("linger.ms", "5")
        .set("acks", "1")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    if small {
        config.set("batch.num.messages", "10");
    }
    let p: BaseProducer = config.create().expect("producer");
    let value = [b'x'; SIZE];
    let start = Instant::now();
    for _ in 0..messages {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&value[..])
            .partition(0);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    assert!(start.elapsed() < PHASE_MAX, "produce took too long");
                    p.poll(Duration::from_millis(1));
                    record = back;
                }
            }
        }
    }
    p.flush(PHASE_MAX).expect("flush");
    messages as f64 / start.elapsed().as_secs_f64()
}

fn consume(bootstrap: &str, topic: &str, messages: usize) -> f64 {
    let mut config = ClientConfig::new();
    sasl(&mut config, bootstrap);
    config
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000");
    let c: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut got = 0;
    while got < messages && start.elapsed() < PHASE_MAX {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("message");
            got += 1;
        }
    }
    assert_eq!(got, messages, "consumed everything");
    got as f64 / start.elapsed().as_secs_f64()
}

/// The pid of the broker serving `data_dir` (the one process whose command line names
/// it), found in /proc.
fn broker_pid(data_dir: &Path) -> u32 {
    let needle = data_dir.to_str().expect("utf-8 path");
    let entries = std::fs::read_dir("/proc").expect("/proc");
    let pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.starts_with(bin().to_str().unwrap_or("-")) && c.contains(needle)
            })
        })
        .collect();
    assert_eq!(pids.len(), 1, "one broker on {needle}: {pids:?}");
    pids[0]
}

/// The CPU time (user + system) process `pid` has used, in µs.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which ends at the last ')'): utime is the 12th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz * 1e6
}

/// One round on a fresh broker: (produce, consume) broker CPU µs per message; prints
/// the throughputs beside them.
fn round(acls: bool, messages: usize, small: bool) -> (f64, f64) {
    let dir = prepared_dir();
    let mut flags = vec!["--require-auth", "kafka", "--auto-create-topics"];
    if acls {
        flags.push("--acls");
    }
    let broker = start(dir.path(), &flags);
    let pid = broker_pid(dir.path());
    let topic = "bench-acl";
    let before = cpu_us(pid);
    let p = produce(&broker.kafka_addr, topic, messages, small);
    let produced = cpu_us(pid);
    let c = consume(&broker.kafka_addr, topic, messages);
    let consumed = cpu_us(pid);
    let (p_cpu, c_cpu) = (
        (produced - before) / messages as f64,
        (consumed - produced) / messages as f64,
    );
    println!(
        "{{\"acls\":{acls},\"batch\":\"{}\",\"messages\":{messages},\"produce_msgs_per_s\":{p:.0},\"consume_msgs_per_s\":{c:.0},\"produce_cpu_us_per_msg\":{p_cpu:.3},\"consume_cpu_us_per_msg\":{c_cpu:.3}}}",
        if small { "10" } else { "linger5" }
    );
    (p_cpu, c_cpu)
}

fn acl_costs(messages: usize, rounds: usize) {
    for small in [false, true] {
        let (mut produce_ratios, mut consume_ratios) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate which goes first, so a drift of the machine hits both.
            let (plain, checked) = if r % 2 == 0 {
                let plain = round(false, messages, small);
                (plain, round(true, messages, small))
            } else {
                let checked = round(true, messages, small);
                (round(false, messages, small), checked)
            };
            produce_ratios.push(checked.0 / plain.0);
            consume_ratios.push(checked.1 / plain.1);
        }
        let shape = if small { "10 a request" } else { "linger 5 ms" };
        println!(
            "broker CPU per message, acls/plain ({shape}): produce {:?} median {:.3}; consume {:?} median {:.3}",
            produce_ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>(),
            percentile(&mut produce_ratios.clone(), 0.5),
            consume_ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>(),
            percentile(&mut consume_ratios.clone(), 0.5),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let what = args.first().map_or("all", String::as_str);
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let messages: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    if matches!(what, "logins" | "all") {
        logins(n);
    }
    if matches!(what, "acls" | "all") {
        acl_costs(messages, rounds);
    }
}
