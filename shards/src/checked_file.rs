//! The CRC32C frame of the broker's small metadata files (the catalog, producer ids, a
//! partition's log start and producer snapshot), so that a torn or flipped byte in one
//! is found when it is read back instead of being taken for a different value.
//!
//! A file is one header line, then the body:
//!
//! ```text
//! peregrine-checked crc32c=1a2b3c4d len=1234\n<1234 body bytes>
//! ```
//!
//! The CRC32C covers the body; `len` is its length, so a file cut short (or grown) is
//! told apart from a damaged one. Files written before this frame existed are the bare
//! body (JSON or a decimal number): `open` hands them back as `Legacy`, and they gain the
//! frame the next time they are written. A damaged frame can never pass for a legacy
//! file: the header starts with a letter, which neither old format does (one flipped
//! bit of 'p' makes no digit, '{' or whitespace either).
//!
//! Pure functions; usable from any thread.

/// First bytes of every checked file.
const MAGIC: &[u8] = b"peregrine-checked ";
/// Longest header line accepted: the magic, two fields and the newline.
const HEADER_BYTES_MAX: usize = 80;

/// What a file held, once its frame was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened<'a> {
    /// A framed file whose length and CRC32C match: the body.
    Checked(&'a [u8]),
    /// A file written before the frame existed: the bytes as they are, unchecked.
    Legacy(&'a [u8]),
}

impl<'a> Opened<'a> {
    pub fn body(&self) -> &'a [u8] {
        match self {
            Opened::Checked(b) | Opened::Legacy(b) => b,
        }
    }
}

/// `body` in its frame, ready to be written.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let header = format!(
        "peregrine-checked crc32c={:08x} len={}\n",
        crc32c::crc32c(body),
        body.len()
    );
    let mut out = Vec::with_capacity(header.len() + body.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks a file's frame. `Err` says what is wrong: the file is damaged or torn.
pub fn open(bytes: &[u8]) -> Result<Opened<'_>, String> {
    if !looks_framed(bytes) {
        return Ok(Opened::Legacy(bytes));
    }
    if !bytes.starts_with(MAGIC) {
        return Err("the checksum header is damaged or cut short".into());
    }
    let line_end = bytes
        .iter()
        .take(HEADER_BYTES_MAX)
        .position(|b| *b == b'\n')
        .ok_or("the checksum header line is cut short or damaged")?;
    let header = std::str::from_utf8(&bytes[MAGIC.len()..line_end])
        .map_err(|_| "the checksum header is damaged (not text)")?;
    let (crc, len) = parse_fields(header)?;
    let body = &bytes[line_end + 1..];
    if body.len() != len {
        return Err(format!(
            "the body is {} bytes, its header says {len}: the file is torn or damaged",
            body.len()
        ));
    }
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(format!(
            "CRC32C of the body is {actual:08x}, its header says {crc:08x}: the file is damaged"
        ));
    }
    Ok(Opened::Checked(body))
}

/// Whether the file starts as a frame would: any prefix of the magic with one letter
/// or more, or anything starting with a letter. Legacy files start with a digit, '{',
/// '-' or whitespace.
fn looks_framed(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b.is_ascii_alphabetic())
}

/// `crc32c=<8 hex> len=<decimal>`, exactly.
fn parse_fields(header: &str) -> Result<(u32, usize), String> {
    let damaged = || format!("the checksum header '{header}' is damaged");
    let mut words = header.split(' ');
    let crc = words
        .next()
        .and_then(|w| w.strip_prefix("crc32c="))
        .filter(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(damaged)?;
    let len = words
        .next()
        .and_then(|w| w.strip_prefix("len="))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or_else(damaged)?;
    if words.next().is_some() {
        return Err(damaged());
    }
    Ok((crc, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_body_reads_back_and_a_bare_one_is_legacy() {
        let framed = frame(b"{\"version\":3}");
        assert_eq!(open(&framed), Ok(Opened::Checked(&b"{\"version\":3}"[..])));
        assert_eq!(open(b"42\n"), Ok(Opened::Legacy(&b"42\n"[..])));
        assert_eq!(open(b"{}"), Ok(Opened::Legacy(&b"{}"[..])));
        assert_eq!(open(&frame(b"")), Ok(Opened::Checked(&b""[..])));
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_refused() {
        let framed = frame(b"{\"topics\":{\"orders\":{\"partitions\":12}}}\n");
        for i in 0..framed.len() {
            for bit in 0..8 {
                let mut bad = framed.clone();
                bad[i] ^= 1 << bit;
                // The first byte flipped may leave a letter (still framed, damaged) or
                // not (then it is read as legacy and refused by the body's parser).
                match open(&bad) {
                    Err(_) => {}
                    Ok(Opened::Legacy(_)) if i == 0 => assert!(!bad[0].is_ascii_alphabetic()),
                    other => panic!("bit {bit} of byte {i} flipped: {other:?}"),
                }
            }
        }
        for cut in 1..framed.len() {
            assert!(open(&framed[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = framed.clone();
        longer.push(b'\n');
        assert!(open(&longer).is_err(), "grown");
    }
}
