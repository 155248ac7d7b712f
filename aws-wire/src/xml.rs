//! A small XML writer for the query protocol's answers: fixed shapes, so no reader and
//! no DOM, only correct escaping.
//!
//! Text is escaped for XML 1.0 element content: `& < > " '` as entities, and `\r` as
//! `&#xD;`, because an XML parser turns a literal CR (or CRLF) into LF and the client
//! would get a message body other than the one sent (SQS writes CR this way too).
//! Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE/U+FFFF) become
//! U+FFFD: SQS bodies never hold them (`attributes::check_body`), but error messages
//! may quote client input.

/// Builds one document; `open` and `close` nest, checked in debug builds.
#[derive(Debug)]
pub struct Xml {
    out: String,
    open: Vec<&'static str>,
}

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Xml {
        Xml {
            out: String::from("<?xml version=\"1.0\"?>"),
            open: Vec::new(),
        }
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &'static str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self.open.push(tag);
        self
    }

    /// `<tag xmlns="namespace">`.
    pub fn open_ns(&mut self, tag: &'static str, namespace: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(" xmlns=\"");
        escape_into(namespace, &mut self.out);
        self.out.push_str("\">");
        self.open.push(tag);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Xml {
        if let Some(tag) = self.open.pop() {
            self.out.push_str("</");
            self.out.push_str(tag);
            self.out.push('>');
        } else {
            debug_assert!(false, "close without open");
        }
        self
    }

    /// `<tag>text</tag>`, the text escaped.
    pub fn leaf(&mut self, tag: &str, text: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        escape_into(text, &mut self.out);
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag/>`.
    pub fn empty(&mut self, tag: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str("/>");
        self
    }

    /// The document's bytes; every element opened must be closed.
    pub fn finish(self) -> Vec<u8> {
        debug_assert!(self.open.is_empty(), "unclosed: {:?}", self.open);
        self.out.into_bytes()
    }
}

/// `text` escaped for element content or an attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if xml_char(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
}

/// XML 1.0's `Char` production.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether every character of `text` is an `xml_char`: ASCII a byte at a time (only
/// the controls other than tab, LF and CR fail), the rest by character.
pub fn xml_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.iter().position(|b| *b < 0x20 || *b >= 0x80) {
        None => true,
        // Everything before `at` is ASCII, so `at` starts a character.
        Some(at) => text
            .get(at..)
            .is_some_and(|rest| rest.chars().all(xml_char)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_quotes_and_carriage_returns_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c'\r\n\td é 😀"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#xD;\n\td é 😀"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_become_replacement_characters() {
        assert_eq!(
            escape("a\u{0}b\u{1b}c\u{FFFE}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
    }

    #[test]
    fn elements_nest_and_close_in_order() {
        let mut x = Xml::new();
        x.open_ns("R", "http://q/\"")
            .open("A")
            .leaf("B", "1 & 2")
            .empty("C")
            .close()
            .close();
        assert_eq!(
            String::from_utf8(x.finish()).expect("utf-8"),
            "<?xml version=\"1.0\"?><R xmlns=\"http://q/&quot;\"><A><B>1 &amp; 2</B><C/></A></R>"
        );
    }
}
