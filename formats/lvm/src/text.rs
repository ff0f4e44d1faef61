//! The metadata text: lvm2's config syntax (lib/config, format_text/import_vsn1.c).
//!
//! ```text
//! vg0 {                       # a section
//!     seqno = 3               # integer
//!     status = ["READ", "WRITE"]
//!     description = "a \"quoted\" string"
//! }
//! ```
//! Hostile text is bounded: nesting depth, number of items and string length
//! are capped, and every error carries the line it was found on.

use crate::error::{Error, Result};

/// Deepest section nesting accepted (lvm2's own metadata nests 5 levels).
pub const MAX_DEPTH: usize = 16;
/// Most values and sections in one text.
pub const MAX_ITEMS: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Value(Value),
    Section(Section),
}

/// A section's entries in text order (keys may repeat; lookups take the first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    pub entries: Vec<(String, Item)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key)? {
            Item::Section(s) => Some(s),
            Item::Value(_) => None,
        }
    }
    pub fn value(&self, key: &str) -> Option<&Value> {
        match self.get(key)? {
            Item::Value(v) => Some(v),
            Item::Section(_) => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.value(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.value(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The strings of an array value (`status = ["READ", "WRITE"]`).
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.value(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }
    /// Sub-sections in text order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries.iter().filter_map(|(k, v)| match v {
            Item::Section(s) => Some((k.as_str(), s)),
            Item::Value(_) => None,
        })
    }
}

/// Parses a whole text into its top-level section.
pub fn parse(text: &[u8]) -> Result<Section> {
    let mut p = Parser {
        s: text,
        pos: 0,
        line: 1,
        items: 0,
    };
    let top = p.section_body(0)?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(p.err("unexpected '}' at the top level"));
    }
    Ok(top)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    items: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> Error {
        Error::Text {
            line: self.line,
            reason: reason.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips whitespace and `#` comments.
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.bump();
                }
            } else if c.is_ascii_whitespace() || c == 0 {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// Entries until `}` (not consumed) or the end of the text.
    fn section_body(&mut self, depth: usize) -> Result<Section> {
        if depth > MAX_DEPTH {
            return Err(self.err("sections nest too deeply"));
        }
        let mut sec = Section::default();
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(b'}') => return Ok(sec),
                _ => {}
            }
            self.items += 1;
            if self.items > MAX_ITEMS {
                return Err(self.err("too many items"));
            }
            let key = self.key()?;
            self.skip_ws();
            match self.bump() {
                Some(b'=') => {
                    self.skip_ws();
                    let v = self.value(true)?;
                    sec.entries.push((key, Item::Value(v)));
                }
                Some(b'{') => {
                    let inner = self.section_body(depth + 1)?;
                    if self.bump() != Some(b'}') {
                        return Err(self.err(&format!("section {key:?} is not closed")));
                    }
                    sec.entries.push((key, Item::Section(inner)));
                }
                _ => return Err(self.err(&format!("expected '=' or '{{' after {key:?}"))),
            }
        }
    }

    fn key(&mut self) -> Result<String> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_+.-/".contains(&c))
        {
            self.bump();
        }
        if start == self.pos {
            return Err(self.err("expected a name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn value(&mut self, array_ok: bool) -> Result<Value> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'[') if array_ok => self.array(),
            Some(c) if c == b'-' || c == b'+' || c.is_ascii_digit() => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn array(&mut self) -> Result<Value> {
        self.bump();
        let mut out = vec![];
        loop {
            self.skip_ws();
            if self.peek() == Some(b']') {
                self.bump();
                return Ok(Value::Array(out));
            }
            if !out.is_empty() {
                if self.bump() != Some(b',') {
                    return Err(self.err("expected ',' or ']' in an array"));
                }
                self.skip_ws();
            }
            self.items += 1;
            if self.items > MAX_ITEMS {
                return Err(self.err("too many items"));
            }
            out.push(self.value(false)?);
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
        {
            self.bump();
        }
        let t = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        t.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| self.err(&format!("{t:?} is not a number")))
    }

    /// A double-quoted string; `\x` stands for `x`.
    fn string(&mut self) -> Result<String> {
        self.bump();
        let mut out = vec![];
        loop {
            match self.bump() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(self.err("unterminated string")),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lvm_metadata_syntax() {
        let t = br#"# comment
rhel {
id = "abc"
seqno = 7
status = ["RESIZEABLE", "READ"]
flags = []
physical_volumes {
pv0 { pe_start = 2048 dev_size = -1 }
}
}
contents = "Text Format Volume Group"
description = "say \"hi\" \\ ok"
ratio = 1.5
"#;
        let top = parse(t).unwrap();
        let vg = top.section("rhel").unwrap();
        assert_eq!(vg.str("id"), Some("abc"));
        assert_eq!(vg.int("seqno"), Some(7));
        assert_eq!(vg.strings("status"), ["RESIZEABLE", "READ"]);
        assert_eq!(vg.strings("flags"), Vec::<&str>::new());
        let pv = vg
            .section("physical_volumes")
            .unwrap()
            .section("pv0")
            .unwrap();
        assert_eq!(pv.int("dev_size"), Some(-1));
        assert_eq!(top.str("description"), Some("say \"hi\" \\ ok"));
        assert_eq!(top.value("ratio"), Some(&Value::Float(1.5)));
    }

    #[test]
    fn errors_name_the_line() {
        for (t, line) in [
            (&b"a {\nb = \n}"[..], 3),
            (b"a {\n b = 1\n", 3),
            (b"a = \"open\n", 2),
            (b"a = [1, 2\n", 2),
            (b"}", 1),
            (b"= 3", 1),
            (b"a = 12abc", 1),
        ] {
            match parse(t) {
                Err(Error::Text { line: l, .. }) => {
                    assert_eq!(l, line, "{:?}", String::from_utf8_lossy(t))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(t)),
            }
        }
    }

    #[test]
    fn depth_is_bounded() {
        let t = "a {".repeat(100);
        assert!(parse(t.as_bytes()).is_err());
        let t = format!("{}{}", "a {".repeat(10), "}".repeat(10));
        assert!(parse(t.as_bytes()).is_ok());
    }

    #[test]
    fn mutations_never_panic() {
        let base = br#"vg { id = "x" seqno = 1 status = ["READ"] logical_volumes { lv { segment1 { stripes = ["pv0", 0] } } } }"#;
        let mut seed = 0x1234_5678u64;
        for _ in 0..20_000 {
            let mut t = base.to_vec();
            for _ in 0..3 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % t.len();
                t[i] = (seed >> 17) as u8;
            }
            let _ = parse(&t);
        }
    }
}
