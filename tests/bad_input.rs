//! Bad input gets a clear error (or a logged close), never a crash, never a write, and
//! every other client keeps being served.

mod common;
use common::Broker;
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine::client::{Client, Connection};
use peregrine::native::frame;
use peregrine::native::messages::{
    Acks, ErrorCode, OffsetSpec, Request, RequestEnvelope, Response,
};
use std::io::Read;
use std::time::Duration;

fn batch(values: &[&str]) -> bytes::BytesMut {
    let records: Vec<OutRecord> = values
        .iter()
        .map(|v| OutRecord {
            key: None,
            value: bytes::Bytes::copy_from_slice(v.as_bytes()),
            timestamp_ms: 1,
        })
        .collect();
    encode_batch(&records).expect("encode")
}

/// After each bad case: the broker still runs, a fresh client produces and consumes, and
/// the log holds exactly what was acknowledged.
fn assert_still_serving(b: &mut Broker, expected_end: i64) {
    assert!(b.is_running(), "broker died");
    let mut c = b.client();
    assert_eq!(
        c.list_offset("t", 0, OffsetSpec::Latest).expect("offsets"),
        expected_end
    );
    let acked = c
        .produce("t", 0, Acks::Leader, &batch(&["ok"]))
        .expect("produce")
        .expect("ack");
    assert_eq!(acked.0, expected_end);
    let fetched = c.fetch("t", 0, expected_end, 1 << 20, 0).expect("fetch");
    let records = peregrine::client::records::decode_batches(0, fetched.batches, expected_end)
        .expect("decode");
    assert_eq!(records.len(), 1);
}

fn closed_with_error(mut raw: std::net::TcpStream) -> Vec<u8> {
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    got
}

fn error_code(bytes: &[u8]) -> Option<ErrorCode> {
    let mut head = [0u8; frame::HEAD_LEN];
    head.copy_from_slice(bytes.get(..frame::HEAD_LEN)?);
    let head = frame::parse_head(head, 1 << 20).ok()?;
    let env = frame::decode_response(
        bytes.get(frame::HEAD_LEN..frame::HEAD_LEN + head.envelope_len as usize)?,
    )
    .ok()?;
    match env.response {
        Response::Error { code, .. } => Some(code),
        _ => None,
    }
}

#[test]
fn garbage_truncated_and_oversized_frames_are_refused() {
    let mut b = Broker::start_with(&["--max-frame-bytes", "65536"]);
    b.create_topic("t", 1);
    let mut end = 0;
    // Garbage bytes: an absurd length prefix.
    let mut raw = std::net::TcpStream::connect(&b.addr).expect("connect");
    std::io::Write::write_all(&mut raw, b"\xde\xad\xbe\xef garbage garbage garbage")
        .expect("write");
    let got = closed_with_error(raw);
    assert!(
        matches!(error_code(&got), Some(ErrorCode::InvalidRequest)),
        "garbage answered with an error then closed"
    );
    assert_still_serving(&mut b, end);
    end += 1;

    // A length prefix over --max-frame-bytes.
    let mut raw = std::net::TcpStream::connect(&b.addr).expect("connect");
    let mut head = (1u32 << 20).to_be_bytes().to_vec();
    head.extend_from_slice(&16u32.to_be_bytes());
    std::io::Write::write_all(&mut raw, &head).expect("write");
    let got = closed_with_error(raw);
    assert!(matches!(error_code(&got), Some(ErrorCode::InvalidRequest)));
    assert_still_serving(&mut b, end);
    end += 1;

    // A frame cut short, then the client disconnects.
    let env = RequestEnvelope {
        id: 1,
        request: Request::Produce {
            topic: "t".into(),
            partition: 0,
            acks: Acks::Leader,
        },
    };
    let payload = batch(&["never"]);
    let mut bytes = frame::encode_request(&env, payload.len()).expect("encode");
    bytes.extend_from_slice(&payload);
    let mut raw = std::net::TcpStream::connect(&b.addr).expect("connect");
    std::io::Write::write_all(&mut raw, &bytes[..bytes.len() - 5]).expect("write");
    drop(raw);
    std::thread::sleep(Duration::from_millis(200));
    assert_still_serving(&mut b, end);
    end += 1;

    // An envelope that is not rkyv: answered, and the connection goes on.
    let mut conn = Connection::connect(&b.addr).expect("connect");
    let mut junk = 12u32.to_be_bytes().to_vec();
    junk.extend_from_slice(&8u32.to_be_bytes());
    junk.extend_from_slice(&[0xff; 8]);
    conn.send_raw(&junk).expect("send");
    let (_, response, _) = conn.recv().expect("answer");
    assert!(
        matches!(
            response,
            Response::Error {
                code: ErrorCode::InvalidRequest,
                ..
            }
        ),
        "{response:?}"
    );
    let (response, _) = conn
        .call(Request::Metadata { topics: None }, &[])
        .expect("still served");
    assert!(matches!(response, Response::Metadata { .. }));
    assert_still_serving(&mut b, end);
}

#[test]
fn unknown_topic_partition_offset_and_bad_crc_get_clear_errors() {
    let mut b = Broker::start();
    b.create_topic("t", 1);
    let mut c = b.client();
    let err = c
        .produce("nope", 0, Acks::Leader, &batch(&["x"]))
        .expect_err("unknown topic");
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic));
    assert!(
        err.to_string().contains("peregrine topic create nope"),
        "{err}"
    );
    let err = c.fetch("t", 7, 0, 1024, 0).expect_err("unknown partition");
    assert_eq!(err.code(), Some(ErrorCode::UnknownPartition));
    let err = c
        .fetch("t", 0, 99, 1024, 0)
        .expect_err("offset out of range");
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange));

    // A batch whose CRC does not match: refused, nothing written.
    let mut bad = batch(&["corrupt me"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let err = c.produce("t", 0, Acks::Durable, &bad).expect_err("bad crc");
    assert_eq!(err.code(), Some(ErrorCode::CorruptBatch), "{err}");
    // Bytes that are not a batch at all, and a batch followed by trailing junk.
    let err = c
        .produce("t", 0, Acks::Leader, b"not a batch")
        .expect_err("junk");
    assert_eq!(err.code(), Some(ErrorCode::CorruptBatch));
    let mut trailing = batch(&["a"]).to_vec();
    trailing.extend_from_slice(b"xx");
    let err = c
        .produce("t", 0, Acks::Leader, &trailing)
        .expect_err("trailing");
    assert_eq!(err.code(), Some(ErrorCode::CorruptBatch));
    assert_still_serving(&mut b, 0);
}

#[test]
fn one_bad_client_does_not_disturb_a_busy_one() {
    let mut b = Broker::start();
    b.create_topic("t", 1);
    let addr = b.addr.clone();
    let good = std::thread::spawn(move || {
        let mut c = Client::connect(&addr).expect("connect");
        for i in 0..200 {
            let r = c
                .produce("t", 0, Acks::Leader, &batch(&["v"]))
                .expect("produce");
            assert_eq!(r.map(|r| r.0), Some(i));
        }
    });
    for _ in 0..20 {
        let mut raw = std::net::TcpStream::connect(&b.addr).expect("connect");
        let _ = std::io::Write::write_all(
            &mut raw,
            &[0x00, 0x00, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        );
    }
    good.join().expect("good client unaffected");
    assert_still_serving(&mut b, 200);
}
