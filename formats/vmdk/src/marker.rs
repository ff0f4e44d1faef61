//! Stream-optimized markers: the 12-byte grain marker in front of each compressed
//! grain, and the one-sector metadata markers (end of stream, grain table, grain
//! directory, footer) in front of the structures a stream writes as it goes.
//!
//! Both start with a u64 and a u32; a metadata marker is told apart by `size == 0`
//! (a compressed grain is never empty).

pub const GRAIN_MARKER_LEN: usize = 12;

pub const TYPE_EOS: u32 = 0;
pub const TYPE_GT: u32 = 1;
pub const TYPE_GD: u32 = 2;
pub const TYPE_FOOTER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A compressed grain of `size` bytes for the grain starting at sector `lba`
    /// (relative to the extent) follows.
    Grain { lba: u64, size: u32 },
    /// Metadata of `kind` (`TYPE_*`) and `sectors` sectors follows the marker sector.
    Meta { kind: u32, sectors: u64 },
}

impl Marker {
    /// Parses the first bytes of a marker. A metadata marker needs 16 bytes, a grain
    /// marker 12; `None` if `b` is too short to tell.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let head: &[u8; 12] = b.get(..12)?.try_into().ok()?;
        let mut v = [0u8; 8];
        v.copy_from_slice(&head[0..8]);
        let val = u64::from_le_bytes(v);
        let size = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if size != 0 {
            return Some(Marker::Grain { lba: val, size });
        }
        let t = b.get(12..16)?;
        Some(Marker::Meta {
            kind: u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            sectors: val,
        })
    }

    /// The marker's bytes: 12 for a grain marker (data follows directly), a whole
    /// zero-padded sector for a metadata marker.
    pub fn serialize(&self) -> Vec<u8> {
        match *self {
            Marker::Grain { lba, size } => {
                let mut out = Vec::with_capacity(GRAIN_MARKER_LEN);
                out.extend_from_slice(&lba.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out
            }
            Marker::Meta { kind, sectors } => {
                let mut out = vec![0u8; 512];
                out[0..8].copy_from_slice(&sectors.to_le_bytes());
                out[12..16].copy_from_slice(&kind.to_le_bytes());
                out
            }
        }
    }
}

pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        TYPE_EOS => "end-of-stream",
        TYPE_GT => "grain table",
        TYPE_GD => "grain directory",
        TYPE_FOOTER => "footer",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for m in [
            Marker::Grain {
                lba: 0x0012_3456_789a,
                size: 77,
            },
            Marker::Meta {
                kind: TYPE_GT,
                sectors: 4,
            },
            Marker::Meta {
                kind: TYPE_EOS,
                sectors: 0,
            },
        ] {
            assert_eq!(Marker::parse(&m.serialize()), Some(m));
        }
        assert_eq!(
            Marker::serialize(&Marker::Meta {
                kind: TYPE_FOOTER,
                sectors: 1
            })
            .len(),
            512
        );
        assert_eq!(Marker::parse(&[0u8; 11]), None);
        assert_eq!(Marker::parse(&[0u8; 12]), None); // metadata marker, type missing
    }
}
