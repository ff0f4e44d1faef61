//! Walks an ext2/3/4 image and reads every regular file with vmscrub-ext4: the
//! benchmark of the reader (see the crate README for the hyperfine command).
//!
//!     cargo run --release -p vmscrub-ext4 --example walk -- IMAGE [--threads N]

use std::path::PathBuf;
use std::sync::Mutex;

use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::{Ext4, FileType, ROOT_INO};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = PathBuf::from(args.next().ok_or("usage: walk IMAGE [--threads N]")?);
    let threads: usize = match (args.next().as_deref(), args.next()) {
        (Some("--threads"), Some(n)) => n.parse()?,
        _ => 1,
    };
    let fs = Ext4::open(FileDisk::open(&image)?)?;
    if fs.needs_recovery() {
        eprintln!("warning: the journal needs recovery; reading the on-disk state");
    }
    // Collect the regular files first (a walk of directories), then read them.
    let mut files = Vec::new();
    let mut dirs = vec![ROOT_INO];
    let mut entries = 0u64;
    while let Some(d) = dirs.pop() {
        for e in fs.read_dir(d)? {
            let e = e?;
            entries += 1;
            if e.is_dot_or_dotdot() {
                continue;
            }
            let ft = match e.file_type() {
                Some(t) => t,
                None => fs.inode(e.inode)?.file_type(),
            };
            match ft {
                FileType::Directory => dirs.push(e.inode),
                FileType::Regular => files.push(e.inode),
                _ => {}
            }
        }
    }
    let queue = Mutex::new(files.clone());
    let totals = Mutex::new((0u64, 0u64));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| -> Result<(), vmscrub_ext4::Error> {
                let mut buf = vec![0u8; 1 << 20];
                let (mut bytes, mut sum) = (0u64, 0u64);
                loop {
                    let Some(ino) = queue.lock().map_err(|_| poisoned())?.pop() else {
                        break;
                    };
                    let r = fs.open_file(ino)?;
                    let mut off = 0u64;
                    let mut last = None;
                    loop {
                        let n = r.read_at(off, &mut buf)?;
                        if n == 0 {
                            break;
                        }
                        // Touch the data so the read cannot be skipped: first and
                        // last byte of each file, as the ext4-view walk does.
                        if off == 0 {
                            sum = sum.wrapping_add(u64::from(buf[0]));
                        }
                        last = Some(buf[n - 1]);
                        off += n as u64;
                    }
                    sum = sum.wrapping_add(last.map_or(0, u64::from));
                    bytes += off;
                }
                let mut t = totals.lock().map_err(|_| poisoned())?;
                t.0 += bytes;
                t.1 = t.1.wrapping_add(sum);
                Ok(())
            });
        }
    });
    let (bytes, sum) = *totals.lock().map_err(|_| "poisoned")?;
    println!(
        "{} entries, {} files, {bytes} bytes (check {sum:x})",
        entries,
        files.len()
    );
    Ok(())
}

fn poisoned() -> vmscrub_ext4::Error {
    vmscrub_ext4::Error::Unsupported {
        feature: "poisoned lock".into(),
    }
}
