//! The volume group the metadata text describes: PVs, LVs and their segments
//! (per lvm2's import_vsn1.c). Only what vmscrub needs is kept; every LV
//! whose layout vmscrub cannot map says why ([`Lv::unsupported`]).

use crate::error::{Error, Result};
use crate::text::{self, Section, Value};

/// Sector size of every LVM2 size field.
pub const SECTOR: u64 = 512;

#[derive(Debug, Clone, PartialEq)]
pub struct Vg {
    pub name: String,
    pub id: String,
    pub seqno: u64,
    /// Extent size in bytes.
    pub extent_size: u64,
    pub status: Vec<String>,
    pub pvs: Vec<PvMeta>,
    pub lvs: Vec<Lv>,
    /// The host that wrote this metadata (top-level `creation_host`).
    pub creation_host: Option<String>,
    pub creation_time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PvMeta {
    /// The name segments use (`pv0`).
    pub key: String,
    /// UUID with dashes, as in the label's [`crate::Label::uuid_dashed`].
    pub id: String,
    /// The device path it had when the metadata was written (a hint only).
    pub device: Option<String>,
    pub status: Vec<String>,
    pub flags: Vec<String>,
    /// Size in bytes.
    pub dev_size: u64,
    /// Where extent 0 starts, in bytes from the PV's start.
    pub pe_start: u64,
    pub pe_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    pub name: String,
    pub id: String,
    pub status: Vec<String>,
    pub flags: Vec<String>,
    pub creation_host: Option<String>,
    pub creation_time: Option<i64>,
    /// Segments sorted by `start_extent`.
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_extent: u64,
    pub extent_count: u64,
    /// lvm2's segment type (`striped` for linear and striped).
    pub kind: String,
    /// Stripe chunk in bytes (striped with more than one stripe).
    pub stripe_size: Option<u64>,
    /// The `stripes` areas: (index into [`Vg::pvs`], first PE).
    pub areas: Vec<(usize, u64)>,
    /// Names of other LVs this segment refers to (origin, pool, images, …).
    pub lv_refs: Vec<String>,
}

impl Vg {
    /// Parses a metadata text (the newest copy of one area).
    pub fn from_text(t: &[u8]) -> Result<Vg> {
        let top = text::parse(t)?;
        let mut vgs = top.sections();
        let Some((name, sec)) = vgs.next() else {
            return Err(Error::Text {
                line: 1,
                reason: "no volume group section".into(),
            });
        };
        let mut vg = parse_vg(name, sec)?;
        vg.creation_host = top.str("creation_host").map(str::to_string);
        vg.creation_time = top.int("creation_time");
        Ok(vg)
    }

    /// Size of `lv` in bytes.
    pub fn lv_size(&self, lv: &Lv) -> u64 {
        lv.extents().saturating_mul(self.extent_size)
    }

    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// Why `lv` cannot be read as a plain block device, if it cannot: its own
    /// segment types, or another LV's segment that depends on it (a snapshot's
    /// origin would change what the snapshot shows if edited).
    pub fn unsupported(&self, lv: &Lv) -> Option<String> {
        if let Some(why) = lv.unsupported() {
            return Some(why);
        }
        for other in &self.lvs {
            for s in &other.segments {
                if s.kind == "snapshot" && s.lv_refs.contains(&lv.name) {
                    return Some(format!(
                        "has a snapshot ({}): editing it would change what the snapshot shows; \
                         vmscrub does not read snapshots",
                        other.name
                    ));
                }
            }
        }
        None
    }
}

impl Lv {
    /// Total extents over all segments.
    pub fn extents(&self) -> u64 {
        self.segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.extent_count))
    }

    /// Shown by `lvs` (hidden LVs are parts of another: pool data, RAID images).
    pub fn visible(&self) -> bool {
        self.status.iter().any(|s| s == "VISIBLE")
    }

    /// Why this LV's own segments cannot be mapped, naming the feature.
    pub fn unsupported(&self) -> Option<String> {
        for s in &self.segments {
            if s.kind == "striped" {
                continue;
            }
            let k = s.kind.as_str();
            let what = if k == "thin-pool" {
                "a thin pool: its blocks are handed out through the pool's own metadata, which vmscrub does not read".to_string()
            } else if k == "thin" {
                "a thin volume: vmscrub does not read thin provisioning".to_string()
            } else if k == "snapshot" {
                "a snapshot: vmscrub does not read copy-on-write snapshots".to_string()
            } else if k.starts_with("raid") {
                format!("a RAID ({k}) volume: vmscrub does not read RAID")
            } else if k == "mirror" {
                "a mirrored volume: vmscrub does not read LVM mirrors".to_string()
            } else if k.contains("cache") {
                format!("a cached volume ({k}): vmscrub does not read dm-cache")
            } else if k.starts_with("vdo") {
                format!("a VDO volume ({k}): vmscrub does not read VDO")
            } else {
                format!("of segment type {k:?}, which vmscrub does not read")
            };
            return Some(format!("logical volume {} is {what}", self.name));
        }
        None
    }
}

fn model_err(vg: &str, reason: String) -> Error {
    Error::Model {
        vg: vg.to_string(),
        reason,
    }
}

fn parse_vg(name: &str, sec: &Section) -> Result<Vg> {
    let err = |r: String| model_err(name, r);
    let need_u = |s: &Section, k: &str, what: &str| -> Result<u64> {
        s.int(k)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| err(format!("{what}: {k} is missing or negative")))
    };
    let extent_sectors = need_u(sec, "extent_size", "the volume group")?;
    if extent_sectors == 0 || extent_sectors > (1 << 32) {
        return Err(err(format!("extent size of {extent_sectors} sectors")));
    }
    let mut vg = Vg {
        name: name.to_string(),
        id: sec.str("id").unwrap_or_default().to_string(),
        seqno: need_u(sec, "seqno", "the volume group")?,
        extent_size: extent_sectors * SECTOR,
        status: strings(sec, "status"),
        pvs: vec![],
        lvs: vec![],
        creation_host: None,
        creation_time: None,
    };
    if let Some(pvs) = sec.section("physical_volumes") {
        for (key, p) in pvs.sections() {
            let what = format!("physical volume {key}");
            let bytes = |k: &str| -> Result<u64> {
                need_u(p, k, &what)?
                    .checked_mul(SECTOR)
                    .ok_or_else(|| err(format!("{what}: {k} overflows")))
            };
            vg.pvs.push(PvMeta {
                key: key.to_string(),
                id: p.str("id").unwrap_or_default().to_string(),
                device: p.str("device").map(str::to_string),
                status: strings(p, "status"),
                flags: strings(p, "flags"),
                dev_size: bytes("dev_size")?,
                pe_start: bytes("pe_start")?,
                pe_count: need_u(p, "pe_count", &what)?,
            });
        }
    }
    if let Some(lvs) = sec.section("logical_volumes") {
        for (lname, l) in lvs.sections() {
            let lv = parse_lv(&vg, lname, l)?;
            vg.lvs.push(lv);
        }
    }
    // Names are how segments, fstab and vmscrub's volumes find things: two
    // with one name would make an edit land on the wrong one.
    for (i, p) in vg.pvs.iter().enumerate() {
        if vg.pvs[..i].iter().any(|q| q.key == p.key || q.id == p.id) {
            return Err(err(format!("physical volume {} is listed twice", p.key)));
        }
    }
    for (i, l) in vg.lvs.iter().enumerate() {
        if vg.lvs[..i].iter().any(|m| m.name == l.name) {
            return Err(err(format!("logical volume {} is listed twice", l.name)));
        }
    }
    Ok(vg)
}

fn strings(s: &Section, k: &str) -> Vec<String> {
    s.strings(k).into_iter().map(str::to_string).collect()
}

fn parse_lv(vg: &Vg, name: &str, l: &Section) -> Result<Lv> {
    let err = |r: String| model_err(&vg.name, format!("logical volume {name}: {r}"));
    let mut segments = vec![];
    for (key, s) in l.sections() {
        if !key.starts_with("segment") {
            continue;
        }
        let num = |k: &str| -> Result<u64> {
            s.int(k)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| err(format!("{key}: {k} is missing or negative")))
        };
        // `linear` is what lvm2 displays; its metadata says `striped` with one stripe.
        let kind = match s.str("type").unwrap_or_default() {
            "linear" => "striped".to_string(),
            k => k.to_string(),
        };
        let mut seg = Segment {
            start_extent: num("start_extent")?,
            extent_count: num("extent_count")?,
            kind,
            stripe_size: None,
            areas: vec![],
            lv_refs: vec![],
        };
        if seg.extent_count == 0 {
            return Err(err(format!("{key} has no extents")));
        }
        if seg.kind == "striped" {
            let count = num("stripe_count")?;
            let Some(Value::Array(st)) = s.value("stripes") else {
                return Err(err(format!("{key} has no stripes")));
            };
            for pair in st.chunks(2) {
                let (Some(Value::Str(pv)), Some(Value::Int(pe))) = (pair.first(), pair.get(1))
                else {
                    return Err(err(format!("{key}: stripes are not (PV, extent) pairs")));
                };
                let idx = vg
                    .pvs
                    .iter()
                    .position(|p| p.key == *pv)
                    .ok_or_else(|| err(format!("{key} names an unknown PV {pv:?}")))?;
                let pe = u64::try_from(*pe).map_err(|_| err(format!("{key}: negative extent")))?;
                seg.areas.push((idx, pe));
            }
            if count == 0 || seg.areas.len() as u64 != count {
                return Err(err(format!(
                    "{key}: stripe_count {count} but {} stripes",
                    seg.areas.len()
                )));
            }
            if count > 1 {
                let ss = num("stripe_size")?;
                if ss == 0 || !seg.extent_count.is_multiple_of(count) {
                    return Err(err(format!("{key}: stripes do not divide the segment")));
                }
                seg.stripe_size = Some(ss * SECTOR);
            }
        } else {
            // Whatever LVs the segment names (origin, pool, images, logs).
            for (_, item) in &s.entries {
                if let text::Item::Value(v) = item {
                    collect_strs(v, &mut seg.lv_refs);
                }
            }
            seg.lv_refs.retain(|r| r != &seg.kind);
        }
        segments.push(seg);
    }
    segments.sort_by_key(|s| s.start_extent);
    let mut next = 0u64;
    for s in &segments {
        if s.start_extent != next {
            return Err(err(format!(
                "its segments leave a gap or overlap at extent {next}"
            )));
        }
        next = next
            .checked_add(s.extent_count)
            .ok_or_else(|| err("extent count overflows".into()))?;
    }
    Ok(Lv {
        name: name.to_string(),
        id: l.str("id").unwrap_or_default().to_string(),
        status: strings(l, "status"),
        flags: strings(l, "flags"),
        creation_host: l.str("creation_host").map(str::to_string),
        creation_time: l.int("creation_time"),
        segments,
    })
}

fn collect_strs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Str(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| collect_strs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const RHEL: &str = r#"rhel {
id = "vgid-1"
seqno = 5
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8
physical_volumes {
pv0 {
id = "Zq3B4c-5D6e-7F8g-9H0i-1J2k-3L4m-5N6o7Q"
device = "/dev/loop0p2"
status = ["ALLOCATABLE"]
dev_size = 2048
pe_start = 64
pe_count = 200
}
pv1 {
id = "AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG"
status = ["ALLOCATABLE"]
dev_size = 2048
pe_start = 64
pe_count = 200
}
}
logical_volumes {
root {
id = "lv-root"
status = ["READ", "WRITE", "VISIBLE"]
creation_host = "build7"
segment_count = 2
segment2 {
start_extent = 10
extent_count = 5
type = "striped"
stripe_count = 1
stripes = ["pv0", 0]
}
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1
stripes = ["pv0", 20]
}
}
wide {
id = "lv-wide"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 1
segment1 {
start_extent = 0
extent_count = 8
type = "striped"
stripe_count = 2
stripe_size = 2
stripes = ["pv0", 40, "pv1", 0]
}
}
pool {
id = "lv-pool"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 1
segment1 {
start_extent = 0
extent_count = 4
type = "thin-pool"
metadata = "pool_tmeta"
pool = "pool_tdata"
}
}
}
}
contents = "Text Format Volume Group"
creation_host = "build7"
"#;

    #[test]
    fn reads_pvs_lvs_and_segments() {
        let vg = Vg::from_text(RHEL.as_bytes()).unwrap();
        assert_eq!(
            (vg.name.as_str(), vg.seqno, vg.extent_size),
            ("rhel", 5, 4096)
        );
        assert_eq!(vg.pvs.len(), 2);
        assert_eq!(vg.pvs[0].pe_start, 64 * 512);
        let root = vg.lv("root").unwrap();
        assert_eq!(root.segments[0].areas, [(0, 20)]);
        assert_eq!(vg.lv_size(root), 15 * 4096);
        assert!(vg.unsupported(root).is_none());
        let wide = vg.lv("wide").unwrap();
        assert_eq!(wide.segments[0].stripe_size, Some(1024));
        let pool = vg.lv("pool").unwrap();
        assert!(vg.unsupported(pool).unwrap().contains("thin pool"));
        assert_eq!(pool.segments[0].lv_refs, ["pool_tmeta", "pool_tdata"]);
        assert_eq!(vg.creation_host.as_deref(), Some("build7"));
    }

    #[test]
    fn inconsistent_metadata_is_refused() {
        for (from, to) in [
            ("stripes = [\"pv0\", 0]", "stripes = [\"pv9\", 0]"),
            ("start_extent = 10", "start_extent = 11"),
            ("stripe_count = 2", "stripe_count = 3"),
            ("extent_size = 8", "extent_size = 0"),
            ("seqno = 5", "seqno = -5"),
            ("extent_count = 8", "extent_count = 7"),
            ("wide {", "root {"),
            ("pv1 {", "pv0 {"),
        ] {
            let t = RHEL.replacen(from, to, 1);
            assert!(Vg::from_text(t.as_bytes()).is_err(), "{to}");
        }
    }
}
