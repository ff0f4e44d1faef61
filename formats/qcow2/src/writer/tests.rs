//! The writer's contract, on in-memory outputs read back by our own reader.
//! qemu's opinion of the files is in `tests/writer.rs`.

use std::io::{self, Cursor};

use vmscrub_blockdev::{MemDisk, ReadAt};

use super::*;
use crate::{OpenOptions, Qcow2, read_header};

fn opts(version: Version, bits: u32, compression: CompressionType) -> WriterOptions {
    WriterOptions {
        version,
        cluster_bits: bits,
        compression,
        l2_memory: DEFAULT_L2_MEMORY,
    }
}

fn reopen(bytes: Vec<u8>) -> Qcow2<MemDisk> {
    Qcow2::open(MemDisk::new(bytes), None, &OpenOptions::default()).unwrap()
}

#[test]
fn header_says_what_was_asked() {
    for (version, bits, compression) in [
        (Version::V3, 16, CompressionType::Zlib),
        (Version::V3, 9, CompressionType::Zstd),
        (Version::V2, 21, CompressionType::Zlib),
    ] {
        let w = Writer::new(
            Cursor::new(Vec::new()),
            12345,
            &opts(version, bits, compression),
        )
        .unwrap();
        let (out, s) = w.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, s.file_size);
        let h = read_header(&MemDisk::new(bytes.clone())).unwrap();
        assert_eq!(h.version, version.number());
        assert_eq!(h.cluster_bits, bits);
        assert_eq!(h.size, 12800, "rounded up to whole sectors");
        assert_eq!(h.compression_type, compression);
        assert_eq!(h.refcount_order, 4);
        assert!(!h.is_dirty() && !h.is_corrupt() && h.backing_file.is_none());
        if version == Version::V3 {
            assert_eq!(
                h.feature_names.len(),
                8,
                "the table fits even 512-byte clusters"
            );
        }
        // Header, L1, one refcount block, the refcount table.
        assert_eq!(s.file_size, 4 << bits);
        let disk = reopen(bytes);
        let mut buf = vec![1u8; 12345];
        disk.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        assert!(disk.allocated_ranges().unwrap().is_empty());
    }
}

#[test]
fn data_and_compressed_clusters_read_back() {
    let cs = 4096u64;
    let size = 40 * cs + 100;
    let mut want = vec![0u8; size as usize];
    let mut w = Writer::new(
        Cursor::new(Vec::new()),
        size,
        &opts(Version::V3, 12, CompressionType::Zstd),
    )
    .unwrap();
    let mut c = ClusterCompressor::new(CompressionType::Zstd, cs as usize, None).unwrap();
    // Plain run of 3, a gap, compressed ones, plain again, the short last cluster.
    let fill = |want: &mut Vec<u8>, i: u64, seed: u8| {
        let s = &mut want[(i * cs) as usize..((i + 1) * cs).min(size) as usize];
        for (k, b) in s.iter_mut().enumerate() {
            *b = seed.wrapping_add((k % 7) as u8);
        }
    };
    for i in [0, 1, 2, 5, 6, 7, 8, 20, 21, 40] {
        fill(&mut want, i, i as u8 + 1);
    }
    let cl = |want: &Vec<u8>, i: u64| {
        want[(i * cs) as usize..((i + 1) * cs).min(size) as usize].to_vec()
    };
    let mut three = cl(&want, 0);
    three.extend(cl(&want, 1));
    three.extend(cl(&want, 2));
    w.write_data(0, &three).unwrap();
    for i in 5..=8 {
        let z = c.compress(&cl(&want, i)).unwrap().unwrap().to_vec();
        w.write_compressed(i, &z).unwrap();
    }
    w.write_data(20, &cl(&want, 20)).unwrap();
    let z = c.compress(&cl(&want, 21)).unwrap().unwrap().to_vec();
    w.write_compressed(21, &z).unwrap();
    let last = cl(&want, 40);
    assert_eq!(last.len(), 100);
    let z = c.compress(&last).unwrap().unwrap().to_vec();
    w.write_compressed(40, &z).unwrap();
    let (out, s) = w.finish().unwrap();
    assert_eq!(s.data_clusters, 4);
    assert_eq!(s.compressed_clusters, 6);
    assert_eq!(
        s.compressed_host_clusters, 2,
        "six small streams share two clusters"
    );
    let disk = reopen(out.into_inner());
    let mut got = vec![0u8; size as usize];
    disk.read_exact_at(&mut got, 0).unwrap();
    assert!(got == want);
}

#[test]
fn contract_breaches_are_errors_and_stick() {
    let o = WriterOptions::default();
    let mut w = Writer::new(Cursor::new(Vec::new()), 1 << 20, &o).unwrap();
    let cluster = vec![7u8; 65536];
    w.write_data(3, &cluster).unwrap();
    assert!(matches!(
        w.write_data(3, &cluster),
        Err(WriteError::OutOfOrder { index: 3, next: 4 })
    ));
    assert!(matches!(w.write_data(5, &[1]), Err(WriteError::Failed)));
    assert!(matches!(w.finish(), Err(WriteError::Failed)));

    let mut w = Writer::new(Cursor::new(Vec::new()), 1 << 20, &o).unwrap();
    assert!(matches!(
        w.write_data(16, &cluster),
        Err(WriteError::PastEnd { .. })
    ));
    let mut w = Writer::new(Cursor::new(Vec::new()), 1 << 20, &o).unwrap();
    assert!(matches!(
        w.write_data(2, &[1, 2, 3]),
        Err(WriteError::Length { .. })
    ));
    let mut w = Writer::new(Cursor::new(Vec::new()), 1 << 20, &o).unwrap();
    assert!(matches!(
        w.write_compressed(2, &cluster),
        Err(WriteError::Length { .. })
    ));
    let mut w = Writer::new(Cursor::new(Vec::new()), 1 << 20, &o).unwrap();
    assert!(matches!(
        w.write_compressed(2, &[]),
        Err(WriteError::Length { .. })
    ));
    // A short piece is fine where the disk ends.
    let mut w = Writer::new(Cursor::new(Vec::new()), 65536 + 10, &o).unwrap();
    w.write_data(1, &[9u8; 10]).unwrap();
    w.finish().unwrap();
}

#[test]
fn options_are_checked_first() {
    let out = || Cursor::new(Vec::new());
    let e = Writer::new(out(), 1, &opts(Version::V2, 16, CompressionType::Zstd)).err();
    assert!(matches!(e, Some(WriteError::ZstdNeedsV3)));
    let e = Writer::new(out(), 1, &opts(Version::V3, 8, CompressionType::Zlib)).err();
    assert!(matches!(e, Some(WriteError::ClusterSize(256))));
    let e = Writer::new(out(), 1, &opts(Version::V3, 22, CompressionType::Zlib)).err();
    assert!(matches!(e, Some(WriteError::ClusterSize(_))));
    let e = Writer::new(
        out(),
        1,
        &opts(Version::V3, 16, CompressionType::Unknown(9)),
    )
    .err();
    assert!(matches!(e, Some(WriteError::CompressionType(9))));
    // 512-byte clusters reach 128 GiB with qemu's 32 MiB L1.
    assert!(
        Writer::new(
            out(),
            128 << 30,
            &opts(Version::V3, 9, CompressionType::Zlib)
        )
        .is_ok()
    );
    let e = Writer::new(
        out(),
        (128 << 30) + 1,
        &opts(Version::V3, 9, CompressionType::Zlib),
    )
    .err();
    assert!(matches!(e, Some(WriteError::DiskTooLarge { .. })), "{e:?}");
    let mut o = WriterOptions::default();
    for bad in [0, 256, 3000, 4 << 20] {
        assert!(o.set_cluster_size(bad).is_err(), "{bad}");
    }
    o.set_cluster_size(2 << 20).unwrap();
    assert_eq!(o.cluster_bits, 21);
    assert_eq!(cluster_bits(512), Some(9));
    assert_eq!(cluster_bits(65536), Some(16));
}

/// An output that fails once `limit` bytes were accepted, like a full disk.
struct Full {
    inner: Cursor<Vec<u8>>,
    limit: u64,
}

impl io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.inner.position());
        if room == 0 {
            return Err(io::Error::from_raw_os_error(28));
        }
        let n = buf.len().min(room as usize);
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Seek for Full {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn write_errors_keep_their_kind() {
    let full = Full {
        inner: Cursor::new(Vec::new()),
        limit: 100_000,
    };
    let mut w = Writer::new(full, 1 << 20, &WriterOptions::default()).unwrap();
    let e = w.write_data(0, &vec![1u8; 65536]).unwrap_err();
    assert!(matches!(e, WriteError::Io { .. }), "{e}");
    let io: io::Error = e.into();
    assert_eq!(io.raw_os_error(), None);
    assert_eq!(io.kind(), io::ErrorKind::StorageFull);
    assert!(io.to_string().contains("No space left"), "{io}");
    // The tail does not fit either: finishing fails too, never silently.
    let full = Full {
        inner: Cursor::new(Vec::new()),
        limit: 65536 * 3,
    };
    let mut w = Writer::new(full, 1 << 20, &WriterOptions::default()).unwrap();
    w.write_data(0, &vec![1u8; 65536]).unwrap();
    assert!(matches!(w.finish(), Err(WriteError::Io { .. })));
}

/// Tiny streams in a big cluster: a host cluster never holds more than 65535
/// references; the writer moves on to a fresh cluster instead.
#[test]
fn refcounts_never_overflow() {
    let o = opts(Version::V3, 21, CompressionType::Zstd);
    let n = 70_000u64;
    let mut w = Writer::new(Cursor::new(Vec::new()), n << 21, &o).unwrap();
    for i in 0..n {
        // Not a valid stream: the layout is what is checked here.
        w.write_compressed(i, &[0xab; 8]).unwrap();
    }
    let (out, s) = w.finish().unwrap();
    assert_eq!(s.compressed_host_clusters, 2);
    let bytes = out.into_inner();
    let h = read_header(&MemDisk::new(bytes.clone())).unwrap();
    // The one refcount block: cluster 1 is full, cluster 2 has the rest.
    let rt = h.refcount_table_offset as usize;
    let rb = u64::from_be_bytes(bytes[rt..rt + 8].try_into().unwrap()) as usize;
    let count = |c: usize| u16::from_be_bytes([bytes[rb + 2 * c], bytes[rb + 2 * c + 1]]);
    assert_eq!(count(0), 1);
    assert_eq!(count(1), u16::MAX);
    assert_eq!(count(2) as u64, n - u16::MAX as u64);
    assert_eq!(count(3), 1, "the L2 table");
}
