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
    // Both shapes are dash-separated groups: most small files have no dash where one
    // would be, and cost one memchr (this runs on every file up to 8 KiB).
    if memchr::memchr(b'-', text).is_none() {
        return found;
    }
    let mut i = 0;
    while i + 47 <= text.len() {
        let c = text[i];
        // The first group's dash: after 6 digits (BitLocker) or 8 ModHex (systemd).
        let (dash6, dash8) = (text[i + 6] == b'-', text[i + 8] == b'-');
        if !(dash6 || dash8) {
            i += 1;
            continue;
        }
        let boundary = i == 0 || !text[i - 1].is_ascii_alphanumeric();
        if boundary && dash6 && c.is_ascii_digit() && bitlocker_at(text, i) {
            found.push((
                i,
                i + 55,
                "BitLocker recovery password",
                ctx.fingerprint(&[&text[i..i + 55]]),
            ));
            i += 55;
            continue;
        }
        if boundary && dash8 && is_modhex(c) && modhex_at(text, i) {
            found.push((
                i,
                i + 71,
                "systemd-cryptenroll recovery key",
                ctx.fingerprint(&[&text[i..i + 71]]),
            ));
            i += 71;
            continue;
        }
        i += 1;
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
