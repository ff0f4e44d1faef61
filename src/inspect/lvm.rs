//! The LVM2 part of `inspect`: volume groups, their PVs (on which partition)
//! and LVs (size, segments, what is inside, whether vmscrub reads it and why not).

use std::fmt::Write as _;

use serde::Serialize;

use super::{FsReport, access_of, fs_report_of, human_size, or_dash, safe, table};
use crate::guest::Guest;
use crate::image::{Layout, LvId};

#[derive(Debug, Serialize)]
pub struct VgReport {
    /// `None` for a PV no metadata describes.
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub seqno: Option<u64>,
    /// Bytes per physical extent.
    pub extent_size: Option<u64>,
    /// The host that wrote the metadata (`creation_host` of the text).
    pub creation_host: Option<String>,
    /// Older versions of the metadata still in the areas' ring buffers (lvm2
    /// only moves a pointer when it writes a new one).
    pub old_metadata_copies: u64,
    /// Every `creation_host` named by any copy, old ones included.
    pub metadata_hosts: Vec<String>,
    /// Its logical volumes are read as volumes.
    pub readable: bool,
    pub refused_reason: Option<String>,
    pub physical_volumes: Vec<PvReport>,
    pub logical_volumes: Vec<LvReport>,
}

#[derive(Debug, Serialize)]
pub struct PvReport {
    /// Name in the metadata (`pv0`); `None` when the VG could not be read.
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// Partition holding it (`None`: the whole disk, or not in the image).
    pub partition: Option<u32>,
    /// In the image (false: the metadata names it, the image lacks it).
    pub present: bool,
    /// Device path when the metadata was written (a hint only).
    pub device_hint: Option<String>,
    pub size: Option<u64>,
    /// Byte offset of extent 0 on the PV.
    pub pe_start: Option<u64>,
    pub pe_count: Option<u64>,
    /// Extents some LV uses (hidden ones included).
    pub pe_used: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LvReport {
    pub name: String,
    pub uuid: String,
    pub size: u64,
    /// Shown by `lvs` (hidden LVs are parts of another: pool data, RAID images).
    pub visible: bool,
    pub segments: Vec<SegmentReport>,
    /// What the LV holds (`None` when it is not read: hidden or refused).
    pub filesystem: Option<FsReport>,
    /// Why the LV itself is not read (thin, snapshot, RAID, …), `None` otherwise.
    pub refused_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SegmentReport {
    pub start_extent: u64,
    pub extent_count: u64,
    /// lvm2's segment type (`striped` for linear too).
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes per stripe chunk (`None`: one stripe).
    pub stripe_size: Option<u64>,
    pub stripes: Vec<StripeReport>,
}

#[derive(Debug, Serialize)]
pub struct StripeReport {
    pub pv: String,
    pub start_extent: u64,
}

pub(super) fn vg_reports<D: vmscrub_blockdev::ReadAt + Clone + 'static>(
    layout: &Layout<D>,
    guest: &Guest,
) -> Vec<VgReport> {
    layout
        .lvm
        .iter()
        .map(|g| {
            let part_of = |i: usize| layout.volumes.get(i).and_then(|v| v.index);
            let Some(vg) = &g.model else {
                return VgReport {
                    name: g.name.clone(),
                    uuid: None,
                    seqno: None,
                    extent_size: None,
                    creation_host: None,
                    old_metadata_copies: g.history.seqnos.len() as u64,
                    metadata_hosts: g.history.hosts.clone(),
                    readable: false,
                    refused_reason: g.refused.clone(),
                    physical_volumes: g
                        .pv_volumes
                        .iter()
                        .map(|&i| PvReport {
                            name: None,
                            uuid: layout
                                .volumes
                                .get(i)
                                .and_then(|v| v.filesystem.uuid.clone()),
                            partition: part_of(i),
                            present: true,
                            device_hint: None,
                            size: layout.volumes.get(i).map(|v| v.size),
                            pe_start: None,
                            pe_count: None,
                            pe_used: None,
                        })
                        .collect(),
                    logical_volumes: vec![],
                };
            };
            let alloc = vmscrub_lvm::allocated_extents(vg).ok();
            let physical_volumes = vg
                .pvs
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let vol = g.pv_volumes.iter().copied().find(|&i| {
                        layout
                            .volumes
                            .get(i)
                            .and_then(|v| v.filesystem.uuid.as_deref())
                            == Some(p.id.as_str())
                    });
                    PvReport {
                        name: Some(p.key.clone()),
                        uuid: Some(p.id.clone()),
                        partition: vol.and_then(part_of),
                        present: vol.is_some(),
                        device_hint: p.device.clone(),
                        size: Some(p.dev_size),
                        pe_start: Some(p.pe_start),
                        pe_count: Some(p.pe_count),
                        pe_used: alloc.as_ref().and_then(|a| a.get(k)).map(|r| r.total()),
                    }
                })
                .collect();
            let logical_volumes = vg
                .lvs
                .iter()
                .map(|lv| {
                    let id = LvId {
                        vg: vg.name.clone(),
                        name: lv.name.clone(),
                        uuid: lv.id.clone(),
                    };
                    let vol = layout
                        .volumes
                        .iter()
                        .find(|v| v.lv.as_ref().is_some_and(|l| l.path() == id.path()));
                    let refused_reason = g
                        .refused_lvs
                        .iter()
                        .find(|(l, _)| l.path() == id.path())
                        .map(|(_, why)| why.clone())
                        .or_else(|| vg.unsupported(lv).filter(|_| lv.visible()));
                    LvReport {
                        name: lv.name.clone(),
                        uuid: lv.id.clone(),
                        size: vg.lv_size(lv),
                        visible: lv.visible(),
                        segments: lv
                            .segments
                            .iter()
                            .map(|s| SegmentReport {
                                start_extent: s.start_extent,
                                extent_count: s.extent_count,
                                kind: s.kind.clone(),
                                stripe_size: s.stripe_size,
                                stripes: s
                                    .areas
                                    .iter()
                                    .map(|&(pv, pe)| StripeReport {
                                        pv: vg
                                            .pvs
                                            .get(pv)
                                            .map(|p| p.key.clone())
                                            .unwrap_or_default(),
                                        start_extent: pe,
                                    })
                                    .collect(),
                            })
                            .collect(),
                        filesystem: vol.map(|v| fs_report_of(v, access_of(guest, &v.key()))),
                        refused_reason,
                    }
                })
                .collect();
            VgReport {
                name: Some(vg.name.clone()),
                uuid: Some(vg.id.clone()),
                seqno: Some(vg.seqno),
                extent_size: Some(vg.extent_size),
                creation_host: vg.creation_host.clone(),
                old_metadata_copies: g.history.seqnos.iter().filter(|&&s| s < vg.seqno).count()
                    as u64,
                metadata_hosts: g.history.hosts.clone(),
                readable: g.refused.is_none(),
                refused_reason: g.refused.clone(),
                physical_volumes,
                logical_volumes,
            }
        })
        .collect()
}

/// The human form: one block per VG, its PVs, then its LVs in a table.
pub(super) fn render(vgs: &[VgReport], out: &mut String) {
    for g in vgs {
        let name = g.name.as_deref().map_or("(unknown)".to_string(), safe);
        let _ = write!(out, "\nLVM2 volume group {name}");
        if let (Some(es), Some(seq)) = (g.extent_size, g.seqno) {
            let _ = write!(
                out,
                ": extent size {}, metadata seqno {seq}",
                human_size(es)
            );
        }
        out.push('\n');
        if let Some(why) = &g.refused_reason {
            let _ = writeln!(out, "  NOT READ: {}", safe(why));
        }
        if g.old_metadata_copies > 0 || !g.metadata_hosts.is_empty() {
            let _ = writeln!(
                out,
                "  metadata: {} older cop{} kept in the metadata area, hosts named: {}",
                g.old_metadata_copies,
                if g.old_metadata_copies == 1 {
                    "y"
                } else {
                    "ies"
                },
                if g.metadata_hosts.is_empty() {
                    "-".to_string()
                } else {
                    safe(&g.metadata_hosts.join(", "))
                }
            );
        }
        for p in &g.physical_volumes {
            let at = match (p.present, p.partition) {
                (false, _) => "no device: MISSING from the image".to_string(),
                (true, Some(i)) => format!("partition {i}"),
                (true, None) => "the whole disk".to_string(),
            };
            let _ = writeln!(
                out,
                "  PV {} on {at}: {} extents, {} used, UUID {}",
                or_dash(&p.name),
                p.pe_count.map_or("-".into(), |c| c.to_string()),
                p.pe_used.map_or("-".into(), |c| c.to_string()),
                or_dash(&p.uuid)
            );
        }
        let mut rows = vec![
            [
                "LV",
                "Size",
                "Segments",
                "Filesystem",
                "Label",
                "Mounted",
                "Read",
            ]
            .map(str::to_string)
            .to_vec(),
        ];
        for lv in &g.logical_volumes {
            let segs: Vec<String> = lv
                .segments
                .iter()
                .map(|s| {
                    let areas: Vec<String> = s
                        .stripes
                        .iter()
                        .map(|a| format!("{}:{}", a.pv, a.start_extent))
                        .collect();
                    if areas.is_empty() {
                        s.kind.clone()
                    } else if s.stripes.len() > 1 {
                        format!("{}x striped {}", s.stripes.len(), areas.join("+"))
                    } else {
                        format!("{}+{}", areas.join(""), s.extent_count)
                    }
                })
                .collect();
            let (fs, label, mp) = match &lv.filesystem {
                Some(f) => (f.kind.clone(), or_dash(&f.label), or_dash(&f.mount_point)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let read = match (&lv.refused_reason, &lv.filesystem) {
                _ if !lv.visible => "hidden".to_string(),
                (Some(_), _) => "no (below)".to_string(),
                (None, Some(f)) if f.readable => "yes".to_string(),
                (None, Some(f)) if f.unreadable_reason.is_some() => "no (below)".to_string(),
                _ => "-".to_string(),
            };
            let name = if lv.visible {
                lv.name.clone()
            } else {
                format!("[{}]", lv.name)
            };
            rows.push(vec![
                safe(&name),
                human_size(lv.size),
                segs.join(", "),
                fs,
                safe(&label),
                safe(&mp),
                read,
            ]);
        }
        if rows.len() > 1 {
            out.push_str(&table(&rows, &[false, true]));
        }
        for lv in g.logical_volumes.iter().filter(|l| l.visible) {
            let why = lv.refused_reason.clone().or_else(|| {
                lv.filesystem
                    .as_ref()
                    .and_then(|f| f.unreadable_reason.clone())
            });
            if let Some(why) = why {
                let _ = writeln!(out, "  {}: {}", safe(&lv.name), safe(&why));
            }
        }
    }
}
