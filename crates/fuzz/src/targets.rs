//! One target per parser: its seeds, where its structures are (the hot ranges
//! mutations aim at), and a run that drives the parser over a mutated input
//! as far as it goes — open, map, walk, read — with every piece of work bounded
//! by the input, never by what the input claims.

use std::io::Read;
use std::sync::OnceLock;

use vmscrub::fs::{FileKind, walk};
use vmscrub_blockdev::{FileDisk, ReadAt};
use vmscrub_recovery::{Identity, Recipient};

use crate::mutate::Hot;
use crate::seeds::{self, Seed};

/// A parser under fuzz.
pub struct Target {
    pub name: &'static str,
    /// What the parser is, for `--list`.
    pub about: &'static str,
    seeds: fn() -> Vec<Seed>,
    run: fn(&[u8], &Seed),
}

impl Target {
    /// A target from its parts (the runner's own tests plant bugs with it).
    pub fn new(
        name: &'static str,
        about: &'static str,
        seeds: fn() -> Vec<Seed>,
        run: fn(&[u8], &Seed),
    ) -> Target {
        Target {
            name,
            about,
            seeds,
            run,
        }
    }

    pub fn seeds(&self) -> Vec<Seed> {
        (self.seeds)()
    }

    /// Drives the parser over `input` (a mutation of `seed`). Any result is
    /// fine; a panic, a hang or an oversized allocation is the finding.
    pub fn run(&self, input: &[u8], seed: &Seed) {
        (self.run)(input, seed)
    }
}

pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "qcow2",
            about: "qcow2 header, extensions, L1/L2 and refcount tables, compressed clusters",
            seeds: qcow2_seeds,
            run: qcow2_run,
        },
        Target {
            name: "vmdk",
            about: "VMDK sparse/stream headers, descriptor, grain directory and tables, markers",
            seeds: vmdk_seeds,
            run: vmdk_run,
        },
        Target {
            name: "vhd",
            about: "VHD footer (both copies), dynamic header, BAT, sector bitmaps",
            seeds: vhd_seeds,
            run: vhd_run,
        },
        Target {
            name: "vhdx",
            about: "VHDX identifier, both headers, both region tables, metadata items, BAT",
            seeds: vhdx_seeds,
            run: vhdx_run,
        },
        Target {
            name: "partition",
            about: "GPT (both headers, entry arrays) and MBR (extended/logical chains)",
            seeds: partition_seeds,
            run: partition_run,
        },
        Target {
            name: "ext4",
            about: "ext2/3/4: superblock, descriptors, bitmaps, inodes, extents, directories, htree, xattrs, journal",
            seeds: ext4_seeds,
            run: ext4_run,
        },
        Target {
            name: "xfs",
            about: "XFS: superblock, AGF/AGI and the AG B+trees, inodes, extent lists and bmap B+trees, every directory and attribute form, symlinks, the log head",
            seeds: xfs_seeds,
            run: xfs_run,
        },
        Target {
            name: "fat",
            about: "FAT12/16/32: boot sector, FSInfo, every FAT, directories, long names, chains",
            seeds: fat_seeds,
            run: fat_run,
        },
        Target {
            name: "recovery",
            about: "the recovery archive: header, recipient entries, encrypted chunk framing",
            seeds: recovery_seeds,
            run: recovery_run,
        },
        Target {
            name: "recovery-tar",
            about: "the archive's tar inside the encryption: ustar, pax, sparse maps, manifest",
            seeds: recovery_tar_seeds,
            run: recovery_tar_run,
        },
        Target {
            name: "lvm",
            about: "LVM2: PV label, metadata area headers and ring buffer, metadata text, VG assembly, LV maps",
            seeds: lvm_seeds,
            run: lvm_run,
        },
        Target {
            name: "image",
            about: "the image sniffer and discovery: format sniffing, partitions, filesystem probes, the guest view",
            seeds: image_seeds,
            run: image_run,
        },
    ]
}

const KIB: usize = 1024;

// ------------------------------------------------------------------ qcow2

fn qcow2_seeds() -> Vec<Seed> {
    seeds::fixtures(
        &[
            "c-qcow2",
            "c-qcow2-zlib",
            "c-qcow2-zstd",
            "c-qcow2-4k-clusters",
            "c-qcow2-v2",
            "c-qcow2-zero-clusters",
            "c-qcow2-dirty",
        ],
        Hot(vec![0..512 * KIB]),
    )
}

fn qcow2_run(input: &[u8], seed: &Seed) {
    // Small caches so eviction paths run too.
    let mut options = vmscrub_qcow2::OpenOptions::default();
    options.l2_cache_tables = Some(2);
    options.compressed_cache_clusters = 2;
    let Ok(disk) = vmscrub_qcow2::Qcow2::open(seed.disk(input), None, &options) else {
        return;
    };
    let _ = disk.info();
    read_disk(&disk, input.len());
}

/// Reads the allocated ranges of a virtual disk, at most about twice the
/// input's size in all (a small file cannot justify reading more).
fn read_disk(disk: &dyn ReadAt, input_len: usize) {
    let budget = (2 * input_len as u64).max(1 << 20);
    let ranges = disk.allocated_ranges().ok();
    let mut buf = vec![0u8; 64 * KIB + 7];
    let mut spent = 0u64;
    let spans: Vec<std::ops::Range<u64>> = match &ranges {
        Some(r) => r.iter().collect(),
        None => vec![0..disk.size().min(budget)],
    };
    for r in spans {
        let mut pos = r.start;
        while pos < r.end && spent < budget {
            let n = (r.end - pos).min(buf.len() as u64) as usize;
            let _ = disk.read_exact_at(&mut buf[..n], pos);
            pos += n as u64;
            spent += n as u64;
        }
    }
    // The last sector, wherever the size says it is.
    let size = disk.size();
    if size >= 512 {
        let _ = disk.read_exact_at(&mut buf[..512], size - 512);
    }
}

// ------------------------------------------------------------------- vmdk

fn vmdk_seeds() -> Vec<Seed> {
    let hot = Hot(vec![0..128 * KIB]);
    let mut v = seeds::fixtures(&["c-vmdk-sparse", "c-vmdk-stream"], hot.clone());
    v.extend(seeds::corpus("qemu", ".vmdk", 4 << 20, &hot));
    // A stream's footer, marker and grain directory are at its end.
    for s in &mut v {
        let len = s.data.len();
        s.hot.0.push(len.saturating_sub(64 * KIB)..len);
    }
    v
}

fn vmdk_run(input: &[u8], seed: &Seed) {
    let file = seed.disk(input);
    let Ok(disk) = vmscrub_vmdk::Vmdk::open(file, "fuzz.vmdk", &vmscrub_vmdk::NoExtentFiles) else {
        return;
    };
    let _ = disk.info();
    read_disk(&disk, input.len());
}

fn vhd_seeds() -> Vec<Seed> {
    let hot = Hot(vec![0..64 * KIB]);
    let mut v = seeds::fixtures(&["c-vhd-dynamic"], hot.clone());
    v.extend(seeds::corpus("qemu", ".vhd", 4 << 20, &hot));
    // The footer is the last 512 bytes.
    for s in &mut v {
        let len = s.data.len();
        s.hot.0.push(len.saturating_sub(512)..len);
    }
    v
}

fn vhd_run(input: &[u8], seed: &Seed) {
    let Ok(disk) = vmscrub_vhd::Vhd::open(seed.disk(input)) else {
        return;
    };
    let _ = disk.allocated_bytes();
    read_disk(&disk, input.len());
}

fn vhdx_seeds() -> Vec<Seed> {
    // Headers and region tables in the first 320 KiB, then the log, the
    // metadata region and the BAT in the MiBs after.
    let hot = Hot(vec![
        0..320 * KIB,
        2048 * KIB..2112 * KIB,
        3072 * KIB..3136 * KIB,
    ]);
    let mut v = seeds::fixtures(&["c-vhdx-dynamic"], hot.clone());
    v.extend(seeds::corpus("qemu", ".vhdx", 8 << 20, &hot));
    v
}

fn vhdx_run(input: &[u8], seed: &Seed) {
    let Ok(disk) = vmscrub_vhdx::Vhdx::open(seed.disk(input)) else {
        return;
    };
    let _ = disk.allocated_bytes();
    read_disk(&disk, input.len());
}

// -------------------------------------------------------------- partition

fn partition_seeds() -> Vec<Seed> {
    let names = ["gpt-4k", "gpt-esp-root", "mbr-logical"];
    vmscrub_fixtures::build(&names);
    let mut v: Vec<Seed> = names
        .iter()
        .map(|n| {
            let path = vmscrub_fixtures::path_of(n);
            let starts: Vec<u64> = FileDisk::open(&path)
                .ok()
                .and_then(|d| vmscrub_partition::detect(&d).ok())
                .map(|t| t.table.regions().iter().map(|r| r.offset).collect())
                .unwrap_or_default();
            seeds::window(n, &starts)
        })
        .collect();
    v.extend(seeds::corpus(
        "qemu",
        ".raw",
        4 << 20,
        &Hot(vec![0..64 * KIB]),
    ));
    v
}

fn partition_run(input: &[u8], seed: &Seed) {
    let disk = seed.disk(input);
    if let Ok(t) = vmscrub_partition::detect(&disk) {
        let _ = (t.table.kind(), t.table.disk_id(), t.table.sector_size());
        let _ = t.table.regions();
    }
}

// ------------------------------------------------------------------- ext4

fn ext4_seeds() -> Vec<Seed> {
    let hot = Hot(vec![0..256 * KIB]);
    let mut v = seeds::fixtures(&["ext2-small", "ext3-small"], hot.clone());
    v.extend(seeds::corpus("e2fsprogs", ".img", 2 << 20, &hot));
    v
}

fn ext4_run(input: &[u8], seed: &Seed) {
    use vmscrub_ext4::{Ext4, FileType, ROOT_INO};
    let Ok(fs) = Ext4::open(seed.disk(input)) else {
        return;
    };
    for g in 0..fs.groups().len() as u32 {
        let _ = fs.block_bitmap(g);
        let _ = fs.inode_bitmap(g);
    }
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![ROOT_INO];
    let mut entries = 0usize;
    let mut buf = vec![0u8; 64 * KIB];
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) {
            continue;
        }
        if let Ok(inode) = fs.inode(dir) {
            let _ = fs.htree(&inode);
        }
        let Ok(rd) = fs.read_dir(dir) else { continue };
        for e in rd {
            let Ok(e) = e else { break };
            entries += 1;
            if entries > 5_000 {
                return;
            }
            if e.is_dot_or_dotdot() {
                continue;
            }
            let Ok(inode) = fs.inode(e.inode) else {
                continue;
            };
            let _ = fs.xattrs_of(&inode);
            let _ = fs.owned_blocks(e.inode);
            match inode.file_type() {
                FileType::Directory => stack.push(e.inode),
                FileType::Symlink => {
                    let _ = fs.readlink_of(&inode);
                }
                FileType::Regular => {
                    if let Ok(r) = fs.open_inode(inode) {
                        let _ = r.read_at(0, &mut buf);
                        let _ = r.read_at(r.size().saturating_sub(4096), &mut buf[..4096]);
                    }
                }
                _ => {}
            }
        }
    }
    for inode in fs.inodes_in_use().take(2_000) {
        let Ok(inode) = inode else { break };
        let _ = fs.file_map(&inode);
    }
    if let Ok(Some(j)) = fs.journal() {
        let _ = fs.journal_transactions(&j);
    }
}

// -------------------------------------------------------------------- XFS

fn xfs_seeds() -> Vec<Seed> {
    // Small XFS images (a 24-32 MB root and home, a dirty log, v4) as windows
    // of their non-zero blocks: what they hold is metadata, all of it hot.
    let names = ["xfs-rocky-root", "xfs-rocky-home", "xfs-dirty", "xfs-v4"];
    vmscrub_fixtures::build(&names);
    names
        .iter()
        .filter_map(|n| seeds::sparse(format!("fixture:{n}"), &vmscrub_fixtures::path_of(n)))
        .filter(|s| s.data.len() <= 4 << 20)
        .collect()
}

fn xfs_run(input: &[u8], seed: &Seed) {
    use vmscrub_xfs::{FileType, Fork, OpenOptions, Xfs};
    // With CRCs checked most mutations stop at the first checksum; without,
    // they reach every parser behind it.
    let _ = Xfs::open(seed.disk(input));
    let opts = OpenOptions {
        verify_checksums: false,
    };
    let Ok(fs) = Xfs::open_with(seed.disk(input), opts) else {
        return;
    };
    for ag in 0..fs.superblock().ag_count.min(16) {
        let _ = fs.ag_headers(ag);
        let _ = fs.agfl(ag);
        let _ = fs.free_extents(ag, vmscrub_xfs::AgTree::Bno);
        let _ = fs.free_extents(ag, vmscrub_xfs::AgTree::Cnt);
        let _ = fs.inode_chunks(ag, vmscrub_xfs::AgTree::Ino);
        let _ = fs.inode_chunks(ag, vmscrub_xfs::AgTree::Fino);
        let _ = fs.rmaps(ag);
        let _ = fs.refcounts(ag);
    }
    let _ = fs.log_state();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![fs.root_ino()];
    let mut entries = 0usize;
    let mut buf = vec![0u8; 64 * KIB];
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) {
            continue;
        }
        let Ok(inode) = fs.inode(dir) else { continue };
        let Ok(list) = fs.read_dir(&inode) else {
            continue;
        };
        for e in list {
            entries += 1;
            if entries > 5_000 {
                return;
            }
            let Ok(inode) = fs.inode(e.ino) else { continue };
            let _ = fs.xattrs(&inode);
            let _ = fs.block_map(&inode, Fork::Attr);
            match inode.file_type() {
                Some(FileType::Directory) => stack.push(e.ino),
                Some(FileType::Symlink) => {
                    let _ = fs.read_link(&inode);
                }
                Some(FileType::Regular) => {
                    if let Ok(r) = fs.open_file(inode) {
                        let size = r.inode().size;
                        let _ = r.read_at(0, &mut buf);
                        let _ = r.read_at(size.saturating_sub(4096), &mut buf[..4096]);
                    }
                }
                _ => {}
            }
        }
    }
}

// -------------------------------------------------------------------- FAT

fn fat_seeds() -> Vec<Seed> {
    let hot = Hot(vec![0..256 * KIB]);
    let mut v = seeds::fixtures(&["fat12-small", "fat16-small"], hot.clone());
    v.extend(seeds::corpus("dosfstools", ".img", 2 << 20, &hot));
    v
}

fn fat_run(input: &[u8], seed: &Seed) {
    let Ok(fs) = vmscrub_fat::FatFs::open(seed.disk(input)) else {
        return;
    };
    let _ = fs.volume_label();
    let _ = fs.free_clusters();
    let _ = fs.free_cluster_runs();
    let Ok(entries) = fs.walk() else { return };
    let mut buf = vec![0u8; 64 * KIB];
    for e in entries.iter().take(5_000) {
        let _ = fs.chain(&e.entry.node);
        if let Ok(mut r) = fs.open_file(e.entry.node.id) {
            let _ = r.read(&mut buf);
        }
    }
    for p in [&b"/a/b"[..], b"/LONG NAME.TXT", b"/x"] {
        let _ = fs.lookup(p);
    }
}

// --------------------------------------------------------------- recovery

/// A throw-away RSA key for the fuzzer's archives (ssh-keygen, once per process).
fn key() -> &'static (Identity, Recipient) {
    static KEY: OnceLock<(Identity, Recipient)> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("id");
        let ok = std::process::Command::new("ssh-keygen")
            .args([
                "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "fuzz", "-f",
            ])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "ssh-keygen (openssh-client) is needed for the recovery targets"
        );
        let id = Identity::parse(&std::fs::read(&path).expect("key"), &mut || {
            Err(vmscrub_recovery::Error::Other(
                "the key has no passphrase".into(),
            ))
        })
        .expect("a fresh ssh-keygen key parses");
        let r = id.to_recipient().expect("recipient of a fresh key");
        (id, r)
    })
}

/// A small archive: files (one sparse), a directory, links, with 1 KiB chunks.
fn sample_archive() -> Vec<u8> {
    use vmscrub_recovery::{
        ArchiveInfo, ArchiveWriter, Metadata, Segment, Timestamp, WriterOptions,
    };
    let opts = WriterOptions {
        chunk_size: 1024,
        ..WriterOptions::default()
    };
    let meta = |mode| Metadata {
        mode,
        uid: 1000,
        gid: 1000,
        uname: Some(b"alice".to_vec()),
        gname: Some(b"users".to_vec()),
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
        xattrs: vec![],
    };
    let mut w = ArchiveWriter::new(
        Vec::new(),
        &[key().1.clone()],
        ArchiveInfo::default(),
        &opts,
    )
    .expect("archive writer");
    let text: Vec<u8> = (0..3000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let ok = w.add_dir(b"etc", &meta(0o40755), "op").is_ok()
        && w.add_file(
            b"etc/a.txt",
            &meta(0o100600),
            "op",
            text.len() as u64,
            &mut &text[..],
        )
        .is_ok()
        && w.add_symlink(b"etc/link", &meta(0o120777), "op", b"a.txt")
            .is_ok()
        && w.add_hardlink(b"etc/hard", &meta(0o100600), "op", b"etc/a.txt")
            .is_ok()
        && w.add_sparse_file(
            b"var/sparse",
            &meta(0o100644),
            "op",
            1 << 20,
            &[
                Segment {
                    offset: 4096,
                    len: 100,
                },
                Segment {
                    offset: 65536,
                    len: 50,
                },
            ],
            &mut &[7u8; 150][..],
        )
        .is_ok();
    assert!(ok, "building the sample archive");
    w.finish().expect("finishing the sample archive")
}

fn recovery_seeds() -> Vec<Seed> {
    let a = sample_archive();
    let len = a.len();
    vec![Seed::new(
        "generated:recovery-archive",
        a,
        Hot(vec![0..1024.min(len)]),
    )]
}

/// Reads every member of a decrypted archive, data included, bounded.
fn read_members<R: Read>(payload: vmscrub_recovery::reader::Payload<R>) {
    let mut t = vmscrub_recovery::TarReader::new(payload);
    let mut buf = vec![0u8; 16 * KIB];
    for _ in 0..10_000 {
        match t.next_entry() {
            Ok(Some(_)) => {
                let mut spent = 0;
                while let Ok(n) = t.read_data(&mut buf) {
                    spent += n;
                    if n == 0 || spent > 64 << 20 {
                        break;
                    }
                }
            }
            _ => return,
        }
    }
    let _ = t.finish();
}

fn recovery_run(input: &[u8], _: &Seed) {
    if let Ok((_, payload)) = vmscrub_recovery::open(input, &key().0) {
        read_members(payload);
    }
}

fn recovery_tar_seeds() -> Vec<Seed> {
    let mut tar = Vec::new();
    vmscrub_recovery::decrypt_to(&sample_archive()[..], &key().0, &mut tar)
        .expect("the sample archive decrypts");
    let len = tar.len();
    vec![Seed::new("generated:recovery-tar", tar, Hot(vec![0..len]))]
}

fn recovery_tar_run(input: &[u8], _: &Seed) {
    let opts = vmscrub_recovery::WriterOptions {
        chunk_size: 1024,
        ..Default::default()
    };
    let Ok(archive) =
        vmscrub_recovery::encrypt_tar(Vec::new(), &[key().1.clone()], &opts, &mut &input[..])
    else {
        return;
    };
    if let Ok((_, payload)) = vmscrub_recovery::open(&archive[..], &key().0) {
        read_members(payload);
    }
}

// -------------------------------------------------------------------- lvm

/// The first MiB of every PV of the LVM fixtures (label, metadata area with its
/// ring buffer of older copies), as a device of its own.
fn lvm_seeds() -> Vec<Seed> {
    let names = ["lvm-rhel", "lvm-striped", "lvm-thin"];
    vmscrub_fixtures::build(&names);
    let mut v = vec![];
    for n in names {
        let path = vmscrub_fixtures::path_of(n);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let disk = vmscrub_blockdev::MemDisk::new(bytes.clone());
        let Ok(t) = vmscrub_partition::detect(&disk) else {
            continue;
        };
        for r in t.table.regions() {
            let a = r.offset as usize;
            let b = (a + 1024 * KIB).min(bytes.len());
            let pv = &bytes[a..b];
            if pv.get(512..520) == Some(b"LABELONE") {
                let len = pv.len();
                v.push(Seed::new(
                    format!("pv:{n}/{}", r.index),
                    pv.to_vec(),
                    Hot(vec![0..len]),
                ));
            }
        }
    }
    v
}

fn lvm_run(input: &[u8], seed: &Seed) {
    let disk = seed.disk(input);
    let Ok(Some(pv)) = vmscrub_lvm::read_pv(&disk) else {
        return;
    };
    let (ok, _refused) = vmscrub_lvm::assemble(&[Some(&pv)]);
    for a in ok {
        let devs = std::sync::Arc::new(vec![disk.clone()]);
        for lv in &a.vg.lvs {
            let Ok(map) = vmscrub_lvm::LvMap::new(&a.vg, lv) else {
                continue;
            };
            if let Ok(dev) = vmscrub_lvm::LvDevice::new(devs.clone(), map) {
                read_disk(&dev, input.len());
            }
        }
        if let (Some(p), Some(alloc)) = (a.vg.pvs.first(), a.allocated.first()) {
            let _ = vmscrub_lvm::unused_pv_ranges(&pv, p, a.vg.extent_size, alloc, disk.size());
        }
    }
}

// ------------------------------------------------------------------ image

fn image_seeds() -> Vec<Seed> {
    let mut v = partition_seeds();
    let hot = Hot(vec![0..256 * KIB]);
    v.extend(seeds::fixtures(
        &["fat12-small", "ext2-small", "conv-one-sector"],
        hot,
    ));
    v
}

fn image_run(input: &[u8], seed: &Seed) {
    let disk = seed.disk(input);
    let head_len = input.len().min(vmscrub::image::SNIFF_HEAD);
    let tail_from = input.len().saturating_sub(vmscrub::image::SNIFF_TAIL);
    let _ = vmscrub::image::sniff(&input[..head_len], &input[tail_from..]);
    let Ok(layout) = vmscrub::image::discover(disk) else {
        return;
    };
    let guest = vmscrub::guest::guest_from_layout(&layout);
    let mut buf = vec![0u8; 16 * KIB];
    for g in &guest.filesystems {
        let fs = g.fs.as_ref();
        let mut visited = 0usize;
        let _ = walk::walk(fs, fs.root(), b"/", |e| {
            visited += 1;
            let _ = fs.metadata(e.entry.id);
            match e.entry.kind {
                FileKind::Regular => {
                    if let Ok(mut r) = fs.open(e.entry.id) {
                        let _ = r.read(&mut buf);
                    }
                }
                FileKind::Symlink => {
                    let _ = fs.read_link(e.entry.id);
                }
                _ => {}
            }
            Ok(visited < 3_000)
        });
    }
}
