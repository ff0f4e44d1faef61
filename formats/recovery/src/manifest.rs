//! The manifest: what was removed from which image, by which vmscrub, and each
//! file's size and SHA-256. It travels inside the tar as the `comment` record of a
//! pax global header written after the last member: GNU tar, bsdtar and Python's
//! `tarfile` ignore `comment`, so `tar -xpf removed.tar -C /` extracts no stray
//! file and prints no warning. `vmscrub recover --list` prints it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FORMAT: &str = "vmscrub-manifest/1";

/// Describes the scrub run; given when the archive is created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// File name of the input image.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the image file, if the caller computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The path, when it is valid UTF-8; otherwise with `\xNN` escapes.
    pub path: String,
    /// Hex of the raw path bytes, present only when the path is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Hex SHA-256 of the (logical) content of regular and sparse files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The scrub operation that removed it.
    pub operation: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub vmscrub_version: String,
    /// RFC 3339 UTC time the archive was created.
    pub created: String,
    pub image: ImageInfo,
    /// Operations the scrub applied (its selection), in order.
    pub operations: Vec<String>,
    pub files: Vec<FileRecord>,
}

impl Manifest {
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::Manifest(e.to_string()))
    }

    pub fn from_json(data: &[u8]) -> Result<Manifest> {
        let m: Manifest =
            serde_json::from_slice(data).map_err(|e| Error::Manifest(e.to_string()))?;
        if m.format != FORMAT {
            return Err(Error::Manifest(format!(
                "unknown manifest format {:?}",
                m.format
            )));
        }
        Ok(m)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn path_record(path: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(path) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (crate::error::display_path(path), Some(hex(path))),
    }
}

/// RFC 3339 (UTC, seconds) without a date library: civil-from-days (H. Hinnant).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
