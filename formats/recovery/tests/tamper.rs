//! Every way an archive can be damaged or forged is rejected by the Rust reader and
//! by the standalone Python decryptor, and the Python decryptor, written from the
//! spec alone, gives the same tar byte for byte on intact archives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::*;
use vmscrub_recovery::header::FIXED_LEN;
use vmscrub_recovery::*;

const CHUNK: u32 = 1024;

fn small_chunk_archive(recipients: &[Recipient]) -> Vec<u8> {
    let opts = WriterOptions {
        format: ArchiveFormat::V1,
        chunk_size: CHUNK,
        ..WriterOptions::default()
    };
    let mut w = ArchiveWriter::new(Vec::new(), recipients, ArchiveInfo::default(), &opts).unwrap();
    let data = noise(20_000, 3); // incompressible: ~20 chunks
    w.add_file(
        b"a/noise",
        &meta(0o600, 1, 0),
        "t",
        data.len() as u64,
        &mut &data[..],
    )
    .unwrap();
    w.finish().unwrap()
}

fn header_len(a: &[u8]) -> usize {
    u32::from_be_bytes(a[10..14].try_into().unwrap()) as usize
}

fn chunk_range(a: &[u8], i: usize) -> std::ops::Range<usize> {
    let full = CHUNK as usize + 16;
    let start = header_len(a) + i * full;
    start..(start + full).min(a.len())
}

fn n_chunks(a: &[u8]) -> usize {
    (a.len() - header_len(a)).div_ceil(CHUNK as usize + 16)
}

fn flip(a: &[u8], at: usize) -> Vec<u8> {
    let mut v = a.to_vec();
    v[at] ^= 0x10;
    v
}

/// (name, damaged archive) for every class of damage the format must detect.
fn mutations(a: &[u8]) -> Vec<(String, Vec<u8>)> {
    let n = n_chunks(a);
    assert!(n >= 10, "need many chunks, got {n}");
    let hl = header_len(a);
    let mut m: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, at) in [
        ("magic", 0),
        ("version", 9),
        ("header_len", 13),
        ("cipher id", 14),
        ("reserved", 17),
        ("chunk size", 20),
        ("nonce prefix", 25),
        ("recipient count", 30),
        ("entry type", FIXED_LEN),
        ("entry fingerprint", FIXED_LEN + 10),
        ("entry wrapped_len", FIXED_LEN + 35),
        ("wrapped key first byte", FIXED_LEN + 36),
        ("wrapped key last byte", hl - 1),
    ] {
        m.push((format!("flip {name}"), flip(a, at)));
    }
    for (name, i) in [("first", 0), ("middle", n / 2), ("last", n - 1)] {
        let r = chunk_range(a, i);
        m.push((format!("flip {name} chunk start"), flip(a, r.start)));
        m.push((format!("flip {name} chunk tag"), flip(a, r.end - 1)));
    }
    m.push(("truncated inside header".into(), a[..hl - 5].to_vec()));
    m.push(("header only".into(), a[..hl].to_vec()));
    m.push(("truncated last chunk".into(), a[..a.len() - 7].to_vec()));
    m.push((
        "missing last chunk (chunk boundary)".into(),
        a[..chunk_range(a, n - 1).start].to_vec(),
    ));
    m.push((
        "missing last two chunks".into(),
        a[..chunk_range(a, n - 2).start].to_vec(),
    ));
    let (r1, r2) = (chunk_range(a, 1), chunk_range(a, 2));
    let mut swapped = a[..r1.start].to_vec();
    swapped.extend_from_slice(&a[r2.clone()]);
    swapped.extend_from_slice(&a[r1.clone()]);
    swapped.extend_from_slice(&a[r2.end..]);
    m.push(("reordered chunks 1 and 2".into(), swapped));
    let mut dup = a[..r2.start].to_vec();
    dup.extend_from_slice(&a[r1.clone()]);
    dup.extend_from_slice(&a[r2.start..]);
    m.push(("duplicated chunk 1".into(), dup));
    let mut dropped = a[..r1.start].to_vec();
    dropped.extend_from_slice(&a[r2.start..]);
    m.push(("dropped chunk 1".into(), dropped));
    for extra in [1usize, 100, CHUNK as usize + 16] {
        let mut g = a.to_vec();
        g.extend(std::iter::repeat_n(0x41u8, extra));
        m.push((format!("{extra} bytes of trailing garbage"), g));
    }
    m.push(("empty file".into(), vec![]));
    m
}

fn python_decrypt(
    archive: &[u8],
    key: &std::path::Path,
    pass_file: Option<&std::path::Path>,
) -> (std::process::Output, Option<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.vsr");
    std::fs::write(&inp, archive).unwrap();
    let out_path = dir.path().join("out.tar");
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("scripts/vmscrub-recover.py"))
        .arg(&inp)
        .arg("--identity")
        .arg(key)
        .arg("-o")
        .arg(&out_path);
    if let Some(p) = pass_file {
        cmd.arg("--passphrase-file").arg(p);
    }
    let out = cmd.output().unwrap();
    let produced = std::fs::read(&out_path).ok();
    // Nothing but (at most) the finished output may be left in the directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == "in.vsr" || n == "out.tar"),
        "python left {left:?}"
    );
    (out, produced)
}

#[test]
fn python_decryptor_gives_the_same_tar_byte_for_byte() {
    let k = keys();
    let recips = [
        k.recipient("id_rsa.pub"),
        k.recipient("id_rsa_pass.pub"),
        k.recipient("pkcs8.spki.pem"),
    ];
    let (bytes, _) = build_corpus(&recips);
    let mut rust_tar = Vec::new();
    decrypt_to(&bytes[..], &k.identity("id_rsa", None), &mut rust_tar).unwrap();
    let pass = k.path("pass.txt");
    std::fs::write(&pass, format!("{PASS}\n")).unwrap();
    for (key, pf) in [
        ("id_rsa", None),
        ("id_rsa_pass", Some(pass.as_path())),
        ("pkcs8_enc.pem", Some(pass.as_path())),
        ("pkcs8.pem", None),
    ] {
        let (out, tar) = python_decrypt(&bytes, &k.path(key), pf);
        assert!(
            out.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            tar.unwrap() == rust_tar,
            "{key}: python tar differs from rust tar"
        );
    }
    // Also a multi-frame-free but multi-chunk archive with an exact-multiple payload.
    let a = small_chunk_archive(&[k.recipient("pkcs1.pub.pem")]);
    let mut rust_tar = Vec::new();
    decrypt_to(&a[..], &k.identity("pkcs1.pem", None), &mut rust_tar).unwrap();
    let (out, tar) = python_decrypt(&a, &k.path("pkcs1.pem"), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tar.unwrap() == rust_tar);
}

#[test]
fn payload_of_exactly_n_chunks_round_trips() {
    // A payload that is an exact multiple of the chunk size ends in a full final
    // chunk: find tar sizes whose compressed payload lands exactly on a boundary.
    let k = keys();
    let id = k.identity("id_rsa", None);
    let recips = [k.recipient("id_rsa.pub")];
    let opts = WriterOptions {
        format: ArchiveFormat::V1,
        chunk_size: 512,
        zstd_level: 1,
        zstd_workers: 0,
    };
    let mut exact = Vec::new();
    for len in 400..1700usize {
        let tar = noise(len, 5);
        let a = encrypt_tar(Vec::new(), &recips, &opts, &mut &tar[..]).unwrap();
        let body = a.len() - header_len(&a);
        let chunks = body.div_ceil(528);
        if (body - 16 * chunks).is_multiple_of(512) {
            exact.push((tar, a));
        }
    }
    assert!(!exact.is_empty(), "no exact-multiple payload found");
    for (tar, a) in exact.iter().take(2) {
        let mut back = Vec::new();
        decrypt_to(&a[..], &id, &mut back).unwrap();
        assert_eq!(&back, tar);
        let (out, py) = python_decrypt(a, &k.path("id_rsa"), None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&py.unwrap(), tar);
        // Dropping that full final chunk is reported as truncation.
        let cut = &a[..a.len() - 528];
        let e = decrypt_to(cut, &id, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
    }
}

#[test]
fn every_damage_is_rejected_by_rust_and_python() {
    let k = keys();
    let a = small_chunk_archive(&[k.recipient("id_rsa.pub")]);
    let id = k.identity("id_rsa", None);
    // The intact archive is fine both ways.
    let mut ok = Vec::new();
    decrypt_to(&a[..], &id, &mut ok).unwrap();
    let muts = mutations(&a);
    assert!(muts.len() >= 30);
    for (name, bad) in &muts {
        let mut sink = Vec::new();
        let err = decrypt_to(&bad[..], &id, &mut sink)
            .err()
            .unwrap_or_else(|| panic!("rust accepted: {name}"));
        let msg = err.to_string();
        assert!(!msg.is_empty());
        if name.contains("missing last") {
            assert!(matches!(err, Error::Truncated { .. }), "{name}: {err}");
        }
        if name.contains("chunk") && !name.contains("missing") {
            assert!(
                matches!(
                    err,
                    Error::ChunkAuth { .. }
                        | Error::Truncated { .. }
                        | Error::EndsInsideChunk { .. }
                ),
                "{name}: {err}"
            );
        }
        // A file cut inside its last chunk is named as truncated, not "modified".
        if name == "truncated last chunk" {
            assert!(
                matches!(err, Error::EndsInsideChunk { .. }),
                "{name}: {err}"
            );
            assert!(msg.contains("truncated"), "{msg}");
        }
        let (out, produced) = python_decrypt(bad, &k.path("id_rsa"), None);
        assert_eq!(
            out.status.code(),
            Some(3),
            "python accepted or crashed on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(produced.is_none(), "python left an output for {name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{name}"
        );
    }
}

#[test]
fn wrong_key_is_rejected_by_both() {
    let k = keys();
    let a = small_chunk_archive(&[k.recipient("id_rsa.pub")]);
    let e = decrypt_to(&a[..], &k.identity("pkcs1.pem", None), &mut Vec::new()).unwrap_err();
    assert!(matches!(e, Error::NoMatchingRecipient { .. }), "{e}");
    let (out, produced) = python_decrypt(&a, &k.path("pkcs1.pem"), None);
    assert_eq!(out.status.code(), Some(3));
    assert!(produced.is_none());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recipient"));
}

#[test]
fn random_bit_flips_never_panic_and_always_fail() {
    let k = keys();
    let id = k.identity("id_rsa", None);
    let a = small_chunk_archive(&[k.recipient("id_rsa.pub")]);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % a.len() as u64) as usize;
        let bad = flip(&a, at);
        assert!(
            decrypt_to(&bad[..], &id, &mut Vec::new()).is_err(),
            "flip at {at} accepted"
        );
        let (_, payload) = match open(&bad[..], &id) {
            Ok(p) => p,
            Err(_) => continue,
        };
        let mut tar = TarReader::new(payload);
        let mut failed = false;
        for _ in 0..10 {
            match tar.next_entry() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(
            failed || tar.finish().is_err(),
            "flip at {at} accepted by the tar reader"
        );
    }
}

#[test]
fn no_plaintext_reaches_the_archive() {
    let k = keys();
    let marker = b"PLANTED-SECRET-MARKER-7f3a9c";
    let mut compressible = Vec::new();
    while compressible.len() < 1_000_000 {
        compressible.extend_from_slice(b"Nov 23 12:00:00 host sshd[123]: session opened ");
        compressible.extend_from_slice(marker);
        compressible.push(b'\n');
    }
    let mut incompressible = noise(1_000_000, 11);
    for off in (0..incompressible.len() - 64).step_by(50_000) {
        incompressible[off..off + marker.len()].copy_from_slice(marker);
    }
    for level_workers in [(3, 0), (1, 2)] {
        let opts = WriterOptions {
            format: ArchiveFormat::V1,
            zstd_level: level_workers.0,
            zstd_workers: level_workers.1,
            ..WriterOptions::default()
        };
        let mut w = ArchiveWriter::new(
            Vec::new(),
            &[k.recipient("id_rsa.pub")],
            ArchiveInfo::default(),
            &opts,
        )
        .unwrap();
        let mut name = b"var/log/".to_vec();
        name.extend_from_slice(marker);
        w.add_file(
            &name,
            &meta(0o600, 1, 0),
            "logfiles",
            compressible.len() as u64,
            &mut &compressible[..],
        )
        .unwrap();
        w.add_file(
            b"root/.ssh/id_rsa",
            &meta(0o600, 1, 0),
            "ssh-userdir",
            incompressible.len() as u64,
            &mut &incompressible[..],
        )
        .unwrap();
        let a = w.finish().unwrap();
        let hay = |needle: &[u8]| a.windows(needle.len()).any(|w| w == needle);
        assert!(!hay(marker), "marker found in the archive");
        assert!(!hay(b"session opened"), "log text found in the archive");
        assert!(
            !hay(&incompressible[1000..1032]),
            "random content found in the archive"
        );
        assert!(!hay(b"ustar"), "tar header in the clear");
        // And it really is in there.
        let mut tar = Vec::new();
        decrypt_to(&a[..], &k.identity("id_rsa", None), &mut tar).unwrap();
        assert!(tar.windows(marker.len()).any(|w| w == marker));
    }
}

/// Authenticated but malformed tars (only a recipient-key holder could make one,
/// but the reader must still answer with an error, never a panic or a hang).
#[test]
fn hostile_tar_payloads_error_cleanly() {
    let k = keys();
    let id = k.identity("id_rsa", None);
    let recips = [k.recipient("id_rsa.pub")];
    let (bytes, _) = build_corpus(&recips);
    let mut tar = Vec::new();
    decrypt_to(&bytes[..], &id, &mut tar).unwrap();
    let headers: Vec<usize> = (0..tar.len() / 512)
        .filter(|b| &tar[b * 512 + 257..b * 512 + 262] == b"ustar")
        .collect();
    assert!(headers.len() > 20);
    let opts = WriterOptions {
        format: ArchiveFormat::V1,
        zstd_level: 1,
        ..WriterOptions::default()
    };
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut errors, mut oks) = (0, 0);
    for round in 0..300 {
        let mut bad = tar.clone();
        match round % 3 {
            0 => {
                let h = headers[(next() % headers.len() as u64) as usize] * 512;
                let at = h + (next() % 512) as usize;
                bad[at] = next() as u8;
            }
            1 => {
                let h = headers[(next() % headers.len() as u64) as usize] * 512;
                // Corrupt a numeric field and fix the checksum so the field is parsed.
                let field = [100usize, 108, 116, 124, 136, 329, 337][(next() % 7) as usize];
                bad[h + field] = b"0123456789 \x80\xff"[(next() % 13) as usize];
                bad[h + 148..h + 156].fill(b' ');
                let sum: u32 = bad[h..h + 512].iter().map(|&b| u32::from(b)).sum();
                bad[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            }
            _ => {
                let cut = (next() % tar.len() as u64) as usize;
                bad.truncate(cut);
            }
        }
        let a = encrypt_tar(Vec::new(), &recips, &opts, &mut &bad[..]).unwrap();
        let (_, payload) = open(&a[..], &id).unwrap();
        let mut r = TarReader::new(payload);
        let mut result = Ok(());
        let mut buf = vec![0u8; 65536];
        'outer: for _ in 0..1000 {
            match r.next_entry() {
                Ok(Some(_)) => loop {
                    match r.read_data(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            result = Err(e);
                            break 'outer;
                        }
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.and_then(|()| r.finish().map(|_| ()));
        match result {
            Ok(()) => oks += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                errors += 1;
            }
        }
        // Extraction of the same archive never escapes its target.
        if round % 10 == 0 {
            let d = tempfile::tempdir().unwrap();
            let target = d.path().join("t");
            let _ = extract::extract(&a[..], &id, &target, &extract::ExtractOptions::default());
            let names: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(names.iter().all(|n| n == "t"), "{names:?}");
        }
    }
    assert!(
        errors > 50,
        "only {errors} of 300 malformed tars rejected ({oks} accepted)"
    );
}
