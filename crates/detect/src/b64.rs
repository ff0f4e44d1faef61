//! Lenient base64 decoding (padding optional), as key files are written by many tools.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);

pub(crate) const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);

/// Decodes `src` (no whitespace) into `out`, replacing its contents.
pub(crate) fn decode_into(src: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    STANDARD.decode_vec(src, out).is_ok()
}
