//! LVM2 in [`discover`](super::discover): every volume carrying a PV label is
//! read with `vmscrub-lvm`, the PVs are grouped into volume groups, and every
//! visible logical volume of a complete VG becomes a [`Volume`] of its own,
//! probed like a partition. A VG that cannot be read (a PV missing, metadata
//! that contradicts itself) leaves its PVs "not readable, why"; an LV whose
//! layout vmscrub does not map (thin, snapshot, RAID, …) is listed with why.

use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt, Slice};
use vmscrub_fsprobe::Kind;
use vmscrub_lvm::{LvDevice, LvMap, PvInfo, Vg};

use super::{Volume, VolumeDevice};

/// Which LV a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvId {
    pub vg: String,
    pub name: String,
    /// The LV's UUID as lvm2 prints it.
    pub uuid: String,
}

impl LvId {
    /// `rhel/root`, as `lvs` and `/dev/VG/LV` name it.
    pub fn path(&self) -> String {
        format!("{}/{}", self.vg, self.name)
    }
}

/// What became of a PV found on a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvState {
    /// Part of a volume group whose LVs are volumes.
    Member { vg: String },
    /// Not read, and why.
    Refused(String),
}

/// A volume group found in the image (or PVs that could not be grouped).
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    /// The VG's name, when metadata names it.
    pub name: Option<String>,
    /// The newest metadata (`None` when none could be read).
    pub model: Option<Vg>,
    /// For each PV of `model` (in its order), or each PV concerned when refused:
    /// the index of its volume in [`super::Layout::volumes`].
    pub pv_volumes: Vec<usize>,
    /// Why the VG is not read; `None` when its LVs are volumes.
    pub refused: Option<String>,
    /// Visible LVs that are not volumes, and why.
    pub refused_lvs: Vec<(LvId, String)>,
    /// Per PV volume: its byte ranges no LVM structure uses (the label, metadata
    /// areas and every allocated extent excluded). Empty when refused.
    pub unused: Vec<(usize, RangeSet)>,
    /// What the metadata areas' ring buffers still hold (older copies, hosts).
    pub history: vmscrub_lvm::mda::History,
}

/// Reads the PVs among `volumes`, appends a volume per readable LV, and
/// returns the volume groups. Problems become reasons, never errors: one bad
/// VG must not hide the rest of the image.
pub(super) fn add_volumes<D: ReadAt + Clone>(
    volumes: &mut Vec<Volume<D>>,
    warnings: &mut Vec<String>,
) -> Vec<VolumeGroup> {
    let mut groups = vec![];
    let mut infos: Vec<Option<PvInfo>> = vec![None; volumes.len()];
    for (i, v) in volumes.iter_mut().enumerate() {
        if v.filesystem.kind != Kind::LvmPv {
            continue;
        }
        let name = v.name();
        match vmscrub_lvm::read_pv(&v.device) {
            Ok(Some(p)) => {
                warnings.extend(p.warnings.iter().map(|w| format!("{name}: {w}")));
                infos[i] = Some(p);
            }
            Ok(None) => v.pv = Some(PvState::Refused("the LVM2 label cannot be read".into())),
            Err(e) => {
                let why = e.to_string();
                v.pv = Some(PvState::Refused(why.clone()));
                groups.push(VolumeGroup {
                    name: None,
                    model: None,
                    pv_volumes: vec![i],
                    refused: Some(why),
                    refused_lvs: vec![],
                    unused: vec![],
                    history: Default::default(),
                });
            }
        }
    }
    let refs: Vec<Option<&PvInfo>> = infos.iter().map(Option::as_ref).collect();
    let (ok, mut refused) = vmscrub_lvm::assemble(&refs);
    // Two VGs with one name (disks cloned from one image): their LVs would
    // share names (`/dev/rhel/root`), and an edit could land on the wrong one.
    // lvm2 itself refuses to activate such a pair.
    let once = |name: &str| ok.iter().filter(|a| a.vg.name == name).count() == 1;
    let (ok, dup): (Vec<_>, Vec<_>) = ok.iter().cloned().partition(|a| once(&a.vg.name));
    for a in dup {
        refused.push(vmscrub_lvm::Refused {
            vg: Some(a.vg.name.clone()),
            reason: format!(
                "two volume groups are named {} (this one has UUID {}): which one fstab means \
                 cannot be told",
                a.vg.name, a.vg.id
            ),
            members: a.members,
        });
    }
    for r in refused {
        for &m in &r.members {
            volumes[m].pv = Some(PvState::Refused(r.reason.clone()));
        }
        let model = r.members.iter().find_map(|&m| {
            infos[m]
                .as_ref()
                .and_then(|p| p.vg.clone())
                .filter(|vg| Some(&vg.name) == r.vg.as_ref())
        });
        let history = history_of(&infos, &r.members);
        groups.push(VolumeGroup {
            name: r.vg,
            model,
            pv_volumes: r.members,
            refused: Some(r.reason),
            refused_lvs: vec![],
            unused: vec![],
            history,
        });
    }
    for a in ok {
        let g = add_group(volumes, &infos, a, warnings);
        groups.push(g);
    }
    groups
}

/// One complete VG: its LVs become volumes.
fn add_group<D: ReadAt + Clone>(
    volumes: &mut Vec<Volume<D>>,
    infos: &[Option<PvInfo>],
    a: vmscrub_lvm::Assembled,
    warnings: &mut Vec<String>,
) -> VolumeGroup {
    let vg = a.vg;
    let mut pv_devs: Vec<Slice<D>> = Vec::with_capacity(a.members.len());
    let mut unused = vec![];
    for (k, &m) in a.members.iter().enumerate() {
        volumes[m].pv = Some(PvState::Member {
            vg: vg.name.clone(),
        });
        // PVs are found on partitions and the bare disk only (LVs are not
        // scanned for PVs), so every member is a slice; `pv_devs[k]` must be
        // the VG's k-th PV, so nothing may be skipped.
        match &volumes[m].device {
            VolumeDevice::Slice(s) => pv_devs.push(s.clone()),
            VolumeDevice::Lv(_) => return refuse_nested(volumes, &a.members, vg, infos),
        }
        if let (Some(info), Some(pm), Some(alloc)) = (&infos[m], vg.pvs.get(k), a.allocated.get(k))
        {
            let free =
                vmscrub_lvm::unused_pv_ranges(info, pm, vg.extent_size, alloc, volumes[m].size);
            unused.push((m, free));
        }
    }
    let pv_devs = Arc::new(pv_devs);
    let mut refused_lvs = vec![];
    for lv in vg.lvs.iter().filter(|l| l.visible()) {
        let id = LvId {
            vg: vg.name.clone(),
            name: lv.name.clone(),
            uuid: lv.id.clone(),
        };
        let dev = LvMap::new(&vg, lv)
            .map_err(|e| match e {
                vmscrub_lvm::Error::Model { reason, .. } => reason,
                other => other.to_string(),
            })
            .and_then(|map| LvDevice::new(pv_devs.clone(), map).map_err(|e| e.to_string()));
        let device = match dev {
            Ok(d) => VolumeDevice::Lv(d),
            Err(why) => {
                refused_lvs.push((id, why));
                continue;
            }
        };
        let filesystem = match super::probe_volume(&device) {
            Ok(f) => f,
            Err(e) => {
                refused_lvs.push((id, format!("cannot be probed: {e}")));
                continue;
            }
        };
        let name = format!("logical volume {}", id.path());
        warnings.extend(filesystem.warnings.iter().map(|w| format!("{name}: {w}")));
        volumes.push(Volume {
            index: None,
            offset: 0,
            size: device.size(),
            device,
            filesystem,
            lv: Some(id),
            pv: None,
        });
    }
    VolumeGroup {
        name: Some(vg.name.clone()),
        model: Some(vg),
        history: history_of(infos, &a.members),
        pv_volumes: a.members,
        refused: None,
        refused_lvs,
        unused,
    }
}

/// A PV found inside an LV (never produced by [`add_volumes`]; kept as a
/// refusal rather than a wrong mapping).
fn refuse_nested<D>(
    volumes: &mut [Volume<D>],
    members: &[usize],
    vg: Vg,
    infos: &[Option<PvInfo>],
) -> VolumeGroup {
    let why = format!(
        "volume group {} has a physical volume inside a logical volume",
        vg.name
    );
    for &m in members {
        volumes[m].pv = Some(PvState::Refused(why.clone()));
    }
    VolumeGroup {
        name: Some(vg.name.clone()),
        model: Some(vg),
        history: history_of(infos, members),
        pv_volumes: members.to_vec(),
        refused: Some(why),
        refused_lvs: vec![],
        unused: vec![],
    }
}

fn history_of(infos: &[Option<PvInfo>], members: &[usize]) -> vmscrub_lvm::mda::History {
    let mut h = vmscrub_lvm::mda::History::default();
    for &m in members {
        if let Some(Some(p)) = infos.get(m) {
            h.merge(p.history.clone());
        }
    }
    h
}
