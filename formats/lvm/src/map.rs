//! Where an LV's bytes are: the runs of physical extents each segment uses, and
//! the arithmetic that turns an LV offset into (PV, PV offset). Striped segments
//! are computed, never expanded into one run per chunk.

use std::ops::Range;

use vmscrub_blockdev::RangeSet;

use crate::error::{Error, Result};
use crate::model::{Lv, Vg};

/// One segment, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSegment {
    /// First byte of the segment in the LV.
    pub lv_start: u64,
    pub len: u64,
    /// Bytes per stripe chunk (`len` when there is one stripe).
    pub chunk: u64,
    /// Per stripe: (index into [`Vg::pvs`], byte offset on that PV).
    pub areas: Vec<(usize, u64)>,
}

/// An LV as byte runs on its PVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvMap {
    pub size: u64,
    pub segments: Vec<MapSegment>,
}

/// A piece of an LV that lies contiguously on one PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub pv: usize,
    pub pv_offset: u64,
    pub len: u64,
}

impl LvMap {
    /// Maps `lv` of `vg`; refuses what [`Vg::unsupported`] refuses and areas
    /// that reach past their PV's extents.
    pub fn new(vg: &Vg, lv: &Lv) -> Result<LvMap> {
        let err = |reason: String| Error::Model {
            vg: vg.name.clone(),
            reason,
        };
        if let Some(why) = vg.unsupported(lv) {
            return Err(err(why));
        }
        let es = vg.extent_size;
        let mut segments = Vec::with_capacity(lv.segments.len());
        for s in &lv.segments {
            let n = s.areas.len() as u64;
            let per_area = s.extent_count / n.max(1);
            let mut areas = vec![];
            for &(pv, pe) in &s.areas {
                let p = vg.pvs.get(pv).ok_or_else(|| err("unknown PV".into()))?;
                if pe.checked_add(per_area).is_none_or(|e| e > p.pe_count) {
                    return Err(err(format!(
                        "logical volume {} uses extents {pe}..{} of {}, which has {}",
                        lv.name,
                        pe.saturating_add(per_area),
                        p.key,
                        p.pe_count
                    )));
                }
                let off = pe
                    .checked_mul(es)
                    .and_then(|o| o.checked_add(p.pe_start))
                    .ok_or_else(|| err("extent offset overflows".into()))?;
                areas.push((pv, off));
            }
            let overflow = || err("logical volume size overflows".into());
            let lv_start = s.start_extent.checked_mul(es).ok_or_else(overflow)?;
            let len = s.extent_count.checked_mul(es).ok_or_else(overflow)?;
            segments.push(MapSegment {
                lv_start,
                len,
                chunk: s.stripe_size.unwrap_or(len),
                areas,
            });
        }
        let size = lv
            .extents()
            .checked_mul(es)
            .ok_or_else(|| err("size overflows".into()))?;
        Ok(LvMap { size, segments })
    }

    /// The run holding LV byte `offset`, cut at the next segment or chunk
    /// boundary; `None` past the end.
    pub fn locate(&self, offset: u64) -> Option<Run> {
        let i = self
            .segments
            .partition_point(|s| s.lv_start + s.len <= offset);
        let s = self.segments.get(i)?;
        let rel = offset.checked_sub(s.lv_start)?;
        let n = s.areas.len() as u64;
        let chunk_no = rel / s.chunk;
        let within = rel % s.chunk;
        let (pv, base) = *s.areas.get((chunk_no % n) as usize)?;
        let row = chunk_no / n;
        Some(Run {
            pv,
            pv_offset: base + row * s.chunk + within,
            len: (s.chunk - within).min(s.len - rel),
        })
    }

    /// Every PV byte range this LV occupies, as (PV, range).
    pub fn pv_ranges(&self) -> Vec<(usize, Range<u64>)> {
        let mut out = vec![];
        for s in &self.segments {
            let per = s.len / s.areas.len().max(1) as u64;
            for &(pv, off) in &s.areas {
                out.push((pv, off..off + per));
            }
        }
        out
    }
}

/// The extents every LV of `vg` uses, per PV (in extents), refusing metadata
/// in which two LVs claim one extent or an area leaves its PV: zeroing what is
/// "free" there could destroy live data.
pub fn allocated_extents(vg: &Vg) -> Result<Vec<RangeSet>> {
    let mut per_pv: Vec<RangeSet> = vec![RangeSet::new(); vg.pvs.len()];
    for lv in &vg.lvs {
        for s in &lv.segments {
            let per_area = s.extent_count / (s.areas.len() as u64).max(1);
            for &(pv, pe) in &s.areas {
                let err = |reason: String| Error::Model {
                    vg: vg.name.clone(),
                    reason: format!("logical volume {}: {reason}", lv.name),
                };
                let p = vg.pvs.get(pv).ok_or_else(|| err("unknown PV".into()))?;
                let end = pe
                    .checked_add(per_area)
                    .filter(|&e| e <= p.pe_count)
                    .ok_or_else(|| err(format!("extents past the end of {}", p.key)))?;
                let set = &mut per_pv[pv];
                if set.overlapping(pe..end).next().is_some() {
                    return Err(err(format!(
                        "extents {pe}..{end} of {} are also used by another logical volume",
                        p.key
                    )));
                }
                set.insert(pe..end);
            }
        }
    }
    Ok(per_pv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::RHEL;

    fn vg() -> Vg {
        Vg::from_text(RHEL.as_bytes()).unwrap()
    }

    #[test]
    fn linear_segments_map_out_of_pv_order() {
        let vg = vg();
        let m = LvMap::new(&vg, vg.lv("root").unwrap()).unwrap();
        assert_eq!(m.size, 15 * 4096);
        let pe0 = 64 * 512;
        assert_eq!(
            m.locate(0),
            Some(Run {
                pv: 0,
                pv_offset: pe0 + 20 * 4096,
                len: 10 * 4096
            })
        );
        assert_eq!(
            m.locate(10 * 4096 + 5),
            Some(Run {
                pv: 0,
                pv_offset: pe0 + 5,
                len: 5 * 4096 - 5
            })
        );
        assert_eq!(m.locate(15 * 4096), None);
    }

    #[test]
    fn striped_segments_alternate_chunks() {
        let vg = vg();
        let m = LvMap::new(&vg, vg.lv("wide").unwrap()).unwrap();
        let pe0 = 64 * 512;
        // chunk 1024: chunk 0 on pv0@40, chunk 1 on pv1@0, chunk 2 on pv0 row 1.
        assert_eq!(
            m.locate(0).unwrap(),
            Run {
                pv: 0,
                pv_offset: pe0 + 40 * 4096,
                len: 1024
            }
        );
        assert_eq!(
            m.locate(1024 + 7).unwrap(),
            Run {
                pv: 1,
                pv_offset: pe0 + 7,
                len: 1017
            }
        );
        assert_eq!(
            m.locate(2048).unwrap(),
            Run {
                pv: 0,
                pv_offset: pe0 + 40 * 4096 + 1024,
                len: 1024
            }
        );
        assert_eq!(
            m.pv_ranges(),
            [
                (0, pe0 + 40 * 4096..pe0 + 44 * 4096),
                (1, pe0..pe0 + 4 * 4096)
            ]
        );
    }

    #[test]
    fn refused_and_overlapping() {
        let vg = vg();
        assert!(LvMap::new(&vg, vg.lv("pool").unwrap()).is_err());
        let a = allocated_extents(&vg).unwrap();
        assert_eq!(a[0].iter().collect::<Vec<_>>(), [0..5, 20..30, 40..44]);
        let t = RHEL.replacen("stripes = [\"pv0\", 0]", "stripes = [\"pv0\", 25]", 1);
        let bad = Vg::from_text(t.as_bytes()).unwrap();
        assert!(
            allocated_extents(&bad)
                .unwrap_err()
                .to_string()
                .contains("also used")
        );
        let t = RHEL.replacen("stripes = [\"pv0\", 0]", "stripes = [\"pv0\", 198]", 1);
        let bad = Vg::from_text(t.as_bytes()).unwrap();
        assert!(allocated_extents(&bad).is_err());
        assert!(LvMap::new(&bad, bad.lv("root").unwrap()).is_err());
    }
}
