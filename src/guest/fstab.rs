//! `/etc/fstab`: which filesystem is mounted where.
//!
//! Only what places a filesystem of this image in the tree matters: the spec
//! (`UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`, `/dev/disk/by-*/…`, and
//! best-effort kernel names of the first disk: `/dev/sda2`, `/dev/vda2`,
//! `/dev/xvda2`, `/dev/hda2`, `/dev/nvme0n1p2`, `/dev/mmcblk0p2`; LVM2 logical
//! volumes as `/dev/mapper/VG-LV` (a `-` inside a name doubled) or `/dev/VG/LV`) and the mount
//! point. Swap, pseudo filesystems, network filesystems and bind mounts are
//! skipped; fields use fstab's octal escapes (`\040` for a space).

use crate::ops::pattern::normalize_abs;

/// How an fstab line names its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    /// Partition number on the image's (only) disk.
    Partition(u32),
    /// An LVM2 logical volume, by volume group and LV name.
    Lv {
        vg: String,
        lv: String,
    },
    /// A device we cannot map (`/dev/sdb1`, `/dev/mapper/…`, …).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: Spec,
    pub mountpoint: Vec<u8>,
    pub fstype: String,
    pub line: usize,
}

/// Filesystem types that never live on this image's partitions.
const SKIP_TYPES: &[&str] = &[
    "swap",
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "devtmpfs",
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "sshfs",
    "fuse",
    "fuse.sshfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "hugetlbfs",
    "mqueue",
    "binfmt_misc",
    "overlay",
    "none",
    "bind",
    "efivarfs",
    "pstore",
    "configfs",
    "autofs",
    "rpc_pipefs",
    "9p",
    "virtiofs",
];

/// Most lines looked at (a real fstab has a handful).
const MAX_LINES: usize = 10_000;

pub fn parse(text: &[u8]) -> Vec<FstabEntry> {
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').take(MAX_LINES).enumerate() {
        let fields: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() < 2 || fields[0].starts_with(b"#") {
            continue;
        }
        let spec_raw = unescape(fields[0]);
        let mp_raw = unescape(fields[1]);
        let fstype = fields
            .get(2)
            .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
            .unwrap_or_else(|| "auto".into());
        let options = fields
            .get(3)
            .map(|o| String::from_utf8_lossy(o).into_owned())
            .unwrap_or_default();
        if SKIP_TYPES.contains(&fstype.as_str())
            || options.split(',').any(|o| o == "bind" || o == "rbind")
        {
            continue;
        }
        let Some(mountpoint) = normalize_abs(&mp_raw) else {
            continue;
        };
        out.push(FstabEntry {
            spec: parse_spec(&String::from_utf8_lossy(&spec_raw)),
            mountpoint,
            fstype,
            line: i + 1,
        });
    }
    out
}

/// Decodes fstab's `\ooo` octal escapes.
fn unescape(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        if f[i] == b'\\'
            && let Some(oct) = f.get(i + 1..i + 4)
            && oct.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = oct.iter().fold(0u32, |a, b| a * 8 + u32::from(b - b'0'));
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(f[i]);
        i += 1;
    }
    out
}

/// udev's `\x20`-style escapes in `/dev/disk/by-label/…` names.
fn unescape_udev(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(h) = s.get(i + 2..i + 4)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn strip_quotes(v: &str) -> String {
    v.trim_matches('"').to_string()
}

fn parse_spec(s: &str) -> Spec {
    if let Some((k, v)) = s.split_once('=') {
        let v = strip_quotes(v);
        return match k {
            "UUID" => Spec::Uuid(v),
            "LABEL" => Spec::Label(v),
            "PARTUUID" => Spec::PartUuid(v),
            "PARTLABEL" => Spec::PartLabel(v),
            _ => Spec::Other(s.to_string()),
        };
    }
    for (prefix, mk) in [
        ("/dev/disk/by-uuid/", Spec::Uuid as fn(String) -> Spec),
        ("/dev/disk/by-label/", Spec::Label),
        ("/dev/disk/by-partuuid/", Spec::PartUuid),
        ("/dev/disk/by-partlabel/", Spec::PartLabel),
    ] {
        if let Some(v) = s.strip_prefix(prefix) {
            return mk(unescape_udev(v));
        }
    }
    if let Some(p) = kernel_partition(s) {
        return Spec::Partition(p);
    }
    lv_name(s).unwrap_or_else(|| Spec::Other(s.to_string()))
}

/// `/dev/mapper/rhel-root` or `/dev/rhel/root` → (`rhel`, `root`). Device
/// mapper names double every `-` inside the VG and LV names, so the separator
/// is the first single `-` (`my--vg-lv--x` is `my-vg` / `lv-x`).
fn lv_name(s: &str) -> Option<Spec> {
    let lv = |vg: String, lv: String| {
        let ok = |n: &str| !n.is_empty() && n != "." && n != "..";
        (ok(&vg) && ok(&lv)).then_some(Spec::Lv { vg, lv })
    };
    if let Some(m) = s.strip_prefix("/dev/mapper/") {
        let b = m.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                if b.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let undouble = |t: &str| t.replace("--", "-");
                return lv(undouble(&m[..i]), undouble(&m[i + 1..]));
            }
            i += 1;
        }
        return None;
    }
    let rest = s.strip_prefix("/dev/")?;
    let (vg, name) = rest.split_once('/')?;
    if name.contains('/') || ["disk", "mapper"].contains(&vg) {
        return None;
    }
    lv(vg.to_string(), name.to_string())
}

/// `/dev/sda2` → 2 (first disk only: the image is one disk).
fn kernel_partition(s: &str) -> Option<u32> {
    let dev = s.strip_prefix("/dev/")?;
    let num = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
            .filter(|&n| n > 0)
    };
    for p in ["sda", "vda", "xvda", "hda"] {
        if let Some(rest) = dev.strip_prefix(p) {
            return num(rest);
        }
    }
    for p in ["nvme0n1p", "mmcblk0p"] {
        if let Some(rest) = dev.strip_prefix(p) {
            return num(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_skips_the_rest() {
        let e = parse(
            b"# comment\n\
UUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n\
LABEL=root / ext4 defaults 0 1\n\
PARTUUID=\"abc\" /home ext4 defaults\n\
PARTLABEL=data /srv/my\\040data ext4 defaults\n\
/dev/disk/by-label/my\\x20label /mnt/x ext4 defaults\n\
/dev/disk/by-uuid/u1 /var ext4 defaults\n\
/dev/vda3 /opt ext4 defaults\n\
/dev/nvme0n1p4 /data ext4 defaults\n\
/dev/sdb1 /other ext4 defaults\n\
/dev/mapper/my--vg-lv--x /lv1 ext4 defaults\n\
/dev/rhel/home /home2 xfs defaults\n\
/dev/mapper/nodash /x ext4 defaults\n\
/swapfile none swap sw 0 0\n\
tmpfs /tmp tmpfs defaults 0 0\n\
/srv /mnt/bind none bind 0 0\n\
/var/x /mnt/bind2 ext4 bind 0 0\n\
UUID=z ../etc ext4 defaults\n\
LABEL=z /a/../b ext4 defaults\n\
lonely\n",
        );
        let got: Vec<(Spec, String)> = e
            .iter()
            .map(|e| {
                (
                    e.spec.clone(),
                    String::from_utf8_lossy(&e.mountpoint).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Spec::Uuid("1234-ABCD".into()), "/boot/efi".into()),
                (Spec::Label("root".into()), "/".into()),
                (Spec::PartUuid("abc".into()), "/home".into()),
                (Spec::PartLabel("data".into()), "/srv/my data".into()),
                (Spec::Label("my label".into()), "/mnt/x".into()),
                (Spec::Uuid("u1".into()), "/var".into()),
                (Spec::Partition(3), "/opt".into()),
                (Spec::Partition(4), "/data".into()),
                (Spec::Other("/dev/sdb1".into()), "/other".into()),
                (
                    Spec::Lv {
                        vg: "my-vg".into(),
                        lv: "lv-x".into()
                    },
                    "/lv1".into()
                ),
                (
                    Spec::Lv {
                        vg: "rhel".into(),
                        lv: "home".into()
                    },
                    "/home2".into()
                ),
                (Spec::Other("/dev/mapper/nodash".into()), "/x".into()),
            ]
        );
        assert_eq!(e[1].line, 3);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut data = vec![];
        for i in 0..5000u32 {
            data.extend_from_slice(&i.to_le_bytes());
            data.extend_from_slice(b"\\7\\777\\x /\\0 ");
        }
        let _ = parse(&data);
        assert!(parse(b"\\").is_empty());
    }
}
