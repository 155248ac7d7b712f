//! Connection plumbing every front end shares: an accepted socket made ready for a
//! reader task and a writer task on its shard.

use crate::runtime::TcpStream;
use futures_lite::{future, AsyncRead, AsyncWrite};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;

/// A connection's socket, shared by its reader and writer tasks on one shard.
pub type Stream = Rc<RefCell<TcpStream>>;

/// Reads from a stream shared by the reader and writer tasks. The borrow lasts for one
/// poll only, never across an await; glommio keeps separate read and write sources.
pub async fn read_some(stream: &Stream, buf: &mut [u8]) -> std::io::Result<usize> {
    future::poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, buf)).await
}

pub async fn write_all(stream: &Stream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n =
            future::poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// An accepted connection made ready for a reader and a writer task: its peer's
/// address (for logs) and the shared stream, with Nagle off.
pub fn adopt(stream: TcpStream) -> (String, Stream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    (peer, Rc::new(RefCell::new(stream)))
}
