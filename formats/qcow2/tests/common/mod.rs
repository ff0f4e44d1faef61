//! Shared helpers for the qcow2 reader's integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vmscrub_blockdev::{FileDisk, RangeSet, ReadAt};
use vmscrub_qcow2::{OpenOptions, Qcow2, is_qcow2, read_header, resolve_backing_path};

/// Every qcow2 fixture the reader is checked on: the `c-qcow2*` ones from
/// fixtures/disks.toml and the `q-*` ones from fixtures/qcow2.toml.
pub const FIXTURES: &[&str] = &[
    "c-qcow2",
    "c-qcow2-v2",
    "c-qcow2-zlib",
    "c-qcow2-zstd",
    "c-qcow2-4k-clusters",
    "c-qcow2-2m-clusters",
    "c-qcow2-zero-clusters",
    "c-qcow2-backing-base",
    "c-qcow2-backed",
    "c-qcow2-dirty",
    "q-zero-over-data",
    "q-backed-grown",
    "q-backed-zstd",
    "q-chain-top",
    "q-small",
    "q-small-v2-512",
    "q-small-zlib",
    "q-small-zstd",
    "q-small-backed",
];

pub fn build_all() {
    vmscrub_fixtures::build(FIXTURES);
}

/// Opens a qcow2 image the way a caller would: read the header, resolve the backing
/// name next to the image, open that (recursively) and pass it in.
pub fn open_with(path: &Path, options: &OpenOptions) -> Qcow2<FileDisk> {
    let file = FileDisk::open(path).unwrap();
    let header = read_header(&file).unwrap();
    let backing: Option<Arc<dyn ReadAt>> = header.backing_file.as_ref().map(|b| {
        let base = resolve_backing_path(path, b.path());
        let raw = FileDisk::open(&base).unwrap();
        let is_q = match b.format.as_deref() {
            Some("qcow2") => true,
            Some("raw") => false,
            None => is_qcow2(&raw),
            Some(f) => panic!("unexpected backing format {f}"),
        };
        if is_q {
            drop(raw);
            Arc::new(open_with(&base, options)) as Arc<dyn ReadAt>
        } else {
            Arc::new(raw) as Arc<dyn ReadAt>
        }
    });
    Qcow2::with_header(file, header, backing, options).unwrap()
}

pub fn open(path: &Path) -> Qcow2<FileDisk> {
    open_with(path, &OpenOptions::default())
}

/// The oracle: `qemu-img convert -O raw` of `path`, made in `dir` and unlinked at
/// once (the open handle keeps it readable; disk space is freed when it drops).
pub fn oracle(path: &Path, dir: &Path) -> File {
    let raw = vmscrub_fixtures::qemu_raw(path, dir);
    let f = File::open(&raw).unwrap();
    std::fs::remove_file(&raw).unwrap();
    f
}

/// Reads the whole disk in `chunk`-byte reads and compares it with the oracle.
pub fn assert_same_as_oracle(name: &str, disk: &dyn ReadAt, oracle: &File, chunk: usize) {
    let size = disk.size();
    assert_eq!(
        size,
        oracle.metadata().unwrap().len(),
        "{name}: virtual size"
    );
    let mut ours = vec![0u8; chunk];
    let mut theirs = vec![0u8; chunk];
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(chunk as u64) as usize;
        disk.read_exact_at(&mut ours[..n], pos)
            .unwrap_or_else(|e| panic!("{name}: read at {pos:#x}: {e}"));
        oracle.read_exact_at(&mut theirs[..n], pos).unwrap();
        if ours[..n] != theirs[..n] {
            let i = ours[..n]
                .iter()
                .zip(&theirs[..n])
                .position(|(a, b)| a != b)
                .unwrap();
            panic!(
                "{name}: differs from qemu-img at guest offset {:#x}",
                pos + i as u64
            );
        }
        pos += n as u64;
    }
}

/// `qemu-img map --output=json`: (data ranges, zero-flag ranges present in the top image).
pub fn qemu_map(path: &Path) -> (RangeSet, RangeSet) {
    let out = vmscrub_fixtures::run("qemu-img", &[&"map", &"--output=json", &path]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut data = RangeSet::new();
    let mut zero_here = RangeSet::new();
    for e in v.as_array().unwrap() {
        let start = e["start"].as_u64().unwrap();
        let len = e["length"].as_u64().unwrap();
        if e["data"].as_bool().unwrap() {
            data.insert(start..start + len);
        } else if e["zero"].as_bool().unwrap()
            && e["present"].as_bool().unwrap()
            && e["depth"].as_u64() == Some(0)
        {
            zero_here.insert(start..start + len);
        }
    }
    (data, zero_here)
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    vmscrub_fixtures::path_of(name)
}

/// `vmscrub_fixtures::fixture`, asked once per test process and name (each ask
/// runs the builder script, which takes about a second).
pub fn fixture_cached(name: &str) -> PathBuf {
    static PATHS: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut paths = PATHS.lock().unwrap_or_else(|p| p.into_inner());
    paths
        .entry(name.to_owned())
        .or_insert_with(|| vmscrub_fixtures::fixture(name))
        .clone()
}
