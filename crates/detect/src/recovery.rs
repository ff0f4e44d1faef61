//! Disk-encryption recovery keys saved as small text files (on the ESP, a USB stick
//! image, a home directory). They have no prefix to anchor on, so this rule reads
//! small files whole: a recovery-key file is a few hundred bytes to a few KiB.
//!
//! - BitLocker recovery password: 48 digits in 8 groups of 6, each group a multiple
//!   of 11 below 720896 (2^16 × 11), so the check rejects almost every other digit
//!   string. Source: Microsoft "BitLocker recovery guide" and the BitLocker key
//!   protector format as documented by libbde (`documentation/BitLocker Drive
//!   Encryption (BDE) format.asciidoc`, "Recovery password"). Windows saves the file
//!   as UTF-16LE with a BOM; both encodings are read.
//! - systemd-cryptenroll `--recovery-key`: 64 ModHex characters in 8 groups of 8
//!   separated by dashes. Source: systemd `src/shared/recovery-key.c` and
//!   `systemd-cryptenroll(1)`.

use crate::id::DetectorId;
use crate::window::{Ctx, Hit};

/// Files up to this size are read whole for recovery keys.
pub(crate) const MAX_FILE: usize = 8 << 10;

const MODHEX: &[u8] = b"cbdefghijklnrtuv";

/// Scans a whole small file; spans are in the file's bytes.
pub(crate) fn whole(file: &[u8], ctx: &mut Ctx, out: &mut Vec<Hit>) {
    if file.len() > MAX_FILE || file.len() < 48 {
        return;
    }
    // UTF-16LE with a BOM: read the low bytes (spans map back by doubling).
    if file.starts_with(&[0xFF, 0xFE]) {
        let mut ascii = std::mem::take(&mut ctx.scratch.text);
        ascii.clear();
        let mut ok = true;
        for pair in file[2..].chunks_exact(2) {
            if pair[1] != 0 {
                ok = false;
                break;
            }
            ascii.push(pair[0]);
        }
        if ok {
            for (s, e, why, fp) in find(&ascii, ctx) {
                out.push(Hit {
                    value: None,
                    detector: DetectorId::RecoveryKey,
                    start: 2 + 2 * s,
                    end: 2 + 2 * e,
                    fingerprint: fp,
                    why: format!("{why} (UTF-16)"),
                });
            }
        }
        zeroize::Zeroize::zeroize(&mut ascii);
        ctx.scratch.text = ascii;
        return;
    }
    for (s, e, why, fp) in find(file, ctx) {
        out.push(Hit {
            value: None,
            detector: DetectorId::RecoveryKey,
            start: s,
            end: e,
            fingerprint: fp,
            why: why.into(),
        });
    }
}

type Found = (usize, usize, &'static str, crate::finding::Fingerprint);

fn is_modhex(c: u8) -> bool {
    matches!(c, b'b'..=b'l' | b'n' | b'r' | b't' | b'u' | b'v')
}

fn find(text: &[u8], ctx: &Ctx) -> Vec<Found> {
    let mut found = Vec::new();
    // Both shapes are dash-separated groups whose first dash follows 6 digits
    // (BitLocker) or 8 ModHex (systemd): only positions 6 or 8 before a dash can
    // start one, so those are the only ones looked at (this runs on every file up to
    // 8 KiB), in ascending order as a byte-by-byte walk would meet them.
    let mut starts: Vec<usize> = memchr::memchr_iter(b'-', text)
        .flat_map(|d| [d.checked_sub(8), d.checked_sub(6)])
        .flatten()
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut next = 0;
    for i in starts {
        if i < next || i + 47 > text.len() {
            continue;
        }
        let c = text[i];
        let (dash6, dash8) = (text[i + 6] == b'-', text[i + 8] == b'-');
        let boundary = i == 0 || !text[i - 1].is_ascii_alphanumeric();
        if boundary && dash6 && c.is_ascii_digit() && bitlocker_at(text, i) {
            found.push((
                i,
                i + 55,
                "BitLocker recovery password",
                ctx.fingerprint(&[&text[i..i + 55]]),
            ));
            next = i + 55;
            continue;
        }
        if boundary && dash8 && is_modhex(c) && modhex_at(text, i) {
            found.push((
                i,
                i + 71,
                "systemd-cryptenroll recovery key",
                ctx.fingerprint(&[&text[i..i + 71]]),
            ));
            next = i + 71;
        }
    }
    found
}

/// 8 groups of 6 digits joined by `-`, each a multiple of 11 below 720896.
fn bitlocker_at(t: &[u8], i: usize) -> bool {
    let Some(s) = t.get(i..i + 55) else {
        return false;
    };
    for g in 0..8 {
        let grp = &s[g * 7..g * 7 + 6];
        if !grp.iter().all(u8::is_ascii_digit) || (g < 7 && s[g * 7 + 6] != b'-') {
            return false;
        }
        let v = grp.iter().fold(0u32, |a, &d| a * 10 + (d - b'0') as u32);
        if v % 11 != 0 || v >= 720_896 {
            return false;
        }
    }
    // All-zero groups are the documentation's template.
    !s.iter().all(|&c| c == b'0' || c == b'-')
        && t.get(i + 55).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// 8 groups of 8 ModHex characters joined by `-`.
fn modhex_at(t: &[u8], i: usize) -> bool {
    let Some(s) = t.get(i..i + 71) else {
        return false;
    };
    for g in 0..8 {
        let grp = &s[g * 9..g * 9 + 8];
        if !grp.iter().all(|&c| is_modhex(c)) || (g < 7 && s[g * 9 + 8] != b'-') {
            return false;
        }
    }
    let distinct = MODHEX.iter().filter(|m| s.contains(m)).count();
    distinct >= 8 && t.get(i + 71).is_none_or(|c| !c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free class is the documented ModHex alphabet.
    #[test]
    fn modhex_class() {
        for c in 0..=255u8 {
            assert_eq!(is_modhex(c), MODHEX.contains(&c), "byte {c:#x}");
        }
    }
}

#[cfg(test)]
mod walk_tests {
    use super::*;

    /// The dash-driven search finds what a byte-by-byte walk finds, with keys packed
    /// back to back, overlapping candidates and dash noise around them.
    #[test]
    fn same_as_a_byte_walk() {
        let key = [7u8; 32];
        let mut scratch = crate::window::Scratch::default();
        let ctx = Ctx {
            fp_key: &key,
            scratch: &mut scratch,
        };
        let walk = |text: &[u8]| {
            let mut out = Vec::new();
            let mut i = 0;
            while i + 47 <= text.len() {
                let boundary = i == 0 || !text[i - 1].is_ascii_alphanumeric();
                if boundary && bitlocker_at(text, i) {
                    out.push(i);
                    i += 55;
                } else if boundary && modhex_at(text, i) {
                    out.push(i);
                    i += 71;
                } else {
                    i += 1;
                }
            }
            out
        };
        let bl = "123453-234564-345675-456786-567897-678909-700007-000011";
        let mh = "cbdefghi-jklnrtuv-cbdefghi-jklnrtuv-cbdefghi-jklnrtuv-cbdefghi-jklnrtuv";
        for text in [
            format!("{bl} {mh}\n"),
            format!("--{bl}-{bl}\n{mh}{mh} x-{mh}"),
            format!("{}{bl}\n-{}-", "1-".repeat(40), "-".repeat(30)),
            format!("key: {mh}\nrecovery: {bl}"),
        ] {
            let got: Vec<usize> = find(text.as_bytes(), &ctx).iter().map(|f| f.0).collect();
            assert_eq!(got, walk(text.as_bytes()), "{text}");
        }
        assert_eq!(find(format!("{bl} {mh}").as_bytes(), &ctx).len(), 2);
    }
}
