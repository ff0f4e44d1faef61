//! What is on a partition: filesystem and volume signatures by their superblocks.
//!
//! This is identification only — ext2/3/4, FAT12/16/32, XFS, btrfs, LVM2 PV, Linux
//! swap, LUKS1/2 — with the label, UUID, version and (for ext) the feature flags a
//! user needs to recognise a volume. Reading the filesystems is other crates' job.
//!
//! Results are meant to agree with `blkid -p -o export` (TYPE, LABEL, UUID, VERSION;
//! [`Kind::blkid_type`] gives blkid's TYPE names), because that is what users compare
//! against and what the tests use as the oracle. Where blkid's rule and a
//! specification differ we say so: the FAT type follows the cluster count, as
//! Microsoft's specification requires (blkid agrees on every well-formed volume).
//!
//! Every input is hostile: small devices, garbage and half-written superblocks give
//! [`Kind::Unknown`] (with warnings where something looked almost right), never a
//! panic. Only an I/O failure of the device itself is an [`Error`]. Every read is
//! bounded: at most a few KiB per signature, plus at most 1 MiB of FAT root directory
//! when looking for a volume label.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod btrfs;
pub mod ext;
mod fat;
mod luks;
mod lvm;
mod swap;
mod util;
mod xfs;

use std::io;

use vmscrub_blockdev::ReadAt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {structure} at byte offset {offset}")]
    Io {
        structure: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// What kind of volume a signature says this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ext2,
    Ext3,
    Ext4,
    /// An ext3/4 external journal device.
    Jbd,
    /// FAT12, FAT16 or FAT32 (see [`Filesystem::version`]).
    Vfat,
    Xfs,
    Btrfs,
    /// An LVM2 physical volume.
    LvmPv,
    Swap,
    /// A LUKS1 or LUKS2 encrypted volume.
    Luks,
    Unknown,
}

impl Kind {
    /// The TYPE blkid gives this kind (`ext4`, `vfat`, `LVM2_member`, `crypto_LUKS`, …).
    pub fn blkid_type(self) -> &'static str {
        match self {
            Kind::Ext2 => "ext2",
            Kind::Ext3 => "ext3",
            Kind::Ext4 => "ext4",
            Kind::Jbd => "jbd",
            Kind::Vfat => "vfat",
            Kind::Xfs => "xfs",
            Kind::Btrfs => "btrfs",
            Kind::LvmPv => "LVM2_member",
            Kind::Swap => "swap",
            Kind::Luks => "crypto_LUKS",
            Kind::Unknown => "unknown",
        }
    }

    /// A filesystem vmscrub can open and walk (ext2/3/4 and FAT).
    pub fn is_readable(self) -> bool {
        matches!(self, Kind::Ext2 | Kind::Ext3 | Kind::Ext4 | Kind::Vfat)
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub kind: Kind,
    pub label: Option<String>,
    /// As blkid prints it: a lower-case UUID for most, `XXXX-XXXX` for FAT, LVM's
    /// 6-4-4-4-4-4-6 form for a PV.
    pub uuid: Option<String>,
    /// blkid's VERSION: `1.0` (ext revision), `FAT16`, `1` (swap), `2` (LUKS), `LVM2 001`.
    pub version: Option<String>,
    /// The allocation unit: ext and XFS block, FAT cluster, btrfs sector, swap page.
    pub block_size: Option<u32>,
    pub ext: Option<ExtDetails>,
    pub fat: Option<FatDetails>,
    /// Things a user should know (journal needs recovery, odd geometry, …).
    pub warnings: Vec<String>,
}

/// ext2/3/4 specifics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtDetails {
    /// Feature names as `dumpe2fs -h` lists them, in its order.
    pub features: Vec<String>,
    /// The journal holds transactions not yet written back (incompat `needs_recovery`):
    /// the image was taken from a running or crashed system.
    pub needs_recovery: bool,
    /// `s_state` has the "cleanly unmounted" bit.
    pub clean: bool,
    /// `s_state` has the "errors detected" bit.
    pub errors: bool,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    /// Where the superblock described was read: 1024 for the primary, further
    /// in for a backup read because the primary is damaged.
    pub superblock_offset: u64,
}

/// FAT specifics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatDetails {
    /// 12, 16 or 32, from the cluster count.
    pub fat_bits: u8,
    pub clusters: u64,
    pub sector_size: u32,
    /// The label in the boot sector, which may differ from the root directory's.
    pub boot_label: Option<String>,
}

impl Filesystem {
    /// Nothing recognised.
    pub fn unknown() -> Filesystem {
        Filesystem {
            kind: Kind::Unknown,
            label: None,
            uuid: None,
            version: None,
            block_size: None,
            ext: None,
            fat: None,
            warnings: Vec::new(),
        }
    }
}

type Prober<D> = fn(&D) -> Result<Option<Filesystem>, Error>;

/// Identifies what `dev` (a partition, or a whole disk without a table) holds.
///
/// Signatures are tried from the most specific to the weakest — LUKS, LVM2, swap,
/// XFS, btrfs, ext, and FAT last, whose boot-sector checks are the easiest to pass by
/// accident. The first match wins; near-misses leave their warnings on the
/// [`Kind::Unknown`] result.
pub fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Filesystem, Error> {
    let probers: [Prober<D>; 7] = [
        luks::probe,
        lvm::probe,
        swap::probe,
        xfs::probe,
        btrfs::probe,
        ext::probe,
        fat::probe,
    ];
    let mut warnings = Vec::new();
    for p in probers {
        match p(dev)? {
            Some(fs) if fs.kind != Kind::Unknown => return Ok(fs),
            Some(fs) => warnings.extend(fs.warnings),
            None => {}
        }
    }
    Ok(Filesystem {
        warnings,
        ..Filesystem::unknown()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::{MemDisk, WriteAt};

    #[test]
    fn each_signature_is_found_through_probe() {
        assert_eq!(
            probe(&MemDisk::new(ext::tests::sb(0x3c, 0x2c2, 0x47b)))
                .unwrap()
                .kind,
            Kind::Ext4
        );
        assert_eq!(
            probe(&MemDisk::new(xfs::tests::sb())).unwrap().kind,
            Kind::Xfs
        );
        assert_eq!(
            probe(&MemDisk::new(lvm::tests::label())).unwrap().kind,
            Kind::LvmPv
        );
        let fs = probe(&MemDisk::zeroed(1 << 20)).unwrap();
        assert_eq!(fs, Filesystem::unknown());
        assert_eq!(probe(&MemDisk::zeroed(0)).unwrap().kind, Kind::Unknown);
    }

    /// A device that fails every read: probing reports the I/O error, it does not
    /// turn it into "unknown".
    struct Broken;
    impl ReadAt for Broken {
        fn size(&self) -> u64 {
            1 << 20
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt cluster",
            ))
        }
    }

    #[test]
    fn io_errors_are_errors() {
        let e = probe(&Broken).unwrap_err();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(source.contains("corrupt cluster"), "{e}: {source}");
    }

    /// Random bytes and random flips over real-looking superblocks of every kind,
    /// at every small size: no panic, and the loop is bounded.
    #[test]
    fn fuzz_never_panics() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bases = [
            ext::tests::sb(0x3c, 0x2c2, 0x47b),
            xfs::tests::sb(),
            lvm::tests::label(),
            vec![0u8; 70000],
        ];
        let mut found = 0;
        for base in &bases {
            for _ in 0..400 {
                let len = (next() % (base.len() as u64 + 1)) as usize;
                let m = MemDisk::new(base[..len].to_vec());
                for _ in 0..(next() % 16) {
                    if len > 0 {
                        let at = next() % len as u64;
                        m.write_all_at(&[next() as u8], at).unwrap();
                    }
                }
                if probe(&m).unwrap().kind != Kind::Unknown {
                    found += 1;
                }
            }
        }
        assert!(
            found > 50,
            "the corpus must still contain recognisable volumes ({found})"
        );
    }
}
