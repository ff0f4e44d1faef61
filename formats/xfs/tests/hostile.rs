//! Hostile images: truncated, bit-flipped (with CRC checking on and off) and
//! randomly mutated copies of real XFS fixtures (fixtures/xfs.toml). Every call
//! must return — a value or a typed error that says what and where — without a
//! panic and within a time bound. Damage the CRCs catch must be reported as a
//! checksum mismatch naming the structure and the inode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::{Duration, Instant};

use vmscrub_blockdev::MemDisk;
use vmscrub_xfs::{Error, FileType, OpenOptions, Xfs};

fn image(name: &str) -> Vec<u8> {
    std::fs::read(vmscrub_fixtures::fixture(name)).unwrap()
}

/// Walks everything reachable, reading every file; returns how many entries
/// were visited and how many calls failed (each with a non-empty message).
fn walk_all(fs: &Xfs<MemDisk>) -> (usize, usize) {
    let (mut seen, mut failed) = (0usize, 0usize);
    let mut note = |e: Error| {
        assert!(!e.to_string().is_empty());
        failed += 1;
    };
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![fs.root_ino()];
    while let Some(dir) = stack.pop() {
        if !visited.insert(dir) || visited.len() > 20_000 {
            continue;
        }
        let entries = match fs.inode(dir).and_then(|i| fs.read_dir(&i)) {
            Ok(e) => e,
            Err(e) => {
                note(e);
                continue;
            }
        };
        for e in entries {
            seen += 1;
            let inode = match fs.inode(e.ino) {
                Ok(i) => i,
                Err(err) => {
                    note(err);
                    continue;
                }
            };
            if let Err(err) = fs.xattrs(&inode) {
                note(err);
            }
            match inode.file_type() {
                Some(FileType::Directory) => stack.push(e.ino),
                Some(FileType::Symlink) => {
                    if let Err(err) = fs.read_link(&inode) {
                        note(err);
                    }
                }
                Some(FileType::Regular) => match fs.open_file(inode) {
                    Ok(mut r) => {
                        let mut sink = Vec::new();
                        if let Err(err) = r.by_ref().take(1 << 20).read_to_end(&mut sink) {
                            note(Error::Corrupt {
                                what: "file",
                                loc: vmscrub_xfs::Loc::NONE,
                                detail: err.to_string(),
                            });
                        }
                    }
                    Err(err) => note(err),
                },
                _ => {}
            }
        }
    }
    (seen, failed)
}

fn open(bytes: Vec<u8>, verify: bool) -> Result<Xfs<MemDisk>, Error> {
    Xfs::open_with(
        MemDisk::new(bytes),
        OpenOptions {
            verify_checksums: verify,
        },
    )
}

#[test]
fn truncated_images_are_refused_with_the_reason() {
    let img = image("xfs-rocky-home");
    for len in [0, 100, 4096, img.len() / 2, img.len() - 4096] {
        let e = open(img[..len].to_vec(), true)
            .err()
            .unwrap_or_else(|| panic!("{len} bytes opened"));
        let msg = e.to_string();
        assert!(
            msg.contains("truncated") || matches!(e, Error::Io { .. }),
            "{len} bytes: {msg}"
        );
    }
    let (seen, failed) = walk_all(&open(img, true).unwrap());
    assert!(
        seen == 3 && failed == 0,
        "{seen} entries, {failed} failures"
    );
}

#[test]
fn a_flipped_inode_byte_is_a_checksum_mismatch_naming_the_inode() {
    let img = image("xfs-rocky-home");
    let fs = open(img.clone(), true).unwrap();
    let ino = fs.lookup(b"/rocky/notes.txt", false).unwrap();
    let at = fs.inode(ino).unwrap().offset as usize;
    let mut bad = img.clone();
    bad[at + 60] ^= 0x40; // inside di_size
    let fs = open(bad.clone(), true).unwrap();
    let e = fs.inode(ino).unwrap_err();
    assert!(matches!(e, Error::ChecksumMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&format!("inode {ino}")), "{e}");
    // Without CRC checks the damaged size is read as it is: a clear value,
    // not a crash (the file now claims 1 GiB more than it holds).
    let fs = open(bad, false).unwrap();
    let i = fs.inode(ino).unwrap();
    assert_eq!(i.size, 19 + (1 << 30));
    // A superblock byte: refused when checked, read when not.
    let mut bad = img;
    bad[200] ^= 1;
    assert!(matches!(
        open(bad.clone(), true),
        Err(Error::ChecksumMismatch { .. })
    ));
    assert!(open(bad, false).is_ok());
}

/// A deterministic xorshift, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_mutations_give_errors_not_panics_or_hangs() {
    for name in ["xfs-rocky-home", "xfs-rocky-root"] {
        let img = image(name);
        // Mutations aim at the non-zero blocks: the metadata.
        let blocks: Vec<usize> = (0..img.len() / 4096)
            .filter(|b| img[b * 4096..(b + 1) * 4096].iter().any(|&x| x != 0))
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..150 {
            let mut m = img.clone();
            for _ in 0..1 + rng.next() % 16 {
                let b = blocks[(rng.next() % blocks.len() as u64) as usize];
                let at = b * 4096 + (rng.next() % 4096) as usize;
                m[at] = match rng.next() % 3 {
                    0 => m[at] ^ (1 << (rng.next() % 8)),
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            for verify in [true, false] {
                let t = Instant::now();
                if let Ok(fs) = open(m.clone(), verify) {
                    let _ = fs.log_state();
                    walk_all(&fs);
                }
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{name} case {case} (verify {verify}) took {:?}",
                    t.elapsed()
                );
            }
        }
    }
}

/// Shared subtrees (two pointers to one block) would make a walk repeat work
/// without end in a deeper tree: the bmap B+tree and the attribute da-btree
/// refuse a block met twice, with CRCs recomputed so the checks behind them run.
#[test]
fn a_block_reached_twice_is_refused_in_both_btrees() {
    use vmscrub_xfs::checksum;
    let img = image("xfs-rich");
    let fs = open(img.clone(), true).unwrap();
    // The fragmented file's bmap root (in the inode): its second child pointer
    // made equal to the first.
    let ino = fs.lookup(b"/files/fragmented", false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let fork = inode.data_fork();
    assert!(
        u16::from_be_bytes([fork[2], fork[3]]) >= 2,
        "the root has two children"
    );
    let maxrecs = (fork.len() - 4) / 16;
    let root = inode.offset as usize + inode.data_fork_offset();
    let ptrs = root + 4 + maxrecs * 8;
    let mut bad = img.clone();
    bad.copy_within(ptrs..ptrs + 8, ptrs + 8);
    let at = inode.offset as usize;
    let size = inode.raw().len();
    let crc = checksum::compute(&bad[at..at + size], 100);
    bad[at + 100..at + 104].copy_from_slice(&crc.to_le_bytes());
    let fs2 = open(bad, true).unwrap();
    let e = fs2
        .open_file(fs2.inode(ino).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("reached twice"), "{e}");
    // The attribute node's second child pointed back at the node itself.
    let ino = fs.lookup(b"/xattr/node", false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let map = fs.block_map(&inode, vmscrub_xfs::Fork::Attr).unwrap();
    let node = fs.superblock().fsb_to_byte(map.extents[0].start).unwrap() as usize;
    let bs = fs.block_size() as usize;
    let mut bad = img;
    assert_eq!(
        &bad[node + 8..node + 10],
        &[0x3e, 0xbe],
        "block 0 is a da-btree node"
    );
    bad[node + 64 + 8 + 4..node + 64 + 8 + 8].fill(0); // entry 1's child = block 0
    let crc = checksum::compute(&bad[node..node + bs], 12);
    bad[node + 12..node + 16].copy_from_slice(&crc.to_le_bytes());
    let fs2 = open(bad, true).unwrap();
    let e = fs2
        .xattrs(&fs2.inode(ino).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("reached twice"), "{e}");
}

/// The editor on mutated images: every operation and the commit answer with
/// a result (an error names what it refused), never a panic or a hang, and
/// an error before commit leaves the device as it was.
#[test]
fn the_editor_on_random_mutations_gives_errors_not_panics_or_hangs() {
    use vmscrub_xfs::{Editor, EditorOptions};
    for (name, paths) in [
        (
            "xfs-rocky-root",
            &[
                &b"/root/.bash_history"[..],
                b"/etc",
                b"/usr/share/doc/keep.txt",
            ][..],
        ),
        ("xfs-rocky-home", &[&b"/rocky"[..], b"/rocky/notes.txt"][..]),
    ] {
        let img = image(name);
        let blocks: Vec<usize> = (0..img.len() / 4096)
            .filter(|b| img[b * 4096..(b + 1) * 4096].iter().any(|&x| x != 0))
            .collect();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..120 {
            let mut m = img.clone();
            for _ in 0..1 + rng.next() % 8 {
                let b = blocks[(rng.next() % blocks.len() as u64) as usize];
                let at = b * 4096 + (rng.next() % 4096) as usize;
                m[at] ^= 1 << (rng.next() % 8);
            }
            let t = Instant::now();
            let disk = MemDisk::new(m.clone());
            if let Ok(mut ed) = Editor::open(&disk, EditorOptions::default()) {
                for (i, p) in paths.iter().enumerate() {
                    let _ = match (i + case) % 3 {
                        0 => ed.remove_tree(p).map(|_| ()),
                        1 => ed.truncate(p).map(|_| ()),
                        _ => ed.rewrite(p, b"x\n").map(|_| ()),
                    };
                }
                if ed.commit().is_err() {
                    // A refused commit may have written part of the edit
                    // (the overlay is thrown away by the scrub); it must
                    // only not panic.
                }
            } else {
                assert!(
                    disk.to_vec() == m,
                    "{name} case {case}: a refused open wrote"
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{name} case {case} took {:?}",
                t.elapsed()
            );
        }
    }
}
