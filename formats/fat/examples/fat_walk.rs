//! Benchmark helper: walk a FAT image and read every file.
//!
//! `cargo run --release -p vmscrub-fat --example fat_walk -- IMAGE` prints the
//! number of entries and bytes read; compare with `mcopy -s -i IMAGE ::/ DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use vmscrub_blockdev::FileDisk;
use vmscrub_fat::FatFs;

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: fat_walk IMAGE");
    let fs = FatFs::open(FileDisk::open(path.as_ref()).unwrap()).unwrap();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let entries = fs.walk().unwrap();
    for w in &entries {
        if !w.entry.node.is_dir {
            let mut r = fs.open_file(w.entry.id()).unwrap();
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                bytes += n as u64;
            }
        }
    }
    println!("{} entries, {bytes} bytes", entries.len());
}
