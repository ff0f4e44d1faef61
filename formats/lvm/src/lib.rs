//! LVM2, read-only: the PV label, metadata areas, the metadata text, the volume
//! group it describes, and the mapping of logical volumes onto the PVs.
//!
//! [`read_pv`] reads one device's label and its newest valid metadata;
//! [`assemble`] groups the PVs found in an image into volume groups, picks
//! each VG's newest metadata (highest `seqno`) and refuses a VG whose PVs are
//! not all present. [`LvDevice`] then reads and writes an LV's bytes through
//! its PVs. Nothing here writes LVM metadata.
//!
//! Format references: lvm2's lib/format_text/layout.h (label, `pv_header`,
//! `mda_header`, `raw_locn`), format-text.c (the ring buffer), import_vsn1.c
//! (the text), doc/lvm2-raid.txt (why RAID images are hidden LVs).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod device;
pub mod error;
pub mod label;
mod le;
pub mod map;
pub mod mda;
pub mod model;
pub mod text;

use std::ops::Range;

use vmscrub_blockdev::{RangeSet, ReadAt};

pub use device::LvDevice;
pub use error::{Error, Result};
pub use label::{DiskLocn, Label, read_label};
pub use map::{LvMap, Run, allocated_extents};
pub use mda::{MdaHeader, RawLocn};
pub use model::{Lv, PvMeta, Segment, Vg};

/// One PV as found on a device.
#[derive(Debug, Clone)]
pub struct PvInfo {
    pub label: Label,
    pub mdas: Vec<MdaHeader>,
    /// The newest metadata among this PV's areas (none for a PV created with
    /// `--metadatacopies 0`: another PV of the VG describes it).
    pub vg: Option<Vg>,
    /// Areas that could not be read while another could.
    pub warnings: Vec<String>,
    /// What the ring buffers of this PV's areas still hold ([`mda::history`]).
    pub history: mda::History,
}

/// Reads the label and metadata of the PV on `dev`. `Ok(None)`: no PV label.
/// A label whose every metadata area is unreadable is an error.
pub fn read_pv<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<PvInfo>> {
    let Some(label) = read_label(dev)? else {
        return Ok(None);
    };
    let mut mdas = vec![];
    let mut warnings = vec![];
    let mut best: Option<Vg> = None;
    let mut first_err = None;
    let mut history = mda::History::default();
    for locn in &label.metadata_areas {
        let got = mda::read_header(dev, *locn).and_then(|h| {
            let text = mda::read_text(dev, &h)?;
            let vg = text.as_deref().map(Vg::from_text).transpose()?;
            Ok((h, vg))
        });
        match got {
            Ok((h, vg)) => {
                match mda::history(dev, &h) {
                    Ok(more) => history.merge(more),
                    Err(e) => warnings.push(e.to_string()),
                }
                mdas.push(h);
                if let Some(vg) = vg
                    && best.as_ref().is_none_or(|b| vg.seqno > b.seqno)
                {
                    best = Some(vg);
                }
            }
            Err(e) => {
                warnings.push(e.to_string());
                first_err.get_or_insert(e);
            }
        }
    }
    if mdas.is_empty()
        && let Some(e) = first_err
    {
        return Err(e);
    }
    Ok(Some(PvInfo {
        label,
        mdas,
        vg: best,
        warnings,
        history,
    }))
}

/// A volume group whose every PV is in the image.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub vg: Vg,
    /// For each of `vg.pvs`, the index of its device in [`assemble`]'s input.
    pub members: Vec<usize>,
    /// Extents in use per PV (from [`allocated_extents`]).
    pub allocated: Vec<RangeSet>,
}

/// A volume group (or a lone PV) vmscrub refuses to read, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The VG's name, when some metadata names it.
    pub vg: Option<String>,
    /// Input indices of the PVs concerned.
    pub members: Vec<usize>,
    pub reason: String,
}

/// Groups the PVs found in an image (`pvs[i]` is the PV of input device `i`, or
/// `None`) into volume groups.
pub fn assemble(pvs: &[Option<&PvInfo>]) -> (Vec<Assembled>, Vec<Refused>) {
    // Newest metadata per VG id.
    let mut newest: Vec<&Vg> = vec![];
    for p in pvs.iter().flatten() {
        let Some(vg) = &p.vg else { continue };
        // By UUID alone: a stale copy under an old name (vgrename) is older.
        match newest.iter_mut().find(|v| v.id == vg.id) {
            Some(v) if v.seqno >= vg.seqno => {}
            Some(v) => *v = vg,
            None => newest.push(vg),
        }
    }
    let mut ok = vec![];
    let mut refused = vec![];
    let mut claimed = vec![false; pvs.len()];
    for vg in newest {
        let mut members = vec![];
        let mut missing = vec![];
        for pm in &vg.pvs {
            let found = pvs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.is_some_and(|p| p.label.uuid_dashed() == pm.id))
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            match found.as_slice() {
                [i] if !pm.flags.iter().any(|f| f == "MISSING") => members.push(*i),
                [_, _, ..] => {
                    missing.push(format!("{} (UUID {}) is on several devices", pm.key, pm.id))
                }
                _ => missing.push(format!(
                    "{} (UUID {}{}) is missing",
                    pm.key,
                    pm.id,
                    pm.device
                        .as_ref()
                        .map_or(String::new(), |d| format!(", last seen as {d}"))
                )),
            }
        }
        // Every device whose label names a PV of this VG belongs to it.
        let mine: Vec<usize> = pvs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.is_some_and(|p| vg.pvs.iter().any(|m| m.id == p.label.uuid_dashed()))
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &mine {
            claimed[i] = true;
        }
        if !missing.is_empty() {
            refused.push(Refused {
                vg: Some(vg.name.clone()),
                members: mine,
                reason: format!(
                    "volume group {} cannot be read: physical volume {}",
                    vg.name,
                    missing.join("; ")
                ),
            });
            continue;
        }
        let overlap = vg.pvs.iter().zip(&members).find_map(|(pm, &i)| {
            let info = pvs.get(i).copied().flatten()?;
            extents_overlap_metadata(info, pm, vg.extent_size)
        });
        if let Some(why) = overlap {
            refused.push(Refused {
                vg: Some(vg.name.clone()),
                members: mine,
                reason: format!("volume group {}: {why}", vg.name),
            });
            continue;
        }
        match allocated_extents(vg) {
            Ok(allocated) => ok.push(Assembled {
                vg: vg.clone(),
                members,
                allocated,
            }),
            Err(e) => refused.push(Refused {
                vg: Some(vg.name.clone()),
                members: mine,
                reason: e.to_string(),
            }),
        }
    }
    // A device two VGs claim (hostile or cloned metadata) would be edited
    // through both: neither is read.
    let mut shared = vec![0usize; pvs.len()];
    for a in &ok {
        for &m in &a.members {
            shared[m] += 1;
        }
    }
    let (ok, clash): (Vec<Assembled>, Vec<Assembled>) = ok
        .into_iter()
        .partition(|a| a.members.iter().all(|&m| shared[m] == 1));
    for a in clash {
        refused.push(Refused {
            vg: Some(a.vg.name.clone()),
            reason: format!(
                "volume group {} lists a physical volume another volume group lists too",
                a.vg.name
            ),
            members: a.members,
        });
    }
    for (i, p) in pvs.iter().enumerate() {
        if p.is_some() && !claimed[i] {
            refused.push(Refused {
                vg: None,
                members: vec![i],
                reason: "no metadata in the image describes this physical volume (it has no \
                         metadata area, and no other PV's metadata names it)"
                    .to_string(),
            });
        }
    }
    (ok, refused)
}

/// Why the extents of `pv` would overlap its label or a metadata or
/// bootloader area, if they would: an LV written there would corrupt the LVM
/// metadata (lvm2 never lays a PV out like that; hostile metadata might).
fn extents_overlap_metadata(info: &PvInfo, pv: &PvMeta, extent_size: u64) -> Option<String> {
    let end = pv
        .pe_count
        .checked_mul(extent_size)
        .and_then(|b| b.checked_add(pv.pe_start));
    let Some(end) = end else {
        return Some(format!("the extents of {} overflow", pv.key));
    };
    let label_end = label::LABEL_SCAN_SECTORS * label::SECTOR;
    if pv.pe_start < label_end {
        return Some(format!(
            "the extents of {} start inside the PV label",
            pv.key
        ));
    }
    for a in info
        .label
        .metadata_areas
        .iter()
        .chain(&info.label.bootloader_areas)
    {
        let a_end = a.offset.saturating_add(a.size);
        if a.offset < end && pv.pe_start < a_end {
            return Some(format!(
                "the extents of {} overlap the metadata or bootloader area at byte {}",
                pv.key, a.offset
            ));
        }
    }
    None
}

/// Bytes of a PV of `dev_len` bytes that no LVM structure uses: outside the
/// label sectors, every metadata and bootloader area, and the extents any LV
/// (hidden ones included) holds. `allocated` is in extents.
pub fn unused_pv_ranges(
    info: &PvInfo,
    pv: &PvMeta,
    extent_size: u64,
    allocated: &RangeSet,
    dev_len: u64,
) -> RangeSet {
    let mut free = RangeSet::new();
    free.insert(0..dev_len);
    free.remove(0..label::LABEL_SCAN_SECTORS * label::SECTOR);
    let keep = |free: &mut RangeSet, r: Range<u64>| free.remove(r);
    for a in info
        .label
        .metadata_areas
        .iter()
        .chain(&info.label.bootloader_areas)
    {
        keep(&mut free, a.offset..a.offset.saturating_add(a.size));
    }
    for r in allocated.iter() {
        let a = pv
            .pe_start
            .saturating_add(r.start.saturating_mul(extent_size));
        let b = pv
            .pe_start
            .saturating_add(r.end.saturating_mul(extent_size));
        keep(&mut free, a..b);
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::tests::sector;
    use crate::mda::tests::write_area;
    use crate::model::tests::RHEL;
    use vmscrub_blockdev::MemDisk;

    const U0: &str = "Zq3B4c5D6e7F8g9H0i1J2k3L4m5N6o7Q";
    const U1: &str = "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG";

    fn pv(uuid: &str, text: &str) -> MemDisk {
        let mut d = vec![0u8; 1 << 20];
        let mda = DiskLocn {
            offset: 4096,
            size: 28672,
        };
        d[512..1024].copy_from_slice(&sector(uuid, 1 << 20, 32768, mda));
        write_area(&mut d, 4096, 28672, 512, text.as_bytes());
        MemDisk::new(d)
    }

    #[test]
    fn assembles_two_pvs_and_refuses_a_missing_one() {
        let a = read_pv(&pv(U0, RHEL)).unwrap().unwrap();
        let older = RHEL
            .replace("seqno = 5", "seqno = 4")
            .replace("wide", "gone");
        let b = read_pv(&pv(U1, &older)).unwrap().unwrap();
        let (ok, refused) = assemble(&[Some(&a), None, Some(&b)]);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].vg.seqno, 5);
        assert!(ok[0].vg.lv("wide").is_some());
        assert_eq!(ok[0].members, [0, 2]);
        let (ok, refused) = assemble(&[Some(&a)]);
        assert!(ok.is_empty());
        assert!(refused[0].reason.contains("pv1"), "{}", refused[0].reason);
        assert!(refused[0].reason.contains("missing"));
    }

    #[test]
    fn a_pv_two_vgs_claim_is_refused() {
        let a = read_pv(&pv(U0, RHEL)).unwrap().unwrap();
        // Another VG (its own name and UUID) whose metadata lists the same PVs.
        let other = RHEL
            .replace("rhel {", "other {")
            .replace("vgid-1", "vgid-2");
        let b = read_pv(&pv(U1, &other)).unwrap().unwrap();
        let (ok, refused) = assemble(&[Some(&a), Some(&b)]);
        assert!(ok.is_empty(), "{ok:?}");
        assert!(
            refused
                .iter()
                .any(|r| r.reason.contains("another volume group")),
            "{refused:?}"
        );
    }

    #[test]
    fn extents_over_the_metadata_area_are_refused() {
        // pe_start 64 sectors (32 KiB) is where the test PV's metadata area is.
        let t = RHEL.replacen("pe_start = 64", "pe_start = 16", 1);
        let mut d = pv(U0, &t).to_vec();
        d[512..1024].copy_from_slice(&sector(
            U0,
            1 << 20,
            8192,
            DiskLocn {
                offset: 4096,
                size: 28672,
            },
        ));
        let a = read_pv(&MemDisk::new(d)).unwrap().unwrap();
        let b = read_pv(&pv(U1, &t)).unwrap().unwrap();
        let (ok, refused) = assemble(&[Some(&a), Some(&b)]);
        assert!(ok.is_empty());
        assert!(
            refused[0].reason.contains("overlap the metadata"),
            "{refused:?}"
        );
    }

    #[test]
    fn unused_space_keeps_label_metadata_and_extents() {
        let a = read_pv(&pv(U0, RHEL)).unwrap().unwrap();
        let vg = a.vg.clone().unwrap();
        let alloc = allocated_extents(&vg).unwrap();
        let free = unused_pv_ranges(&a, &vg.pvs[0], vg.extent_size, &alloc[0], 1 << 20);
        let pe = 32768u64;
        let got: Vec<_> = free.iter().collect();
        assert_eq!(
            got,
            [
                2048..4096,
                pe + 5 * 4096..pe + 20 * 4096,
                pe + 30 * 4096..pe + 40 * 4096,
                pe + 44 * 4096..1 << 20
            ]
        );
    }

    #[test]
    fn corrupt_pvs_give_errors_not_panics() {
        let good = pv(U0, RHEL).to_vec();
        let mut seed = 99u64;
        for _ in 0..3000 {
            let mut d = good.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Mutate the label, the mda header or the text.
                let span = [(512usize, 512usize), (4096, 512), (4608, RHEL.len())];
                let (s, l) = span[(seed >> 60) as usize % 3];
                let i = s + (seed >> 20) as usize % l;
                d[i] = (seed >> 8) as u8;
            }
            if let Ok(Some(p)) = read_pv(&MemDisk::new(d)) {
                let _ = assemble(&[Some(&p)]);
            }
        }
        // Truncated devices.
        for len in [0usize, 600, 4200, 8000] {
            let _ = read_pv(&MemDisk::new(good[..len].to_vec()));
        }
    }
}
