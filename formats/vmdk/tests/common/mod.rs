//! Shared test helpers: fixture lists, oracle comparison, a deterministic PRNG, and
//! a VMware-style stream writer (grain directory at the end, found via the footer)
//! — qemu-img only writes streams with the directory up front, so the other layout
//! is made here and checked against qemu before the reader is judged on it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use vmscrub_blockdev::ReadAt;
use vmscrub_vmdk::descriptor::{Access, Entry, ExtentLine, ExtentType};
use vmscrub_vmdk::header::{self, GD_AT_END, SparseExtentHeader};
use vmscrub_vmdk::{Descriptor, Marker, marker};

/// Fixtures whose extents are sparse (the allocation map must not be the whole disk).
pub const SPARSE_FIXTURES: &[&str] = &[
    "c-vmdk-sparse",
    "c-vmdk-stream",
    "c-vmdk-2gb-sparse",
    "c-vmdk-odd-sparse",
    "c-vmdk-odd-stream",
    "c-vmdk-zeroed",
    "c-vmdk-big-2gb-sparse",
    "c-vmdk-big-stream",
];
pub const FLAT_FIXTURES: &[&str] = &[
    "c-vmdk-flat",
    "c-vmdk-2gb-flat",
    "c-vmdk-odd-flat",
    "c-vmdk-big-2gb-flat",
];

pub fn all_fixtures() -> Vec<&'static str> {
    SPARSE_FIXTURES
        .iter()
        .chain(FLAT_FIXTURES)
        .copied()
        .collect()
}

/// Builds every fixture in one script call (the first test to ask pays).
pub fn build_all() {
    vmscrub_fixtures::build(&all_fixtures());
}

/// xorshift64*: deterministic, so a failing case can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Compares the whole device with the oracle file in `chunk`-byte reads; returns
/// the oracle's non-zero 4 KiB blocks (as byte ranges) for allocation checks.
pub fn compare_whole(dev: &dyn ReadAt, oracle: &Path, chunk: usize) -> Vec<std::ops::Range<u64>> {
    let o = std::fs::File::open(oracle).unwrap();
    assert_eq!(
        dev.size(),
        o.metadata().unwrap().len(),
        "virtual size differs from qemu's"
    );
    let mut a = vec![0u8; chunk];
    let mut b = vec![0u8; chunk];
    let mut nonzero = Vec::new();
    let mut pos = 0u64;
    while pos < dev.size() {
        let n = (dev.size() - pos).min(chunk as u64) as usize;
        dev.read_exact_at(&mut a[..n], pos)
            .unwrap_or_else(|e| panic!("read at {pos}: {e}"));
        o.read_exact_at(&mut b[..n], pos).unwrap();
        if a[..n] != b[..n] {
            let first = a[..n]
                .iter()
                .zip(&b[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!("byte {} differs from qemu's", pos + first as u64);
        }
        for (i, blk) in b[..n].chunks(4096).enumerate() {
            if blk.iter().any(|&x| x != 0) {
                let s = pos + (i * 4096) as u64;
                nonzero.push(s..s + blk.len() as u64);
            }
        }
        pos += n as u64;
    }
    nonzero
}

/// Copies a fixture and the extent files next to it into `dir`; returns the copy.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = vmscrub_fixtures::fixture(name);
    let stem = src.file_stem().unwrap().to_string_lossy().to_string();
    for entry in std::fs::read_dir(src.parent().unwrap()).unwrap() {
        let p = entry.unwrap().path();
        let f = p.file_name().unwrap().to_string_lossy().to_string();
        if f == format!("{stem}.vmdk")
            || (f.starts_with(&format!("{stem}-")) && f.ends_with(".vmdk"))
        {
            std::fs::copy(&p, dir.join(&f)).unwrap();
        }
    }
    dir.join(format!("{stem}.vmdk"))
}

pub fn oracle_bytes(image: &Path, dir: &Path) -> Vec<u8> {
    std::fs::read(vmscrub_fixtures::qemu_raw(image, dir)).unwrap()
}

pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

pub fn read_le32(path: &Path, offset: u64) -> u32 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, offset).unwrap();
    u32::from_le_bytes(b)
}

pub struct StreamOptions {
    /// Mark all-zero grains inside allocated tables with GTE 1 (zeroed-grain flag).
    pub zero_grains: bool,
}

fn pad_to_sector(out: &mut Vec<u8>) {
    let r = out.len() % 512;
    if r != 0 {
        out.resize(out.len() + 512 - r, 0);
    }
}

/// Writes `data` (the virtual disk) as a VMware-style stream-optimized VMDK: header
/// with gdOffset = GD_AT_END, grains with markers, each grain table after its
/// grains behind a GT marker, the directory behind a GD marker, then footer
/// marker, footer (header copy with the real gdOffset) and end-of-stream marker.
pub fn write_vmware_stream(data: &[u8], name: &str, opts: &StreamOptions) -> Vec<u8> {
    const GRAIN: usize = 65536;
    const GTES: usize = 512;
    let capacity = data.len().div_ceil(512) as u64;
    let grains = data.len().div_ceil(GRAIN);
    let gd_entries = grains.div_ceil(GTES);
    let desc = Descriptor {
        entries: vec![
            Entry {
                key: "version".into(),
                value: "1".into(),
                quoted: false,
            },
            Entry {
                key: "CID".into(),
                value: "12345678".into(),
                quoted: false,
            },
            Entry {
                key: "parentCID".into(),
                value: "ffffffff".into(),
                quoted: false,
            },
            Entry {
                key: "createType".into(),
                value: "streamOptimized".into(),
                quoted: true,
            },
        ],
        extents: vec![ExtentLine {
            access: Access::ReadWrite,
            sectors: capacity,
            kind: ExtentType::Sparse,
            file_name: Some(name.into()),
            offset: None,
            line: 0,
        }],
        ddb: vec![Entry {
            key: "ddb.adapterType".into(),
            value: "lsilogic".into(),
            quoted: true,
        }],
    };
    let desc_text = desc.to_text().into_bytes();
    let desc_sectors = desc_text.len().div_ceil(512) as u64;
    let mut flags = header::FLAG_NEWLINE_TEST | header::FLAG_COMPRESSED | header::FLAG_MARKERS;
    if opts.zero_grains {
        flags |= header::FLAG_ZERO_GRAIN_GTE;
    }
    let mut h = SparseExtentHeader {
        version: 3,
        flags,
        capacity,
        grain_size: (GRAIN / 512) as u64,
        descriptor_offset: 1,
        descriptor_size: desc_sectors,
        num_gtes_per_gt: GTES as u32,
        rgd_offset: 0,
        gd_offset: GD_AT_END,
        overhead: 1 + desc_sectors,
        unclean_shutdown: false,
        newline_chars: SparseExtentHeader::NEWLINE_CHARS,
        compress_algorithm: header::COMPRESSION_DEFLATE,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&h.serialize());
    out.extend_from_slice(&desc_text);
    pad_to_sector(&mut out);
    let mut gd = vec![0u32; gd_entries];
    for (t, gd_entry) in gd.iter_mut().enumerate() {
        let mut gt = vec![0u32; GTES];
        let mut any = false;
        for (k, gte) in gt.iter_mut().enumerate() {
            let g = t * GTES + k;
            if g >= grains {
                break;
            }
            let chunk = &data[g * GRAIN..((g + 1) * GRAIN).min(data.len())];
            if chunk.iter().all(|&b| b == 0) {
                if opts.zero_grains {
                    *gte = 1;
                }
                continue;
            }
            any = true;
            let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(chunk).unwrap();
            let z = enc.finish().unwrap();
            *gte = (out.len() / 512) as u32;
            out.extend_from_slice(
                &Marker::Grain {
                    lba: (g * GRAIN / 512) as u64,
                    size: z.len() as u32,
                }
                .serialize(),
            );
            out.extend_from_slice(&z);
            pad_to_sector(&mut out);
        }
        if !any && !opts.zero_grains {
            continue;
        }
        out.extend_from_slice(
            &Marker::Meta {
                kind: marker::TYPE_GT,
                sectors: (GTES * 4 / 512) as u64,
            }
            .serialize(),
        );
        *gd_entry = (out.len() / 512) as u32;
        for e in &gt {
            out.extend_from_slice(&e.to_le_bytes());
        }
        pad_to_sector(&mut out);
    }
    let gd_sectors = (gd_entries * 4).div_ceil(512) as u64;
    out.extend_from_slice(
        &Marker::Meta {
            kind: marker::TYPE_GD,
            sectors: gd_sectors,
        }
        .serialize(),
    );
    h.gd_offset = (out.len() / 512) as u64;
    for e in &gd {
        out.extend_from_slice(&e.to_le_bytes());
    }
    pad_to_sector(&mut out);
    out.extend_from_slice(
        &Marker::Meta {
            kind: marker::TYPE_FOOTER,
            sectors: 1,
        }
        .serialize(),
    );
    out.extend_from_slice(&h.serialize());
    out.extend_from_slice(
        &Marker::Meta {
            kind: marker::TYPE_EOS,
            sectors: 0,
        }
        .serialize(),
    );
    out
}
