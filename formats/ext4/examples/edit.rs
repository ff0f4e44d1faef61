//! Edits an ext2/3/4 image in place (a copy!) with the vmscrub editor, for manual
//! checks and benchmarks:
//!
//! ```sh
//! cp image.img /tmp/x.img
//! cargo run --release -p vmscrub-ext4 --example edit -- /tmp/x.img \
//!     rm /etc/ssh/ssh_host_rsa_key  rmtree /var/lib/cloud  truncate /var/log/wtmp \
//!     rewrite /etc/machine-id 'uninitialized\n'
//! ```
//!
//! `--overlay` keeps the image untouched and applies the edits to an in-memory
//! overlay (changed blocks plus zero ranges, as the scrub pipeline does), so a
//! benchmark measures the editor rather than the host's write speed.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use vmscrub_blockdev::{FileDisk, RangeSet, ReadAt, WriteAt};
use vmscrub_ext4::{Editor, EditorOptions};

/// A minimal copy-on-write overlay: written bytes in memory, zero ranges as holes.
struct Overlay {
    base: FileDisk,
    written: Mutex<(HashMap<u64, Vec<u8>>, RangeSet)>,
}

const CHUNK: u64 = 4096;

impl ReadAt for Overlay {
    fn size(&self) -> u64 {
        self.base.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.base.read_exact_at(buf, offset)?;
        let w = self
            .written
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let end = offset + buf.len() as u64;
        for z in w.1.overlapping(offset..end) {
            buf[(z.start - offset) as usize..(z.end - offset) as usize].fill(0);
        }
        let mut c = offset / CHUNK * CHUNK;
        while c < end {
            if let Some(data) = w.0.get(&c) {
                let s = c.max(offset);
                let e = (c + CHUNK).min(end);
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&data[(s - c) as usize..(e - c) as usize]);
            }
            c += CHUNK;
        }
        Ok(())
    }
}

impl WriteAt for Overlay {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        let mut c = offset / CHUNK * CHUNK;
        while c < end {
            let mut chunk = vec![0u8; CHUNK as usize];
            self.read_exact_at(&mut chunk, c)?;
            let s = c.max(offset);
            let e = (c + CHUNK).min(end);
            chunk[(s - c) as usize..(e - c) as usize]
                .copy_from_slice(&buf[(s - offset) as usize..(e - offset) as usize]);
            let mut w = self
                .written
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            w.1.remove(c..c + CHUNK);
            w.0.insert(c, chunk);
            c += CHUNK;
        }
        Ok(())
    }
    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        let mut w = self
            .written
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        w.1.insert(range.clone());
        let mut c = range.start / CHUNK * CHUNK;
        while c < range.end {
            if let Some(d) = w.0.get_mut(&c) {
                let s = c.max(range.start);
                let e = (c + CHUNK).min(range.end);
                d[(s - c) as usize..(e - c) as usize].fill(0);
            }
            c += CHUNK;
        }
        Ok(())
    }
}

fn unescape(s: &str) -> Vec<u8> {
    s.replace("\\n", "\n").into_bytes()
}

fn run<D: WriteAt>(dev: D, ops: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut ed = Editor::open(dev, EditorOptions::default())?;
    let mut it = ops.iter();
    while let Some(op) = it.next() {
        let path = it.next().ok_or("missing path")?;
        match op.as_str() {
            "rm" => println!("rm {path}: {:?}", ed.unlink(path.as_bytes())?),
            "rmtree" => {
                let r = ed.remove_tree(path.as_bytes())?;
                println!(
                    "rmtree {path}: {} files, {} dirs, {} bytes, {} kept",
                    r.files,
                    r.dirs,
                    r.bytes,
                    r.kept.len()
                );
            }
            "truncate" => println!("truncate {path}: {:?}", ed.truncate(path.as_bytes())?),
            "rewrite" => {
                let content = unescape(it.next().ok_or("missing content")?);
                println!(
                    "rewrite {path}: {:?}",
                    ed.rewrite(path.as_bytes(), &content)?
                );
            }
            other => return Err(format!("unknown operation {other}").into()),
        }
    }
    let t1 = Instant::now();
    let report = ed.commit()?;
    let t2 = Instant::now();
    println!(
        "freed {} blocks, {} inodes; {} ranges ({} bytes) zeroed; {} blocks written; edit {:.1} ms, commit {:.1} ms",
        report.blocks_freed,
        report.inodes_freed,
        report.zero_ranges.len(),
        report.zero_ranges.total(),
        report.blocks_written,
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let overlay = args.first().is_some_and(|a| a == "--overlay");
    if overlay {
        args.remove(0);
    }
    let img = args
        .first()
        .ok_or("usage: edit [--overlay] IMAGE OP PATH [CONTENT] ...")?;
    let path = Path::new(img);
    if overlay {
        let o = Overlay {
            base: FileDisk::open(path)?,
            written: Mutex::new((HashMap::new(), RangeSet::new())),
        };
        run(&o, &args[1..])
    } else {
        run(FileDisk::open_rw(path)?, &args[1..])
    }
}
