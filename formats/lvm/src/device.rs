//! An LV as a device: reads and writes are split at segment and stripe-chunk
//! boundaries and sent to the PV devices the map names.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt, WriteAt, check_range};

use crate::map::{LvMap, Run};

/// The bytes of one LV, addressed from 0. `pvs[i]` is the device of the VG's
/// `i`-th PV (a partition slice, or the whole disk).
#[derive(Debug)]
pub struct LvDevice<D> {
    pvs: Arc<Vec<D>>,
    map: Arc<LvMap>,
}

impl<D> Clone for LvDevice<D> {
    fn clone(&self) -> Self {
        Self {
            pvs: self.pvs.clone(),
            map: self.map.clone(),
        }
    }
}

impl<D: ReadAt> LvDevice<D> {
    /// Fails if a run of the map lies outside its PV device.
    pub fn new(pvs: Arc<Vec<D>>, map: LvMap) -> io::Result<Self> {
        for (pv, r) in map.pv_ranges() {
            let dev = pvs.get(pv).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("no device for PV {pv}"))
            })?;
            check_range(r.start, r.end - r.start, dev.size()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the logical volume uses bytes {}..{} of a {}-byte physical volume",
                        r.start,
                        r.end,
                        dev.size()
                    ),
                )
            })?;
        }
        Ok(Self {
            pvs,
            map: Arc::new(map),
        })
    }

    pub fn map(&self) -> &LvMap {
        &self.map
    }

    /// Calls `f(run, lv_offset_in_request)` for each run covering `len` bytes at `offset`.
    fn each_run(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&D, Run, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        check_range(offset, len, self.map.size)?;
        let mut done = 0u64;
        while done < len {
            let run = self.map.locate(offset + done).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "past the logical volume's end",
                )
            })?;
            let n = run.len.min(len - done);
            let dev = self
                .pvs
                .get(run.pv)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no device for a PV"))?;
            f(dev, Run { len: n, ..run }, done as usize)?;
            done += n;
        }
        Ok(())
    }
}

impl<D: ReadAt> ReadAt for LvDevice<D> {
    fn size(&self) -> u64 {
        self.map.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        self.each_run(offset, len, |dev, run, at| {
            let part = &mut buf[at..at + run.len as usize];
            dev.read_exact_at(part, run.pv_offset)
        })
    }

    /// Linear segments map the PVs' allocation back exactly; a striped segment
    /// counts whole when any of its areas holds data (a superset is allowed).
    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let per_pv: Vec<RangeSet> = self
            .pvs
            .iter()
            .map(|d| d.allocated_ranges())
            .collect::<io::Result<_>>()?;
        let mut out = RangeSet::new();
        for s in &self.map.segments {
            let per = s.len / s.areas.len().max(1) as u64;
            if s.areas.len() == 1 {
                let (pv, base) = s.areas[0];
                for r in per_pv[pv].overlapping(base..base + per) {
                    let a = r.start.max(base) - base + s.lv_start;
                    let b = r.end.min(base + per) - base + s.lv_start;
                    out.insert(a..b);
                }
            } else if s
                .areas
                .iter()
                .any(|&(pv, base)| per_pv[pv].overlapping(base..base + per).next().is_some())
            {
                out.insert(s.lv_start..s.lv_start + s.len);
            }
        }
        Ok(out)
    }
}

impl<D: WriteAt> WriteAt for LvDevice<D> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.each_run(offset, buf.len() as u64, |dev, run, at| {
            dev.write_all_at(&buf[at..at + run.len as usize], run.pv_offset)
        })
    }

    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        let len = range.end.saturating_sub(range.start);
        self.each_run(range.start, len, |dev, run, _| {
            dev.zero_range(run.pv_offset..run.pv_offset + run.len)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Vg, tests::RHEL};
    use vmscrub_blockdev::MemDisk;

    #[test]
    fn reads_and_writes_land_where_the_map_says() {
        let vg = Vg::from_text(RHEL.as_bytes()).unwrap();
        let pv0 = MemDisk::new((0..1 << 20).map(|i: u32| (i % 251) as u8).collect());
        let pv1 = MemDisk::new((0..1 << 20).map(|i: u32| (i % 241) as u8).collect());
        let pvs = Arc::new(vec![&pv0, &pv1]);
        let wide = LvDevice::new(
            pvs.clone(),
            LvMap::new(&vg, vg.lv("wide").unwrap()).unwrap(),
        )
        .unwrap();
        let mut buf = vec![0u8; 3000];
        wide.read_exact_at(&mut buf, 500).unwrap();
        // Byte by byte through the map equals the split read.
        for (i, &b) in buf.iter().enumerate() {
            let r = wide.map().locate(500 + i as u64).unwrap();
            let src = if r.pv == 0 { &pv0 } else { &pv1 };
            let mut one = [0u8];
            src.read_exact_at(&mut one, r.pv_offset).unwrap();
            assert_eq!(b, one[0], "{i}");
        }
        wide.write_all_at(&[0xAA; 2048], 512).unwrap();
        let pe0 = 64 * 512;
        assert_eq!(pv0.to_vec()[pe0 + 40 * 4096 + 512], 0xAA);
        assert_eq!(pv1.to_vec()[pe0], 0xAA);
        assert_eq!(pv1.to_vec()[pe0 + 511], 0xAA);
        wide.zero_range(0..4096).unwrap();
        assert_eq!(pv1.to_vec()[pe0 + 1023], 0);
        assert!(wide.read_exact_at(&mut buf, wide.size() - 10).is_err());
        // A PV too small for the map is refused up front.
        let tiny = MemDisk::zeroed(4096);
        let small = Arc::new(vec![&tiny, &tiny]);
        assert!(LvDevice::new(small, LvMap::new(&vg, vg.lv("wide").unwrap()).unwrap()).is_err());
    }
}
