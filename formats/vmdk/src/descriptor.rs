//! The text descriptor: `key=value` header lines, extent lines and the `ddb.*`
//! disk database. It is a separate file for flat and split disks and is embedded
//! in the first sparse extent of monolithic ones.
//!
//! The parser is tolerant of what real writers vary (comments anywhere, blank
//! lines, CRLF, spaces around `=`, NUL padding after the text) and strict about
//! what decides which bytes are read: extent lines must parse completely, the
//! keys that identify the disk may not appear twice, and the whole text is bounded.

use std::fmt::Write as _;

use crate::error::{Result, VmdkError};

/// A descriptor larger than this is refused before it is read.
pub const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// More extent lines than this is not a disk anyone made (2 TiB in 2 GiB pieces is 1024).
pub const MAX_EXTENTS: usize = 16_384;
/// `parentCID` of a disk without a parent.
pub const NO_PARENT_CID: u32 = 0xffff_ffff;

/// Keys whose meaning would be ambiguous if repeated.
const UNIQUE_KEYS: &[&str] = &[
    "version",
    "CID",
    "parentCID",
    "createType",
    "parentFileNameHint",
    "encoding",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    NoAccess,
}

impl Access {
    fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_uppercase().as_str() {
            "RW" => Some(Access::ReadWrite),
            "RDONLY" => Some(Access::ReadOnly),
            "NOACCESS" => Some(Access::NoAccess),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "RW",
            Access::ReadOnly => "RDONLY",
            Access::NoAccess => "NOACCESS",
        }
    }
}

/// The extent type word. Types this reader cannot read are still parsed, so the
/// refusal can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentType {
    Flat,
    Sparse,
    Zero,
    Vmfs,
    VmfsSparse,
    VmfsRdm,
    VmfsRaw,
    SeSparse,
    Other(String),
}

impl ExtentType {
    fn parse(word: &str) -> Self {
        match word.to_ascii_uppercase().as_str() {
            "FLAT" => ExtentType::Flat,
            "SPARSE" => ExtentType::Sparse,
            "ZERO" => ExtentType::Zero,
            "VMFS" => ExtentType::Vmfs,
            "VMFSSPARSE" => ExtentType::VmfsSparse,
            "VMFSRDM" => ExtentType::VmfsRdm,
            "VMFSRAW" => ExtentType::VmfsRaw,
            "SESPARSE" => ExtentType::SeSparse,
            _ => ExtentType::Other(word.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ExtentType::Flat => "FLAT",
            ExtentType::Sparse => "SPARSE",
            ExtentType::Zero => "ZERO",
            ExtentType::Vmfs => "VMFS",
            ExtentType::VmfsSparse => "VMFSSPARSE",
            ExtentType::VmfsRdm => "VMFSRDM",
            ExtentType::VmfsRaw => "VMFSRAW",
            ExtentType::SeSparse => "SESPARSE",
            ExtentType::Other(s) => s,
        }
    }
}

/// One extent line: `RW 204800 FLAT "disk-flat.vmdk" 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    pub access: Access,
    /// Size of the extent in sectors.
    pub sectors: u64,
    pub kind: ExtentType,
    /// File name as written (relative names are relative to the descriptor).
    pub file_name: Option<String>,
    /// For FLAT extents: where the extent's data starts in its file, in sectors.
    pub offset: Option<u64>,
    /// 1-based line number in the descriptor, for messages.
    pub line: usize,
}

/// A `key=value` line, with whether its value was quoted (kept so it can be
/// written back the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// Header entries (everything not starting with `ddb.`), in file order.
    pub entries: Vec<Entry>,
    pub extents: Vec<ExtentLine>,
    /// `ddb.*` entries, in file order.
    pub ddb: Vec<Entry>,
}

fn err(line: usize, detail: impl Into<String>) -> VmdkError {
    VmdkError::Descriptor {
        line,
        detail: detail.into(),
    }
}

/// Parses a hexadecimal CID (`CID=fffffffe`).
fn parse_cid(key: &str, v: &str) -> Result<u32> {
    u32::from_str_radix(v, 16)
        .map_err(|_| err(0, format!("{key}={v:?} is not a 32-bit hexadecimal number")))
}

impl Descriptor {
    /// Parses descriptor text. Bytes after the first NUL are padding and ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() as u64 > MAX_DESCRIPTOR_BYTES {
            return Err(err(
                0,
                format!(
                    "{} bytes is larger than the {MAX_DESCRIPTOR_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..end]);
        let mut d = Descriptor::default();
        for (idx, raw) in text.split('\n').enumerate() {
            let lineno = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some(access) = Access::parse(first) {
                if d.extents.len() >= MAX_EXTENTS {
                    return Err(err(lineno, format!("more than {MAX_EXTENTS} extents")));
                }
                d.extents.push(parse_extent(line, access, lineno)?);
            } else if let Some((k, v)) = line.split_once('=') {
                let key = k.trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(err(lineno, format!("malformed key in {line:?}")));
                }
                let v = v.trim();
                let (value, quoted) = match v.strip_prefix('"') {
                    Some(rest) => match rest.strip_suffix('"') {
                        Some(inner) => (inner, true),
                        None => return Err(err(lineno, format!("unterminated quote in {line:?}"))),
                    },
                    None => (v, false),
                };
                let entry = Entry {
                    key: key.to_string(),
                    value: value.to_string(),
                    quoted,
                };
                if key.starts_with("ddb.") {
                    d.ddb.push(entry);
                } else {
                    if UNIQUE_KEYS.contains(&key) && d.get(key).is_some() {
                        return Err(err(lineno, format!("{key} appears twice")));
                    }
                    d.entries.push(entry);
                }
            } else {
                return Err(err(
                    lineno,
                    format!("unrecognized line {:?}", truncate(line)),
                ));
            }
        }
        d.check()?;
        Ok(d)
    }

    /// Checks the values the reader depends on, so accessors below cannot fail.
    fn check(&self) -> Result<()> {
        match self.get("version") {
            None => return Err(err(0, "no version= line")),
            Some(v) if !matches!(v, "1" | "2" | "3") => {
                return Err(err(
                    0,
                    format!("version={v:?}: only versions 1, 2 and 3 exist"),
                ));
            }
            Some(_) => {}
        }
        for key in ["CID", "parentCID"] {
            if let Some(v) = self.get(key) {
                parse_cid(key, v)?;
            }
        }
        Ok(())
    }

    /// The value of header key `key` (exact case), unquoted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The value of `ddb.<key>`.
    pub fn ddb(&self, key: &str) -> Option<&str> {
        self.ddb
            .iter()
            .find(|e| e.key.strip_prefix("ddb.") == Some(key))
            .map(|e| e.value.as_str())
    }

    pub fn create_type(&self) -> Option<&str> {
        self.get("createType")
    }

    pub fn cid(&self) -> Option<u32> {
        self.get("CID").and_then(|v| parse_cid("CID", v).ok())
    }

    pub fn parent_cid(&self) -> Option<u32> {
        self.get("parentCID")
            .and_then(|v| parse_cid("parentCID", v).ok())
    }

    /// Whether this is a delta (child) disk that needs a parent to be read.
    pub fn has_parent(&self) -> bool {
        self.parent_cid().is_some_and(|c| c != NO_PARENT_CID)
            || self.get("parentFileNameHint").is_some()
    }

    /// Sum of the extents' sizes in sectors; `None` on overflow.
    pub fn total_sectors(&self) -> Option<u64> {
        self.extents
            .iter()
            .try_fold(0u64, |acc, e| acc.checked_add(e.sectors))
    }

    /// The descriptor as VMware lays it out: header, extents, disk database.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# Disk DescriptorFile\n");
        let line = |s: &mut String, e: &Entry, sep: &str| {
            let _ = if e.quoted {
                writeln!(s, "{}{sep}\"{}\"", e.key, e.value)
            } else {
                writeln!(s, "{}{sep}{}", e.key, e.value)
            };
        };
        for e in &self.entries {
            line(&mut s, e, "=");
        }
        s.push_str("\n# Extent description\n");
        for x in &self.extents {
            let _ = write!(s, "{} {} {}", x.access.as_str(), x.sectors, x.kind.as_str());
            if let Some(name) = &x.file_name {
                let _ = write!(s, " \"{name}\"");
            }
            if let Some(off) = x.offset {
                let _ = write!(s, " {off}");
            }
            s.push('\n');
        }
        s.push_str("\n# The Disk Data Base\n#DDB\n\n");
        for e in &self.ddb {
            line(&mut s, e, " = ");
        }
        s
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn parse_extent(line: &str, access: Access, lineno: usize) -> Result<ExtentLine> {
    let bad = |what: &str| err(lineno, format!("extent line {:?}: {what}", truncate(line)));
    let mut rest = line;
    let mut word = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        w
    };
    let _access = word();
    let size = word();
    let kind_word = word();
    let sectors: u64 = size
        .parse()
        .map_err(|_| bad("size is not a number of sectors"))?;
    if sectors == 0 {
        return Err(bad("size is 0 sectors"));
    }
    if kind_word.is_empty() {
        return Err(bad("no extent type"));
    }
    let kind = ExtentType::parse(kind_word);
    let mut tail = rest.trim_start();
    let file_name = if let Some(q) = tail.strip_prefix('"') {
        let close = q.find('"').ok_or_else(|| bad("unterminated file name"))?;
        let name = &q[..close];
        if name.is_empty() {
            return Err(bad("empty file name"));
        }
        if name.contains('\u{FFFD}') {
            return Err(bad("file name is not valid UTF-8"));
        }
        tail = q[close + 1..].trim_start();
        Some(name.to_string())
    } else {
        None
    };
    if file_name.is_none() && !tail.is_empty() {
        return Err(bad(if kind == ExtentType::Zero {
            "a ZERO extent has no file"
        } else {
            "no quoted file name"
        }));
    }
    let offset = if tail.is_empty() {
        None
    } else {
        let (num, after) = tail.split_at(tail.find(char::is_whitespace).unwrap_or(tail.len()));
        if !after.trim().is_empty() {
            return Err(bad("unexpected text after the offset"));
        }
        Some(
            num.parse::<u64>()
                .map_err(|_| bad("offset is not a number of sectors"))?,
        )
    };
    match kind {
        ExtentType::Zero if file_name.is_some() || offset.is_some() => {
            return Err(bad("a ZERO extent has no file"));
        }
        ExtentType::Zero => {}
        _ if file_name.is_none() => return Err(bad("no quoted file name")),
        ExtentType::Flat if offset.is_none() => return Err(bad("a FLAT extent needs an offset")),
        ExtentType::Flat | ExtentType::Vmfs | ExtentType::VmfsRdm | ExtentType::VmfsRaw => {}
        _ if offset.is_some() => return Err(bad("only flat extents take an offset")),
        _ => {}
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file_name,
        offset,
        line: lineno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_FLAT: &str = "# Disk DescriptorFile\nversion=1\nCID=aaaf5fda\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n# Extent description\nRW 204800 FLAT \"c-vmdk-flat-flat.vmdk\" 0\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"203\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n";

    #[test]
    fn parses_qemu_descriptor_and_round_trips() {
        let d = Descriptor::parse(QEMU_FLAT.as_bytes()).unwrap();
        assert_eq!(d.create_type(), Some("monolithicFlat"));
        assert_eq!(d.cid(), Some(0xaaaf5fda));
        assert_eq!(d.parent_cid(), Some(NO_PARENT_CID));
        assert!(!d.has_parent());
        assert_eq!(d.extents.len(), 1);
        let x = &d.extents[0];
        assert_eq!(
            (x.access, x.sectors, &x.kind, x.offset),
            (Access::ReadWrite, 204800, &ExtentType::Flat, Some(0))
        );
        assert_eq!(x.file_name.as_deref(), Some("c-vmdk-flat-flat.vmdk"));
        assert_eq!(d.ddb("adapterType"), Some("ide"));
        let again = Descriptor::parse(d.to_text().as_bytes()).unwrap();
        assert_eq!(again.entries, d.entries);
        assert_eq!(again.ddb, d.ddb);
        assert_eq!(
            again
                .extents
                .iter()
                .map(|e| (&e.kind, e.sectors))
                .collect::<Vec<_>>(),
            vec![(&ExtentType::Flat, 204800)]
        );
    }

    #[test]
    fn tolerates_crlf_comments_padding_and_spacing() {
        let text = "  # comment\r\n\r\nversion = 1\r\nCID=12345678\r\n   createType=\"twoGbMaxExtentSparse\"  \r\n# x\r\nRW 100 SPARSE \"a b-s001.vmdk\"\r\nrdonly 50 ZERO\r\n  RW 10 FLAT \"f.vmdk\"   7  \r\nddb.adapterType=lsilogic\r\n\0\0\0garbage";
        let d = Descriptor::parse(text.as_bytes()).unwrap();
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file_name.as_deref(), Some("a b-s001.vmdk"));
        assert_eq!(d.extents[1].kind, ExtentType::Zero);
        assert_eq!(d.extents[1].access, Access::ReadOnly);
        assert_eq!(d.extents[2].offset, Some(7));
        assert_eq!(d.total_sectors(), Some(160));
        assert_eq!(d.ddb("adapterType"), Some("lsilogic"));
    }

    #[test]
    fn refuses_bad_lines() {
        let head = "version=1\n";
        for (body, needle) in [
            ("RW abc FLAT \"x\" 0", "not a number"),
            ("RW 0 FLAT \"x\" 0", "0 sectors"),
            ("RW 10 FLAT \"x\"", "needs an offset"),
            ("RW 10 FLAT \"x\" -1", "offset"),
            ("RW 10 FLAT \"x\" 0 9", "after the offset"),
            ("RW 10 SPARSE \"x", "unterminated"),
            ("RW 10 SPARSE x", "quoted file name"),
            ("RW 10 SPARSE \"x\" 5", "only flat"),
            ("RW 10 ZERO \"x\"", "ZERO"),
            ("RW 10", "no extent type"),
            ("hello world", "unrecognized"),
            ("CID=xyz", "hexadecimal"),
            ("createType=\"a\nRW 1 ZERO", "unterminated quote"),
            ("version=1", "twice"),
        ] {
            let e = Descriptor::parse(format!("{head}{body}\n").as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{body:?}: {e}");
        }
        let e = Descriptor::parse(b"CID=1\n").unwrap_err().to_string();
        assert!(e.contains("version"), "{e}");
        let e = Descriptor::parse(b"version=9\n").unwrap_err().to_string();
        assert!(e.contains("version"), "{e}");
        let big = vec![b'#'; (MAX_DESCRIPTOR_BYTES + 1) as usize];
        assert!(
            Descriptor::parse(&big)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn detects_delta_disks() {
        let d = Descriptor::parse(b"version=1\nparentCID=12345678\n").unwrap();
        assert!(d.has_parent());
        let d =
            Descriptor::parse(b"version=1\nparentCID=ffffffff\nparentFileNameHint=\"base.vmdk\"\n")
                .unwrap();
        assert!(d.has_parent());
    }
}
