//! The log on a full filesystem: a small tmpfs this test mounts itself (root), filled
//! with a filler file until ENOSPC. What the log accepted before the disk filled stays
//! queued and is written once space is freed, without reopening the log.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::*;
use crate::batch::BatchHeader;
use crate::records::BatchBuilder;
use crate::test_support::{run, SmallFs};

/// One batch of one record whose value is `len` bytes of `tag`.
fn batch(tag: u8, len: usize) -> BytesMut {
    let mut b = BatchBuilder::new(1, len + 64);
    b.push(None, Some(&vec![tag; len]), 1, &[]);
    BytesMut::from(&b.finish().expect("a batch")[..])
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        preallocate_bytes: 64 << 10,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path) -> Rc<PartitionLog> {
    PartitionLog::open(dir.to_owned(), config(), BatchCache::new(1 << 20))
        .await
        .expect("open log")
}

/// The first value byte of every record from offset 0 on, in offset order.
async fn tags(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 0;
    while next < log.end_offset() {
        let read = log.read(next, 1 << 20).await.expect("read");
        for bytes in &read.batches {
            let header = BatchHeader::parse(bytes).expect("header");
            for record in crate::records::records(bytes).expect("records") {
                let value = record.expect("record").value.expect("value");
                out.push(value[0]);
            }
            next = header.last_offset() + 1;
        }
    }
    out
}

#[test]
fn appends_taken_before_the_disk_filled_are_written_once_space_is_freed() {
    let Some(mut fs) = SmallFs::mount(8) else {
        return;
    };
    run(move || async move {
        let dir = fs.path().join("partition");
        let log = open(&dir).await;
        let mut accepted = Vec::new();
        for tag in 0..4u8 {
            let appended = log.append(batch(tag, 1000)).expect("append");
            log.wait_durable(appended.last_offset)
                .await
                .expect("durable");
            accepted.push(tag);
        }

        fs.fill();
        // acks=leader appends are taken into memory until a write finds no space:
        // then appends are refused. Bounded: 64 KiB segments of 4 KiB batches.
        let mut refused = None;
        for tag in 4..200u8 {
            match log.append(batch(tag, 4000)) {
                Ok(_) => accepted.push(tag),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            // Lets the flusher write what was taken.
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            matches!(refused, Some(LogError::StorageFull { .. })),
            "appends refused as StorageFull: {refused:?}"
        );
        let last = log.end_offset() - 1;
        assert!(log.durable_offset() <= last, "something is left to write");
        let waited = log.wait_durable(last).await;
        assert!(
            matches!(waited, Err(LogError::StorageFull { .. })),
            "a durable wait on a full disk is answered with the storage error: {waited:?}"
        );
        assert_eq!(tags(&log).await, accepted, "taken data is still served");

        fs.free();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match log.wait_durable(last).await {
                Ok(()) => break,
                Err(LogError::StorageFull { .. }) if Instant::now() < deadline => {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("durable once space is back: {other:?}"),
            }
        }
        log.append(batch(250, 100)).expect("appends accepted again");
        accepted.push(250);
        log.close().await.expect("close");
        drop(log);

        let log = open(&dir).await;
        assert_eq!(
            tags(&log).await,
            accepted,
            "every accepted batch, once, in order"
        );
        log.close().await.expect("close");
        drop(fs);
    });
}
