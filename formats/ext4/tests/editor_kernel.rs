//! The Linux kernel as an oracle (opt-in: it needs root and loop devices, which
//! CI containers usually lack): an edited image is loop-mounted, every file is
//! read back through the kernel and compared with our reader, then the kernel
//! reuses the freed inode slots and blocks (thousands of new files, a large one),
//! and after unmounting `e2fsck -fn` must still be clean.
//!
//! Run with `cargo test -p vmscrub-ext4 --test editor_kernel -- --ignored` as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edit_support;

use std::path::Path;
use std::process::Command;

use common::*;
use edit_support::*;
use vmscrub_ext4::FileType;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kernel_check(name: &str) {
    let img = scratch(name);
    edit(&img.path, caller_zeroes(), |ed| {
        ed.remove_tree(b"/scrub/tree").unwrap();
        ed.unlink(b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa")
            .unwrap();
        ed.unlink(b"/scrub/xattr/SECRETNAME_08_sa").unwrap();
        ed.truncate(b"/scrub/log/KEEPNAME_04_big.log").unwrap();
        ed.rewrite(b"/scrub/etc/KEEPNAME_03_machine-id", b"uninitialized\n")
            .unwrap();
    });
    e2fsck_clean(&img.path);
    let ours = walk_ours(&open(&img.path));
    let mnt = tempfile::tempdir().unwrap();
    let m = mnt.path().to_str().unwrap();
    run("mount", &["-o", "loop", img.path.to_str().unwrap(), m]);
    let result = std::panic::catch_unwind(|| {
        for (p, n) in &ours.nodes {
            let host = Path::new(m).join(String::from_utf8_lossy(&p[1..]).as_ref());
            if n.ftype == FileType::Regular && n.sha256.is_some() && !p.starts_with(b"/names/") {
                let data = std::fs::read(&host)
                    .unwrap_or_else(|e| panic!("{name}: {}: {e}", host.display()));
                assert_eq!(
                    Some(sha(&data)),
                    n.sha256,
                    "{name}: {} through the kernel",
                    host.display()
                );
            }
        }
        let dir = Path::new(m).join("scrub/new");
        std::fs::create_dir(&dir).unwrap();
        for i in 0..3000 {
            std::fs::write(dir.join(format!("f{i}")), format!("new {i}\n")).unwrap();
        }
        std::fs::write(dir.join("big"), vec![0xA5u8; 20 << 20]).unwrap();
    });
    run("umount", &[m]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    e2fsck_clean(&img.path);
}

#[test]
#[ignore = "needs root and loop devices; run with --ignored"]
fn kernel_mounts_and_reuses_edited_images() {
    for name in [
        "ed-ext4",
        "ed-ext4-1k",
        "ed-ext4-inline",
        "ed-ext2",
        "ed-ext3",
        "ed-ext4-metabg",
    ] {
        kernel_check(name);
    }
}
