//! Hostile input: mutated copies of valid images must give a typed error naming
//! the problem (or, where the damage is harmless, exactly qemu's bytes) — never a
//! panic, a hang, silently wrong data, or an unbounded allocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::*;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use vmscrub_blockdev::{MemDisk, ReadAt};
use vmscrub_vmdk::{NoExtentFiles, Vmdk, VmdkError};

/// Opens and reads everything (allocation map included); the bytes or the error text.
fn open_and_read(path: &Path) -> Result<Vec<u8>, String> {
    let disk = Vmdk::open_path(path).map_err(|e| e.to_string())?;
    read_all(&disk)
}

fn read_all(disk: &Vmdk) -> Result<Vec<u8>, String> {
    disk.allocated_ranges().map_err(|e| e.to_string())?;
    let mut out = vec![0u8; disk.size() as usize];
    for (i, chunk) in out.chunks_mut(1 << 20).enumerate() {
        disk.read_exact_at(chunk, (i as u64) << 20)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn expect_err(path: &Path, needle: &str, case: &str) {
    match open_and_read(path) {
        Ok(_) => panic!("{case}: accepted, expected an error containing {needle:?}"),
        Err(e) => {
            assert!(
                e.contains(needle),
                "{case}: error {e:?} does not contain {needle:?}"
            );
            assert!(
                e.contains("VMDK") || e.contains("extent"),
                "{case}: error {e:?} does not say what failed"
            );
        }
    }
}

fn setup(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let path = copy_fixture(name, tmp.path());
    let bytes = std::fs::read(&path).unwrap();
    let oracle = oracle_bytes(&path, tmp.path());
    (tmp, path, bytes, oracle)
}

fn data_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

/// Truncated at many points: an error, or (cut only in trailing padding) qemu's bytes.
fn truncation_corpus(path: &Path, bytes: &[u8], oracle: &[u8], extra_points: &[usize]) -> usize {
    let end = data_end(bytes);
    let mut points: Vec<usize> = vec![
        0, 1, 4, 8, 100, 511, 512, 513, 1024, 10_752, 19_456, 20_000, 26_000, 65_535, 65_536,
    ];
    points.extend(extra_points);
    points.extend((1..80).map(|k| bytes.len() * k / 80));
    points.extend([
        bytes.len() - 1,
        bytes.len() - 512,
        bytes.len() - 1536,
        bytes.len() - 1537,
        end - 1,
        end,
    ]);
    points.retain(|&p| p < bytes.len());
    let mut errors = 0;
    for &t in &points {
        std::fs::write(path, &bytes[..t]).unwrap();
        match open_and_read(path) {
            Err(e) => {
                assert!(e.contains("VMDK"), "cut at {t}: {e}");
                errors += 1;
            }
            Ok(data) => {
                assert!(t >= end, "cut at {t} (data ends at {end}) was accepted");
                assert!(data == oracle, "cut at {t}: read different bytes than qemu");
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
    assert!(errors >= points.iter().filter(|&&p| p < end).count());
    errors
}

#[test]
fn truncated_images_fail_cleanly() {
    build_all();
    for name in ["c-vmdk-odd-sparse", "c-vmdk-odd-stream"] {
        let (_tmp, path, bytes, oracle) = setup(name);
        // Header, descriptor, GD (sector 38), each GT, first grains.
        let extra = [
            38 * 512,
            38 * 512 + 7,
            39 * 512 + 100,
            51 * 512 + 2047,
            128 * 512 + 5,
            129 * 512 + 77,
        ];
        let n = truncation_corpus(&path, &bytes, &oracle, &extra);
        assert!(n > 60, "{name}: only {n} truncations failed");
    }
    // A VMware-style stream: the footer is the only way in.
    let tmp = tempfile::tempdir().unwrap();
    let src = vmscrub_fixtures::fixture("c-vmdk-odd-stream");
    let data = oracle_bytes(&src, tmp.path());
    let path = tmp.path().join("vm.vmdk");
    let bytes = write_vmware_stream(&data, "vm.vmdk", &StreamOptions { zero_grains: false });
    truncation_corpus(&path, &bytes, &data, &[]);
    // An extent file of a split disk, and a flat extent file.
    let (_t2, path, _, oracle) = setup("c-vmdk-big-2gb-sparse");
    let s2 = path.with_file_name("c-vmdk-big-2gb-sparse-s002.vmdk");
    let s2_bytes = std::fs::read(&s2).unwrap();
    let s2_end = data_end(&s2_bytes);
    for t in [
        0,
        100,
        512,
        20_000,
        s2_bytes.len() / 2,
        s2_end - 1,
        s2_end,
        s2_bytes.len() - 1,
    ] {
        std::fs::write(&s2, &s2_bytes[..t]).unwrap();
        match open_and_read(&path) {
            Err(e) => assert!(e.contains("VMDK"), "s002 cut at {t}: {e}"),
            // Only the zero tail of the last grain, outside the capacity, was cut.
            Ok(d) => assert!(t >= s2_end && d == oracle, "s002 cut at {t} was accepted"),
        }
    }
    std::fs::write(&s2, &s2_bytes).unwrap();
    assert!(open_and_read(&path).unwrap() == oracle);
    let (_t3, path, _, _) = setup("c-vmdk-odd-flat");
    let flat = path.with_file_name("c-vmdk-odd-flat-flat.vmdk");
    let f = std::fs::OpenOptions::new().write(true).open(&flat).unwrap();
    f.set_len(50 << 20).unwrap();
    let disk = Vmdk::open_path(&path).unwrap();
    let mut buf = vec![0u8; 4096];
    disk.read_exact_at(&mut buf, 0).unwrap();
    let e = disk
        .read_exact_at(&mut buf, (50 << 20) - 100)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flat extent") && e.contains("past the end"),
        "{e}"
    );
}

#[test]
fn absurd_header_fields_are_refused() {
    build_all();
    let (_tmp, path, bytes, _) = setup("c-vmdk-odd-sparse");
    let sectors = bytes.len() as u64 / 512;
    let u32b = |v: u32| v.to_le_bytes().to_vec();
    let u64b = |v: u64| v.to_le_bytes().to_vec();
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        ("magic", 0, b"KDMX".to_vec(), "not a VMDK"),
        ("magic COWD", 0, b"COWD".to_vec(), "COWD"),
        ("version 0", 4, u32b(0), "version"),
        ("version 4", 4, u32b(4), "version"),
        ("capacity 0", 12, u64b(0), "capacity is 0"),
        ("capacity max", 12, u64b(u64::MAX), "overflows"),
        ("capacity huge", 12, u64b(1 << 50), "grain tables"),
        (
            "capacity short",
            12,
            u64b(204_806),
            "embedded descriptor says",
        ),
        ("grain 0", 20, u64b(0), "grain size"),
        ("grain 3", 20, u64b(3), "grain size"),
        ("grain 4", 20, u64b(4), "grain size"),
        ("grain huge", 20, u64b(1 << 40), "grain size"),
        ("desc offset", 28, u64b(1 << 40), "embedded descriptor"),
        ("desc size 0", 36, u64b(0), "descriptor size"),
        ("desc size huge", 36, u64b(1 << 30), "descriptor size"),
        ("gtes 0", 44, u32b(0), "numGTEsPerGT"),
        ("gtes huge", 44, u32b(1 << 20), "numGTEsPerGT"),
        ("gd 0", 56, u64b(0), "gdOffset"),
        ("gd past end", 56, u64b(sectors + 100), "grain directory"),
        ("gd overflow", 56, u64b(u64::MAX - 1), "grain directory"),
        (
            "gd at end, not a stream",
            56,
            u64b(u64::MAX),
            "not stream-optimized",
        ),
        ("overhead", 64, u64b(1 << 40), "truncated"),
        ("newline chars", 73, b"\n \n\n".to_vec(), "text mode"),
        (
            "compression",
            77,
            2u16.to_le_bytes().to_vec(),
            "compression algorithm",
        ),
        (
            "gd entry past end",
            38 * 512,
            u32b(0xffff_ff00),
            "grain directory entry 0",
        ),
        (
            "gd entry 3 past end",
            38 * 512 + 12,
            u32b(sectors as u32),
            "grain directory entry 3",
        ),
    ];
    for (case, off, val, needle) in cases {
        patch(&path, off, &val);
        expect_err(&path, needle, case);
        std::fs::write(&path, &bytes).unwrap();
    }
    // A grain-table entry past the end opens (tables are read lazily) but fails on read.
    patch(&path, 39 * 512 + 4, &u32b(0x7fff_ffff));
    let disk = Vmdk::open_path(&path).unwrap();
    let mut buf = vec![0u8; 200_000];
    disk.read_exact_at(&mut buf, 0).unwrap_err();
    let e = disk.read_exact_at(&mut buf, 65536).unwrap_err().to_string();
    assert!(
        e.contains("grain table") && e.contains("past the end"),
        "{e}"
    );
    std::fs::write(&path, &bytes).unwrap();
    // Embedded descriptor: wrong createType, a parent, two extents.
    for (from, to, needle) in [
        (
            "createType=\"monolithicSparse\"",
            "createType=\"twoGbMaxExtentSparse\"",
            "only monolithicSparse",
        ),
        ("parentCID=ffffffff", "parentCID=0badc0de", "delta disk"),
        (
            "# Extent description\n",
            "# Extent description\nRW 8 ZERO\n",
            "lists 2 extents",
        ),
        ("version=1", "version=7", "version"),
        ("RW 204807 SPARSE", "RW 204807 VMFSSPARSE", "not SPARSE"),
        ("RW 204807 SPARSE", "NOACCESS 204807 SPARSE", "NOACCESS"),
    ] {
        let mut desc = bytes[512..512 * 21].to_vec();
        let text = String::from_utf8_lossy(&desc).replacen(from, to, 1);
        assert!(text.contains(to));
        let n = text.len().min(desc.len());
        desc[..n].copy_from_slice(&text.as_bytes()[..n]);
        patch(&path, 512, &desc);
        expect_err(&path, needle, from);
        std::fs::write(&path, &bytes).unwrap();
    }
    assert!(open_and_read(&path).is_ok());
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn damaged_stream_grains_are_refused() {
    build_all();
    let (_tmp, path, bytes, _) = setup("c-vmdk-odd-stream");
    // GT 0 at sector 39; grain 1 (LBA 128) at sector 257.
    let gte1 = read_le32(&path, 39 * 512 + 4) as u64;
    assert_eq!(gte1, 257);
    let at = gte1 * 512;
    let size = read_le32(&path, at + 8);
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        ("garbled data", at + 12 + 40, vec![0xaa; 64], "grain 1"),
        (
            "bad zlib header",
            at + 12,
            vec![0x12, 0x34],
            "does not inflate",
        ),
        (
            "size huge",
            at + 8,
            0x7fff_ffffu32.to_le_bytes().to_vec(),
            "claims",
        ),
        (
            "size short",
            at + 8,
            5u32.to_le_bytes().to_vec(),
            "ends before",
        ),
        (
            "size 0",
            at + 8,
            0u32.to_le_bytes().to_vec(),
            "instead of a grain marker",
        ),
        ("lba", at, 999u64.to_le_bytes().to_vec(), "LBA 999"),
        (
            "gte to header",
            39 * 512 + 4,
            0u32.to_le_bytes().to_vec(),
            "",
        ),
        (
            "gte to sector 2",
            39 * 512 + 4,
            2u32.to_le_bytes().to_vec(),
            "grain 1",
        ),
        (
            "gte past EOF",
            39 * 512 + 4,
            0x00ff_ffffu32.to_le_bytes().to_vec(),
            "past the end",
        ),
    ];
    for (case, off, val, needle) in cases {
        patch(&path, off, &val);
        if case == "gte to header" {
            // GTE 0 is "unallocated": reads zeros there, no error — but not the old data.
            let d = open_and_read(&path).unwrap();
            assert!(d[65536..131072].iter().all(|&b| b == 0));
        } else {
            expect_err(&path, needle, case);
        }
        std::fs::write(&path, &bytes).unwrap();
    }
    // Grains that inflate to the wrong size (the marker and data are rewritten).
    for (case, plain, needle) in [
        ("short grain", vec![0x55u8; 1000], "inflates to 1000 bytes"),
        ("long grain", vec![0u8; 65536 + 4096], "more than"),
    ] {
        let z = zlib(&plain);
        assert!(z.len() < 129 * 512 - 12);
        let mut rec = Vec::new();
        rec.extend_from_slice(&128u64.to_le_bytes());
        rec.extend_from_slice(&(z.len() as u32).to_le_bytes());
        rec.extend_from_slice(&z);
        patch(&path, at, &rec);
        expect_err(&path, needle, case);
        std::fs::write(&path, &bytes).unwrap();
    }
    // A grain table entry pointing at a marker whose data runs past the end.
    let last = bytes.len() as u64 / 512 - 1;
    patch(&path, 39 * 512 + 4, &(last as u32).to_le_bytes());
    let mut rec = 128u64.to_le_bytes().to_vec();
    rec.extend_from_slice(&(size + 4096).to_le_bytes());
    patch(&path, last * 512, &rec);
    expect_err(&path, "past the end", "marker data past EOF");
    std::fs::write(&path, &bytes).unwrap();
    assert!(open_and_read(&path).is_ok());
}

#[test]
fn damaged_stream_footers_are_refused() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let src = vmscrub_fixtures::fixture("c-vmdk-odd-stream");
    let data = oracle_bytes(&src, tmp.path());
    let path = tmp.path().join("vm.vmdk");
    let bytes = write_vmware_stream(&data, "vm.vmdk", &StreamOptions { zero_grains: true });
    let len = bytes.len() as u64;
    let (fm, footer, eos) = (len - 1536, len - 1024, len - 512);
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        (
            "footer marker type",
            fm + 12,
            7u32.to_le_bytes().to_vec(),
            "footer marker",
        ),
        (
            "footer marker size",
            fm + 8,
            9u32.to_le_bytes().to_vec(),
            "footer marker",
        ),
        ("eos", eos, 5u64.to_le_bytes().to_vec(), "end-of-stream"),
        ("footer magic", footer, b"XDMV".to_vec(), "KDMV"),
        (
            "footer gd at end",
            footer + 56,
            u64::MAX.to_le_bytes().to_vec(),
            "GD_AT_END too",
        ),
        (
            "footer capacity",
            footer + 12,
            77u64.to_le_bytes().to_vec(),
            "disagrees",
        ),
        (
            "footer gd past end",
            footer + 56,
            (len / 512 + 10).to_le_bytes().to_vec(),
            "grain directory",
        ),
        (
            "footer grain size",
            footer + 20,
            256u64.to_le_bytes().to_vec(),
            "disagrees",
        ),
    ];
    for (case, off, val, needle) in cases {
        std::fs::write(&path, &bytes).unwrap();
        patch(&path, off, &val);
        expect_err(&path, needle, case);
    }
    std::fs::write(&path, &bytes[..1024]).unwrap();
    expect_err(&path, "too short", "tiny stream");
}

fn write_desc(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("d.vmdk");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_descriptors_are_refused() {
    build_all();
    let (tmp, _path, _, oracle) = setup("c-vmdk-odd-flat");
    let dir = tmp.path();
    let flat = "c-vmdk-odd-flat-flat.vmdk";
    let n = 204_807u64;
    let head = |ct: &str| {
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=ffffffff\ncreateType=\"{ct}\"\n"
        )
    };
    let mf = head("monolithicFlat");
    // A COWD file and a flat file posing as sparse extents, a sparse extent of the
    // wrong size, and a symlink leading out of the directory.
    std::fs::write(dir.join("cowd.vmdk"), b"COWD\x01\0\0\0 old format").unwrap();
    copy_fixture("c-vmdk-2gb-sparse", dir);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("escape.vmdk")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (format!("{mf}RW {n} FLAT \"{flat}\"\n"), "needs an offset"),
        (format!("{mf}RW x FLAT \"{flat}\" 0\n"), "not a number"),
        (format!("{mf}RW {n} FLAT {flat} 0\n"), "quoted file name"),
        (
            format!("{mf}RW {n} FLAT \"{flat}\" 0 junk\n"),
            "after the offset",
        ),
        (format!("{mf}RW {n} FLAT \"{flat} 0\n"), "unterminated"),
        (
            format!("{mf}garbage line\nRW {n} FLAT \"{flat}\" 0\n"),
            "unrecognized line",
        ),
        (mf.clone(), "no extent lines"),
        (
            format!("{mf}RW 9223372036854775807 ZERO\nRW 9223372036854775807 ZERO\nRW 9 ZERO\n"),
            "overflow",
        ),
        (
            format!("{}RW {n} FLAT \"{flat}\" 0\n", head("fooBar")),
            "unknown createType",
        ),
        (format!("{}RW {n} VMFS \"{flat}\"\n", head("vmfs")), "ESXi"),
        (format!("{mf}RW {n} VMFS \"{flat}\"\n"), "VMFS extent"),
        (
            format!("{mf}RW {n} VMFSSPARSE \"{flat}\"\n"),
            "VMFSSPARSE extent",
        ),
        (
            format!("{mf}RW {n} SESPARSE \"{flat}\"\n"),
            "SESPARSE extent",
        ),
        (format!("{mf}RW {n} VMFSRDM \"{flat}\"\n"), "VMFSRDM extent"),
        (format!("{mf}NOACCESS {n} FLAT \"{flat}\" 0\n"), "NOACCESS"),
        (
            format!(
                "{}RW {n} FLAT \"{flat}\" 0\n",
                mf.replace("parentCID=ffffffff", "parentCID=12345678")
            ),
            "delta disk",
        ),
        (
            format!("{mf}parentFileNameHint=\"base.vmdk\"\nRW {n} FLAT \"{flat}\" 0\n"),
            "delta disk",
        ),
        (format!("{mf}RW {n} FLAT \"/etc/passwd\" 0\n"), "absolute"),
        (format!("{mf}RW {n} FLAT \"../{flat}\" 0\n"), "`..`"),
        (format!("{mf}RW {n} FLAT \"escape.vmdk\" 0\n"), "symlink"),
        (
            format!("{mf}RW {n} FLAT \"missing.vmdk\" 0\n"),
            "missing.vmdk",
        ),
        (format!("{mf}RW {n} SPARSE \"cowd.vmdk\"\n"), "COWD"),
        (format!("{mf}RW {n} SPARSE \"{flat}\"\n"), "no KDMV magic"),
        (
            format!(
                "{mf}RW 204801 SPARSE \"{}\"\n",
                "c-vmdk-2gb-sparse-s001.vmdk"
            ),
            "capacity is 204800",
        ),
        (
            format!("{mf}RW {n} FLAT \"{flat}\" 0\nRW {n} FLAT \"{flat}\" 0\nversion=2\n"),
            "twice",
        ),
        ("# only a comment\n".to_string(), "not a VMDK"),
        (format!("version=1\n{}", "#".repeat(2 << 20)), "too large"),
    ];
    for (text, needle) in &cases {
        let p = write_desc(dir, text);
        match open_and_read(&p) {
            Ok(_) => panic!("accepted descriptor {:?}", &text[..text.len().min(300)]),
            Err(e) => assert!(
                e.contains(needle),
                "{e:?} lacks {needle:?} for {:?}",
                &text[..text.len().min(300)]
            ),
        }
    }
    let e = Vmdk::open_path(&write_desc(
        dir,
        &format!("{mf}RW {n} FLAT \"/etc/passwd\" 0\n"),
    ))
    .unwrap_err();
    assert!(matches!(e, VmdkError::ExtentPathRefused { .. }), "{e}");
    let e = Vmdk::open_path(&write_desc(
        dir,
        &format!("{}RW {n} FLAT \"{flat}\" 0\n", head("custom")),
    ))
    .unwrap_err();
    assert!(matches!(e, VmdkError::Unsupported(_)), "{e}");

    // Extents past their files' ends: opened, but reads that reach them fail.
    for text in [
        format!("{mf}RW {} FLAT \"{flat}\" 0\n", n + 100),
        format!("{mf}RW {n} FLAT \"{flat}\" 100\n"),
    ] {
        let disk = Vmdk::open_path(&write_desc(dir, &text)).unwrap();
        let mut buf = vec![0u8; 4096];
        disk.read_exact_at(&mut buf, 0).unwrap();
        let e = disk
            .read_exact_at(&mut buf, disk.size() - 4096)
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the end"), "{e}");
    }

    // CRLF, odd spacing and ZERO extents between flat pieces read as expected.
    let text = format!(
        "{mf}\r\n  RW 1000 FLAT \"{flat}\" 0 \r\nRDONLY 2000 ZERO\r\nRW {} FLAT \"{flat}\" 3000\r\n# trailing comment\r\n",
        n - 3000
    )
    .replace('\n', "\r\n");
    let disk = Vmdk::open_path(&write_desc(dir, &text)).unwrap();
    let got = read_all(&disk).unwrap();
    let mut want = oracle.clone();
    want[1000 * 512..3000 * 512].fill(0);
    assert!(
        got == want,
        "ZERO extent / CRLF descriptor read wrong bytes"
    );
    let alloc = disk.allocated_ranges().unwrap();
    assert!(!alloc.intersects(1000 * 512..3000 * 512));
}

#[test]
fn a_bare_split_extent_is_refused() {
    build_all();
    let image = vmscrub_fixtures::fixture("c-vmdk-2gb-sparse");
    let s001 = image.with_file_name("c-vmdk-2gb-sparse-s001.vmdk");
    let e = Vmdk::open_path(&s001).unwrap_err().to_string();
    assert!(e.contains("one extent of a split disk"), "{e}");
}

/// A deterministic fuzz loop: random byte flips in the metadata (and some in the
/// data) of small monolithic, stream and VMware-style stream images. Any outcome
/// but a panic is acceptable; reads are bounded by the 2 MiB virtual size.
#[test]
fn random_byte_flips_never_panic() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let src = vmscrub_fixtures::fixture("c-vmdk-odd-stream");
    let mut raw = oracle_bytes(&src, tmp.path());
    raw.truncate(2 << 20);
    raw[(1 << 20)..]
        .copy_from_slice(&oracle_bytes(&src, tmp.path())[3_000_000..3_000_000 + (1 << 20)]);
    let raw_path = tmp.path().join("small.raw");
    std::fs::write(&raw_path, &raw).unwrap();
    let mut images = Vec::new();
    for sub in ["monolithicSparse", "streamOptimized"] {
        let out = tmp.path().join(format!("small-{sub}.vmdk"));
        vmscrub_fixtures::run(
            "qemu-img",
            &[
                &"convert",
                &"-f",
                &"raw",
                &"-O",
                &"vmdk",
                &"-o",
                &format!("subformat={sub}"),
                &raw_path,
                &out,
            ],
        );
        // qemu puts header, descriptor, GD and GTs in the first 64 KiB.
        images.push((std::fs::read(&out).unwrap(), 0..65536usize));
    }
    let vm = write_vmware_stream(&raw, "vm.vmdk", &StreamOptions { zero_grains: true });
    let meta = vm.len() - 8192..vm.len();
    images.push((vm, meta));

    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut outcomes = [0usize; 3]; // open failed, read failed, read fine
    for iter in 0..3000 {
        let (img, hot) = &images[iter % images.len()];
        let mut b = img.clone();
        for _ in 0..1 + rng.below(4) {
            let pos = if rng.below(10) < 8 {
                hot.start + rng.below((hot.end - hot.start) as u64) as usize
            } else {
                rng.below(b.len() as u64) as usize
            };
            let pos = pos.min(b.len() - 1);
            b[pos] ^= 1 << rng.below(8);
            if rng.below(4) == 0 {
                b[pos] = [0x00, 0xff, 0x01, 0x80][rng.below(4) as usize];
            }
        }
        match Vmdk::open(Arc::new(MemDisk::new(b)), "fuzz.vmdk", &NoExtentFiles) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                outcomes[0] += 1;
            }
            Ok(disk) => {
                assert!(disk.size() < 1 << 40);
                let _ = disk.allocated_ranges();
                let mut buf = vec![0u8; 1 << 18];
                let mut failed = false;
                let mut pos = 0;
                while pos < disk.size().min(4 << 20) {
                    let n = (disk.size() - pos).min(buf.len() as u64) as usize;
                    failed |= disk.read_exact_at(&mut buf[..n], pos).is_err();
                    pos += n as u64;
                }
                outcomes[if failed { 1 } else { 2 }] += 1;
            }
        }
    }
    // The corpus exercises all three paths.
    assert!(outcomes.iter().all(|&c| c > 10), "{outcomes:?}");
}
