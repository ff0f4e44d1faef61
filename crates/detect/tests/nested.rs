//! The nested scanner over archives and compressed streams made by the real tools
//! (tar, gzip, xz, zstd, bzip2, zip, cpio): a key inside is found with its member
//! path; a 42.zip-style bomb made at test time stops at the bounds with a warning;
//! corrupted containers never panic and still get their raw bytes scanned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::sh;
use vmscrub_detect::{DetectorSet, Limits, NestedScan, ScannerPool};

fn scan_file(path: &Path, limits: &Limits) -> NestedScan {
    let set = DetectorSet::with_defaults().unwrap();
    let f = std::fs::File::open(path).unwrap();
    set.scan_nested(&mut ScannerPool::new(), f, limits).unwrap()
}

/// A fresh key and a decoy in `d/tree/etc/app/`.
fn tree(d: &Path) {
    sh(
        d,
        "mkdir -p tree/etc/app && ssh-keygen -q -t ed25519 -N '' -f tree/etc/app/id && printf 'plain text\\n' > tree/etc/app/readme",
    );
}

fn members(s: &NestedScan) -> Vec<(String, String)> {
    s.findings
        .iter()
        .map(|f| {
            (
                f.member.clone().unwrap_or_default(),
                f.finding.detector.to_string(),
            )
        })
        .collect()
}

#[test]
fn keys_inside_every_container_kind_name_their_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    let cases: &[(&str, &str, &str)] = &[
        ("a.tar", "tar -cf a.tar -C tree etc", "tar:etc/app/id"),
        (
            "a.tgz",
            "tar -czf a.tgz -C tree etc",
            "gzip > tar:etc/app/id",
        ),
        ("a.txz", "tar -cJf a.txz -C tree etc", "xz > tar:etc/app/id"),
        (
            "a.tzst",
            "tar -cf - -C tree etc | zstd -q -o a.tzst",
            "zstd > tar:etc/app/id",
        ),
        (
            "a.tbz",
            "tar -cjf a.tbz -C tree etc",
            "bzip2 > tar:etc/app/id",
        ),
        (
            "a.zip",
            "cd tree && zip -q -r ../a.zip etc",
            "zip:etc/app/id",
        ),
        (
            "a.cpio",
            "cd tree && find etc | cpio -o -H newc --quiet > ../a.cpio",
            "cpio:etc/app/id",
        ),
        (
            "a.odc",
            "cd tree && find etc | cpio -o -H odc --quiet > ../a.odc",
            "cpio:etc/app/id",
        ),
        ("id.gz", "gzip -c tree/etc/app/id > id.gz", "gzip"),
        // A jar in a tar in gzip: three layers.
        (
            "deep.tgz",
            "mkdir -p deep && (cd tree && zip -q -r ../deep/app.jar etc) && tar -czf deep.tgz -C deep app.jar",
            "gzip > tar:app.jar > zip:etc/app/id",
        ),
    ];
    for (file, script, member) in cases {
        sh(d, script);
        let s = scan_file(&d.join(file), &Limits::default());
        assert_eq!(
            members(&s),
            vec![(member.to_string(), "openssh-private-key".to_string())],
            "{file}: {:?}",
            s.warnings
        );
        assert!(s.warnings.is_empty(), "{file}: {:?}", s.warnings);
    }
}

#[test]
fn the_depth_bound_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    sh(
        d,
        "gzip -c tree/etc/app/id > l1.gz && gzip -c l1.gz > l2.gz && gzip -c l2.gz > l3.gz",
    );
    let limits = |max_depth| Limits {
        max_depth,
        ..Limits::default()
    };
    // Three gzip layers: found with depth 3, not with depth 2.
    assert_eq!(scan_file(&d.join("l3.gz"), &limits(3)).findings.len(), 1);
    assert!(scan_file(&d.join("l3.gz"), &limits(2)).findings.is_empty());
}

/// 42.zip-style: a deflated file of zeros, zipped 16 times per layer, 3 layers
/// (16^2 × 64 MiB = 16 GiB expanded), made by Python's zipfile at test time.
#[test]
fn a_nested_zip_bomb_stops_at_the_bounds_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(
        d,
        "python3 - <<'EOF'\nimport zipfile, io\nz = b'\\0' * (64 << 20)\ndef layer(name, members):\n    b = io.BytesIO()\n    with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as f:\n        for i, (n, data) in enumerate(members):\n            f.writestr(f'{i}-{n}', data)\n    return b.getvalue()\nl0 = layer('zeros', [('zeros', z)])\nl1 = layer('l1', [('l0.zip', l0)] * 16)\nl2 = layer('l2', [('l1.zip', l1)] * 16)\nopen('bomb.zip', 'wb').write(l2)\nEOF",
    );
    let size = std::fs::metadata(d.join("bomb.zip")).unwrap().len();
    assert!(size < 4 << 20, "the bomb is small: {size}");
    let limits = Limits {
        max_total: 256 << 20,
        ..Limits::default()
    };
    let t = Instant::now();
    let s = scan_file(&d.join("bomb.zip"), &limits);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(s.findings.is_empty());
    // Bounded: what was decompressed stays within the total (members are counted
    // once per layer they pass through, so at most depth × total).
    assert!(
        s.inner_bytes <= (limits.max_depth as u64 + 1) * limits.max_total,
        "{}",
        s.inner_bytes
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("bomb")),
        "{:?}",
        s.warnings
    );
}

/// Flipped and truncated bytes of real containers: never a panic, the raw scan
/// still runs (a key stored uncompressed in a tar is found in the raw bytes even
/// when the tar no longer parses).
#[test]
fn corrupted_containers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    sh(
        d,
        "tar -cf a.tar -C tree etc && gzip -c a.tar > a.tgz && (cd tree && zip -q -r ../a.zip etc) && xz -c a.tar > a.txz",
    );
    let set = DetectorSet::with_defaults().unwrap();
    let mut pool = ScannerPool::new();
    let limits = Limits::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in ["a.tar", "a.tgz", "a.zip", "a.txz"] {
        let orig = std::fs::read(d.join(name)).unwrap();
        for round in 0..60 {
            let mut b = orig.clone();
            if round % 3 == 0 {
                b.truncate((next() as usize) % b.len());
            } else {
                for _ in 0..1 + round % 8 {
                    let i = (next() as usize) % b.len();
                    b[i] ^= 1 << (next() % 8);
                }
            }
            let s = set.scan_nested(&mut pool, &b[..], &limits).unwrap();
            assert!(
                s.bytes == b.len() as u64,
                "{name}: the raw scan saw every byte"
            );
        }
    }
    // The raw bytes of a tar whose first header is broken still hold the key.
    let mut b = std::fs::read(d.join("a.tar")).unwrap();
    b[148] ^= 0x01; // the checksum field of the first header
    let s = set.scan_nested(&mut pool, &b[..], &limits).unwrap();
    assert_eq!(s.findings.len(), 1, "{:?}", s.findings);
    assert_eq!(s.findings[0].member, None);
}
