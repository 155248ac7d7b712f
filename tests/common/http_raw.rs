//! An HTTP/1.1 exchange at the byte level, for what an SDK never sends: raw bytes on a
//! connection of their own, and everything the broker answers until it closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long any one exchange may last.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// An answer: its status (0 when none could be read), its head in lower case, its body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends raw bytes on a new connection and reads until the server closes or
/// `DEADLINE`.
pub fn exchange(addr: &str, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect HTTP");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    // The server may refuse (and close) before it has read everything.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}
