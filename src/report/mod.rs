//! Reports of a scan: human text, one stable JSON document, SARIF 2.1.0.

use serde::Serializer;

/// Serializes a byte path as display-escaped text (`\xNN` for non-UTF-8 bytes).
pub fn ser_path<S: Serializer>(p: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::fs::display_path(p))
}
