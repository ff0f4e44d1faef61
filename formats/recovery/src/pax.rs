//! pax extended-header records (`"%d %s=%s\n"`, the length counting itself).
//! Values are bytes: paths and xattr values need not be UTF-8.

use crate::error::{Error, Result};

#[derive(Default, Debug, Clone)]
pub struct Records {
    pub list: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Records {
    pub fn push(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.list
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.list
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.list {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while base + len.to_string().len() != len {
                len = base + len.to_string().len();
            }
            out.extend_from_slice(len.to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(k);
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out
    }

    pub fn decode(mut data: &[u8]) -> Result<Records> {
        let mut rec = Records::default();
        while !data.is_empty() {
            if data.iter().all(|&b| b == 0) {
                break;
            }
            let sp = data
                .iter()
                .take(20)
                .position(|&b| b == b' ')
                .ok_or_else(|| Error::Tar("pax record without a length".into()))?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Tar("pax record with a bad length".into()))?;
            if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(Error::Tar("pax record length out of range".into()));
            }
            let body = &data[sp + 1..len - 1];
            let eq = body
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| Error::Tar("pax record without '='".into()))?;
            rec.list
                .push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
            data = &data[len..];
        }
        Ok(rec)
    }
}

/// `secs.nnnnnnnnn` as pax wants it, correct for times before 1970.
pub fn format_time(secs: i64, nanos: u32) -> String {
    if nanos == 0 {
        return secs.to_string();
    }
    if secs >= 0 {
        format!("{secs}.{nanos:09}")
    } else {
        // secs + nanos/1e9 is negative: write -(|secs| - 1).(1e9 - nanos).
        let whole = -(secs + 1);
        let frac = 1_000_000_000 - nanos;
        format!("-{whole}.{frac:09}")
    }
}

/// Parses a pax time back into (secs, nanos) with nanos in 0..1e9.
pub fn parse_time(s: &[u8]) -> Result<(i64, u32)> {
    let bad = || Error::Tar(format!("bad pax time {:?}", String::from_utf8_lossy(s)));
    let s = std::str::from_utf8(s).map_err(|_| bad())?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().map_err(|_| bad())?;
    if !neg {
        Ok((whole, nanos))
    } else if nanos == 0 {
        Ok((-whole, 0))
    } else {
        Ok((-whole - 1, 1_000_000_000 - nanos))
    }
}

pub fn parse_u64(s: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Tar(format!("bad pax {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_length_counts_itself() {
        let mut r = Records::default();
        r.push("path", vec![b'a'; 93]); // 93+4+3 = 100, plus "100" → 103
        r.push("k", "v");
        let enc = r.encode();
        assert!(enc.starts_with(b"103 path="));
        assert!(enc.ends_with(b"6 k=v\n"));
        let back = Records::decode(&enc).unwrap();
        assert_eq!(back.list, r.list);
    }

    #[test]
    fn times_round_trip() {
        for (s, n) in [
            (0, 0),
            (1, 5),
            (-1, 500_000_000),
            (-2, 1),
            (1_700_000_000, 999_999_999),
        ] {
            let t = format_time(s, n);
            assert_eq!(parse_time(t.as_bytes()).unwrap(), (s, n), "{t}");
        }
        assert_eq!(format_time(-1, 500_000_000), "-0.500000000");
    }
}
