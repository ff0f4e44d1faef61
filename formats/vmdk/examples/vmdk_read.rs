//! Reads a whole VMDK virtual disk sequentially in large buffers, the way a copy
//! pass does: the benchmark beside `qemu-img convert -O raw`.
//!
//! ```sh
//! cargo run --release -p vmscrub-vmdk --example vmdk_read -- IMAGE [OUT] [--buf MIB | --buf-kib KIB] [--info]
//! ```
//! Without OUT the bytes go to a sink (a checksum is printed so the work cannot be
//! optimised away); with OUT they are written there (holes for all-zero chunks).

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use vmscrub_blockdev::ReadAt;
use vmscrub_vmdk::Vmdk;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut image = None;
    let mut out = None;
    let mut buf_kib = 4096usize;
    let mut info = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--buf" => buf_kib = args.next().ok_or("--buf needs a value")?.parse::<usize>()? << 10,
            "--buf-kib" => buf_kib = args.next().ok_or("--buf-kib needs a value")?.parse()?,
            "--info" => info = true,
            _ if image.is_none() => image = Some(PathBuf::from(a)),
            _ => out = Some(PathBuf::from(a)),
        }
    }
    let image = image.ok_or("usage: vmdk_read IMAGE [OUT] [--buf MIB | --buf-kib KIB] [--info]")?;
    let disk = Vmdk::open_path(&image)?;
    if info {
        println!("{:#?}", disk.info());
        return Ok(());
    }
    let out = match out {
        Some(p) => {
            let f = std::fs::File::create(&p)?;
            f.set_len(disk.size())?;
            Some(f)
        }
        None => None,
    };
    let mut buf = vec![0u8; buf_kib.max(1) << 10];
    let mut pos = 0u64;
    let mut sum = 0u64;
    while pos < disk.size() {
        let n = (disk.size() - pos).min(buf.len() as u64) as usize;
        disk.read_exact_at(&mut buf[..n], pos)?;
        match &out {
            Some(f) if buf[..n].iter().any(|&b| b != 0) => f.write_all_at(&buf[..n], pos)?,
            Some(_) => {}
            None => {
                sum = sum.wrapping_add(
                    buf[..n]
                        .iter()
                        .step_by(4093)
                        .map(|&b| u64::from(b))
                        .sum::<u64>(),
                )
            }
        }
        pos += n as u64;
    }
    writeln!(std::io::stderr(), "{} bytes, sample sum {sum}", disk.size())?;
    Ok(())
}
