//! Reads the whole virtual disk of a qcow2 image (and its backing chain) into a
//! sink: the benchmark for the reader, to set beside `qemu-img convert -O raw`.
//!
//!     cargo run --release -p vmscrub-qcow2 --example qcow2-read -- IMG [--buf-mib N] [--threads N] [--all]
//!
//! By default only `allocated_ranges()` are read (holes are skipped, as a copy
//! would); `--all` reads every byte. `--threads N` splits the work into
//! interleaved buffer-sized chunks read by N threads.

use std::path::Path;
use std::time::Instant;

use vmscrub_blockdev::{FileDisk, RangeSet, ReadAt};
use vmscrub_qcow2::{DEFAULT_MAX_DEPTH, OpenOptions, open_chain};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut image = None;
    let (mut buf_mib, mut threads, mut all) = (4usize, 1usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--buf-mib" => buf_mib = args.next().ok_or("--buf-mib N")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            "--all" => all = true,
            _ => image = Some(a),
        }
    }
    let image = image.ok_or("usage: qcow2-read IMG [--buf-mib N] [--threads N] [--all]")?;
    let start = Instant::now();
    // A benchmark trusts its own images: follow backing names as they are.
    let (disk, _chain) = open_chain(
        Path::new(&image),
        |p| Ok(Box::new(FileDisk::open(p)?) as Box<dyn ReadAt>),
        &OpenOptions::default(),
        DEFAULT_MAX_DEPTH,
    )?;
    let ranges = if all {
        let mut all = RangeSet::new();
        all.insert(0..disk.size());
        all
    } else {
        disk.allocated_ranges()?
    };
    let chunk = (buf_mib.max(1) << 20) as u64;
    let chunks: Vec<(u64, u64)> = ranges
        .iter()
        .flat_map(|r| {
            (r.start..r.end)
                .step_by(chunk as usize)
                .map(move |s| (s, (r.end - s).min(chunk)))
        })
        .collect();
    let threads = threads.max(1);
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (disk, chunks) = (&disk, &chunks);
                s.spawn(move || -> std::io::Result<u64> {
                    let mut buf = vec![0u8; chunk as usize];
                    let mut n = 0u64;
                    for &(off, len) in chunks.iter().skip(t).step_by(threads) {
                        let b = &mut buf[..len as usize];
                        disk.read_exact_at(b, off)?;
                        std::hint::black_box(&b);
                        n += len;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "reader thread panicked")?
                    .map_err(|e| e.into())
            })
            .sum::<Result<u64, Box<dyn std::error::Error + Send + Sync>>>()
    })
    .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{image}: read {} MiB of {} MiB virtual in {secs:.3} s ({:.0} MiB/s)",
        total >> 20,
        disk.size() >> 20,
        total as f64 / secs / 1048576.0
    );
    Ok(())
}
