//! Throwaway: how does fatfs 0.3 behave on hostile FAT images? Each case runs in a
//! thread with a deadline; we report ok / error / panic / hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::{Cursor, Read};
use std::sync::mpsc;
use std::time::Duration;

fn walk(img: Vec<u8>) -> Result<usize, String> {
    let fs = fatfs::FileSystem::new(Cursor::new(img), fatfs::FsOptions::new())
        .map_err(|e| format!("open: {e}"))?;
    let mut n = 0;
    let mut stack = vec![fs.root_dir()];
    while let Some(d) = stack.pop() {
        for e in d.iter() {
            let e = e.map_err(|e| format!("iter: {e}"))?;
            n += 1;
            if n > 10_000_000 {
                return Err("runaway".into());
            }
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            if e.is_dir() {
                stack.push(e.to_dir());
            } else {
                let mut v = Vec::new();
                e.to_file()
                    .read_to_end(&mut v)
                    .map_err(|e| format!("read {name}: {e}"))?;
                if v.len() as u64 != e.len() {
                    return Err(format!(
                        "SILENT SHORT READ of {name}: {} of {} bytes",
                        v.len(),
                        e.len()
                    ));
                }
            }
        }
    }
    Ok(n)
}

fn run(name: &str, img: Vec<u8>) {
    let (tx, rx) = mpsc::channel();
    let name2 = name.to_string();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| walk(img));
        let _ = tx.send(r.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }));
        let _ = name2;
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(Ok(n))) => println!("{name}: ok, {n} entries"),
        Ok(Ok(Err(e))) => println!("{name}: error: {e}"),
        Ok(Err(p)) => println!("{name}: PANIC: {p}"),
        Err(_) => println!("{name}: HANG (no answer in 5 s)"),
    }
}

fn u16le(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}
fn u32le(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let dir = std::env::args().nth(1).unwrap();
    for fixture in ["fat12-small", "fat16-small", "esp-fat32"] {
        let img = std::fs::read(format!("{dir}/{fixture}.img")).unwrap();
        let bps = u16le(&img, 11);
        let spc = img[13] as usize;
        let rsvd = u16le(&img, 14);
        let nfats = img[16] as usize;
        let root_ents = u16le(&img, 17);
        let fatsz = if u16le(&img, 22) != 0 {
            u16le(&img, 22)
        } else {
            u32le(&img, 36)
        };
        let fat32 = u16le(&img, 22) == 0;
        let fat_off = rsvd * bps;
        let root_dir_off = fat_off + nfats * fatsz * bps;
        let data_off = root_dir_off + root_ents * 32;
        let cs = bps * spc;
        let set_fat = |img: &mut Vec<u8>, c: usize, v: u32| {
            if fat32 {
                img[fat_off + c * 4..fat_off + c * 4 + 4].copy_from_slice(&v.to_le_bytes());
            } else if fixture == "fat16-small" {
                img[fat_off + c * 2..fat_off + c * 2 + 2]
                    .copy_from_slice(&(v as u16).to_le_bytes());
            } else {
                let o = fat_off + c + c / 2;
                let old = u16::from_le_bytes([img[o], img[o + 1]]);
                let new = if c & 1 == 0 {
                    (old & 0xF000) | (v as u16 & 0xFFF)
                } else {
                    (old & 0x000F) | ((v as u16) << 4)
                };
                img[o..o + 2].copy_from_slice(&new.to_le_bytes());
            }
        };
        run(&format!("{fixture} unmodified"), img.clone());
        let mut m = img.clone();
        m[13] = 0;
        run(&format!("{fixture} sectors_per_cluster=0"), m);
        let mut m = img.clone();
        m[11] = 0;
        m[12] = 0;
        run(&format!("{fixture} bytes_per_sector=0"), m);
        let mut m = img.clone();
        m[16] = 0;
        run(&format!("{fixture} num_fats=0"), m);
        let mut m = img.clone();
        m.truncate(64 * 1024);
        run(&format!("{fixture} truncated to 64 KiB"), m);
        // Find the first subdirectory of the root (EFI) and make its chain loop on itself.
        let root_first = if fat32 { u32le(&img, 44) } else { 0 };
        let root_off = if fat32 {
            data_off + (root_first - 2) * cs
        } else {
            root_dir_off
        };
        let mut efi = None;
        let mut bootx = None;
        for i in 0..(cs / 32).max(16) {
            let e = &img[root_off + i * 32..root_off + i * 32 + 32];
            if &e[0..11] == b"EFI        " {
                efi = Some(u16le(e, 26) | (u16le(e, 20) << 16));
            }
        }
        let efi = efi.unwrap();
        let efi_off = data_off + (efi - 2) * cs;
        for i in 2..(cs / 32) {
            let e = &img[efi_off + i * 32..efi_off + i * 32 + 32];
            if &e[0..11] == b"BOOT       " {
                bootx = Some(u16le(e, 26) | (u16le(e, 20) << 16));
            }
        }
        let boot = bootx.unwrap();
        let boot_off = data_off + (boot - 2) * cs;
        let mut file = None;
        for i in 2..(cs / 32) {
            let e = &img[boot_off + i * 32..boot_off + i * 32 + 32];
            if &e[0..11] == b"BOOTX64 EFI" {
                file = Some(u16le(e, 26) | (u16le(e, 20) << 16));
            }
        }
        let file = file.unwrap();
        // A directory chain that loops: fill EFI's cluster with valid-looking entries and point it to itself.
        let mut m = img.clone();
        for i in 4..(cs / 32) {
            let o = efi_off + i * 32;
            m[o..o + 32].copy_from_slice(&img[efi_off + 3 * 32..efi_off + 4 * 32]);
            m[o] = b'X';
        }
        set_fat(&mut m, efi, efi as u32);
        run(
            &format!("{fixture} directory chain loops (cluster {efi} -> itself)"),
            m,
        );
        // A file chain that loops (BOOTX64.EFI's second cluster points back to its first).
        let mut m = img.clone();
        set_fat(&mut m, file + 1, file as u32);
        run(&format!("{fixture} file chain loops"), m);
        // A FAT entry pointing past the end of the volume.
        let mut m = img.clone();
        set_fat(
            &mut m,
            file,
            if fat32 {
                0x0FFF_FFF0
            } else if fixture == "fat16-small" {
                0xFFF0
            } else {
                0xFF0
            },
        );
        run(&format!("{fixture} file FAT entry points past the end"), m);
        let mut m = img.clone();
        set_fat(
            &mut m,
            efi,
            if fat32 {
                0x0FFF_FFF0
            } else if fixture == "fat16-small" {
                0xFFF0
            } else {
                0xFF0
            },
        );
        for i in 4..(cs / 32) {
            let o = efi_off + i * 32;
            m[o..o + 32].copy_from_slice(&img[efi_off + 3 * 32..efi_off + 4 * 32]);
            m[o] = b'Y';
        }
        run(
            &format!("{fixture} directory FAT entry points past the end"),
            m,
        );
        // A file whose first cluster is past the end.
        let mut m = img.clone();
        for i in 2..(cs / 32) {
            let o = boot_off + i * 32;
            if &m[o..o + 11] == b"BOOTX64 EFI" {
                m[o + 26..o + 28].copy_from_slice(&0xFFF0u16.to_le_bytes());
                m[o + 20..o + 22].copy_from_slice(&0x0FFFu16.to_le_bytes());
            }
        }
        run(&format!("{fixture} first cluster past the end"), m);
        // A directory that contains itself (subdir entry pointing at its own cluster).
        let mut m = img.clone();
        for i in 2..(cs / 32) {
            let o = efi_off + i * 32;
            if &m[o..o + 11] == b"BOOT       " {
                m[o + 26..o + 28].copy_from_slice(&(efi as u16).to_le_bytes());
                m[o + 20..o + 22].copy_from_slice(&((efi >> 16) as u16).to_le_bytes());
            }
        }
        run(&format!("{fixture} directory contains itself"), m);
    }
}
