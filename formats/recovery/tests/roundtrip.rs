//! Round trips through the library, judged by GNU tar, Python's tarfile, sha256sum,
//! ssh-keygen and the kernel (stat/xattrs of what GNU tar extracted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use support::*;
use vmscrub_recovery::*;

fn read_all(bytes: &[u8], id: &Identity) -> (Vec<(Entry, Vec<u8>)>, Manifest) {
    let (_, payload) = open(bytes, id).unwrap();
    let mut tar = TarReader::new(payload);
    let mut out = Vec::new();
    while let Some(e) = tar.next_entry().unwrap() {
        let mut data = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = tar.read_data(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        out.push((e, data));
    }
    let m = tar.finish().unwrap().expect("manifest");
    (out, m)
}

#[test]
fn every_entry_kind_round_trips_exactly() {
    let k = keys();
    let (bytes, exp) = build_corpus(&[k.recipient("id_rsa.pub")]);
    let (got, manifest) = read_all(&bytes, &k.identity("id_rsa", None));
    assert_eq!(got.len(), exp.len());
    for ((e, data), x) in got.iter().zip(&exp) {
        assert_eq!(
            e,
            &x.entry,
            "entry {:?}",
            String::from_utf8_lossy(&x.entry.path)
        );
        if let Some(c) = &x.content {
            assert_eq!(data, c, "content of {:?}", String::from_utf8_lossy(&e.path));
        } else {
            assert!(data.is_empty());
        }
    }
    assert_eq!(manifest.files.len(), exp.len());
    assert_eq!(manifest.image.name, "golden.qcow2");
    assert_eq!(manifest.operations, ["ssh-hostkeys", "logfiles"]);
    let f = manifest
        .files
        .iter()
        .find(|f| f.path == "etc/ssh_host_rsa_key")
        .unwrap();
    assert_eq!(f.operation, "ssh-hostkeys");
    let nonutf = manifest
        .files
        .iter()
        .find(|f| f.path_hex.as_deref() == Some("686f6d652f752f636166e92e747874"))
        .unwrap();
    assert_eq!(nonutf.path, "home/u/caf\\xe9.txt");
}

#[test]
fn zero_recipients_are_refused() {
    let e = ArchiveWriter::new(
        Vec::new(),
        &[],
        ArchiveInfo::default(),
        &WriterOptions::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("at least one recipient"), "{e}");
}

#[test]
fn bad_paths_and_links_are_refused_at_write_time() {
    let k = keys();
    let mut w = ArchiveWriter::new(
        Vec::new(),
        &[k.recipient("id_rsa.pub")],
        ArchiveInfo::default(),
        &WriterOptions::default(),
    )
    .unwrap();
    let m = meta(0o644, 0, 0);
    assert!(w.add_dir(b"a/../b", &m, "t").is_err());
    assert!(w.add_dir(b"/", &m, "t").is_err());
    assert!(w.add_hardlink(b"x", &m, "t", b"not-there").is_err());
    // A short reader poisons the archive rather than leaving a broken member.
    let e = w.add_file(b"f", &m, "t", 10, &mut &b"abc"[..]).unwrap_err();
    assert!(e.to_string().contains("ended after 3 of 10"), "{e}");
    assert!(w.add_dir(b"d", &m, "t").is_err());
}

fn fingerprint_from_ssh_keygen(pubkey: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(pubkey));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn every_key_encoding_is_read_and_fingerprints_match_ssh_keygen() {
    let k = keys();
    let ssh_fp = fingerprint_from_ssh_keygen(&k.path("id_rsa.pub"));
    assert!(ssh_fp.starts_with("SHA256:"));
    assert_eq!(k.recipient("id_rsa.pub").fingerprint_string(), ssh_fp);
    assert_eq!(k.identity("id_rsa", None).fingerprint_string(), ssh_fp);
    // Encrypted OpenSSH key: same fingerprint as its .pub.
    assert_eq!(
        k.identity("id_rsa_pass", Some(PASS)).fingerprint_string(),
        fingerprint_from_ssh_keygen(&k.path("id_rsa_pass.pub"))
    );
    // PEM PKCS#1 private / public, PKCS#8 plain / encrypted, SPKI PEM / DER.
    let p1 = k.identity("pkcs1.pem", None);
    assert_eq!(
        p1.fingerprint_string(),
        fingerprint_from_ssh_keygen(&k.path("pkcs1.pem.pub"))
    );
    assert_eq!(k.recipient("pkcs1.pub.pem").fingerprint(), p1.fingerprint());
    let p8 = k.identity("pkcs8.pem", None);
    assert_eq!(
        k.identity("pkcs8_enc.pem", Some(PASS)).fingerprint(),
        p8.fingerprint()
    );
    assert_eq!(
        k.recipient("pkcs8.spki.pem").fingerprint(),
        p8.fingerprint()
    );
    assert_eq!(
        k.recipient("pkcs8.spki.der").fingerprint(),
        p8.fingerprint()
    );
    // ssh-keygen reads the SPKI too: its fingerprint agrees with ours.
    let out = run(Command::new("ssh-keygen")
        .args(["-i", "-m", "PKCS8", "-f"])
        .arg(k.path("pkcs8.spki.pem")));
    let conv = k.path("pkcs8.converted.pub");
    std::fs::write(&conv, out.stdout).unwrap();
    assert_eq!(fingerprint_from_ssh_keygen(&conv), p8.fingerprint_string());
}

#[test]
fn wrong_passphrases_and_refused_keys_say_why() {
    let k = keys();
    let wrong = |name: &str| {
        Identity::parse(&k.read(name), &mut || {
            Ok(zeroize::Zeroizing::new("wrong".to_string()))
        })
        .unwrap_err()
        .to_string()
    };
    assert!(wrong("id_rsa_pass").contains("wrong passphrase"));
    assert!(wrong("pkcs8_enc.pem").contains("wrong passphrase"));
    for (name, needle) in [
        ("id_ecdsa.pub", "ecdsa-sha2-nistp256"),
        ("ed25519.spki.pem", "Ed25519"),
    ] {
        let e = Recipient::parse(&k.read(name)).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("accepted"), "{name}: {e}");
    }
    let e = Recipient::parse(&k.read("id_rsa_1024.pub"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1024 bits") && e.contains("too small"), "{e}");
    let e = Recipient::parse(&k.read("id_rsa")).unwrap_err().to_string();
    assert!(e.contains("private key"), "{e}");
    let no_pass = |name: &str| {
        Identity::parse(&k.read(name), &mut || panic!("no passphrase for {name}"))
            .unwrap_err()
            .to_string()
    };
    let e = no_pass("ed25519.p8.pem");
    assert!(e.contains("Ed25519"), "{e}");
    let e = no_pass("id_rsa_1024");
    assert!(e.contains("1024 bits"), "{e}");
}

/// ssh-ed25519 keys serve the age format (not v1): public and private halves agree
/// with each other and with ssh-keygen's fingerprint.
#[test]
fn ed25519_keys_are_age_recipients_with_ssh_keygen_fingerprints() {
    let k = keys();
    let r = k.recipient("id_ed25519.pub");
    assert_eq!(r.kind(), "ssh-ed25519");
    assert!(!r.is_rsa());
    assert_eq!(
        r.fingerprint_string(),
        fingerprint_from_ssh_keygen(&k.path("id_ed25519.pub"))
    );
    let id = Identity::parse(&k.read("id_ed25519"), &mut || panic!("no passphrase")).unwrap();
    assert_eq!(id.fingerprint(), r.fingerprint());
    assert!(!id.is_rsa());
    r.check_age().unwrap();
    let e = ArchiveFormat::for_recipients(&[r.clone(), k.recipient("id_rsa.pub")]).unwrap();
    assert_eq!(e, ArchiveFormat::Age);
}

#[test]
fn any_recipient_of_several_opens_it_and_others_do_not() {
    let k = keys();
    let recips = [
        k.recipient("id_rsa.pub"),
        k.recipient("pkcs1.pub.pem"),
        k.recipient("pkcs8.spki.pem"),
    ];
    let (bytes, exp) = build_corpus(&recips);
    for (id, pass) in [
        ("id_rsa", None),
        ("pkcs1.pem", None),
        ("pkcs8_enc.pem", Some(PASS)),
    ] {
        let (got, _) = read_all(&bytes, &k.identity(id, pass));
        assert_eq!(got.len(), exp.len(), "{id}");
    }
    let stranger = k.identity("id_rsa_pass", Some(PASS));
    let e = open(&bytes[..], &stranger).err().unwrap();
    assert!(matches!(e, Error::NoMatchingRecipient { .. }), "{e}");
    assert!(
        e.to_string().contains(&recips[1].fingerprint_string()),
        "{e}"
    );
}

fn gnu_tar_extract(tar: &Path, dest: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dest).unwrap();
    let out = Command::new("tar")
        .args(extra)
        .arg("-xpf")
        .arg(tar)
        .arg("-C")
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "tar warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn xattrs_of(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut val = vec![0u8; 65536];
        let k = rustix::fs::lgetxattr(p, OsStr::from_bytes(name), &mut val[..]).unwrap();
        out.insert(name.to_vec(), val[..k].to_vec());
    }
    out
}

#[test]
fn gnu_tar_and_python_restore_everything() {
    let k = keys();
    let id = k.identity("id_rsa", None);
    let (bytes, exp) = build_corpus(&[k.recipient("id_rsa.pub")]);
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("removed.tar");
    let mut f = std::fs::File::create(&tar).unwrap();
    decrypt_to(&bytes[..], &id, &mut f).unwrap();
    drop(f);
    if let Ok(keep) = std::env::var("VMSCRUB_KEEP_TAR") {
        std::fs::copy(&tar, keep).unwrap();
    }

    // Plain `tar -xpf` (what the docs tell the owner): no warning, no stray file.
    let plain = dir.path().join("plain");
    gnu_tar_extract(&tar, &plain, &[]);
    let mut top: Vec<_> = std::fs::read_dir(&plain)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["dev", "etc", "home", "run", "usr", "var"]);
    // GNU tar lists exactly our entries.
    // GNU tar lists our entries plus the trailing self-link anchor after the manifest.
    let out = run(Command::new("tar").arg("-tvf").arg(&tar));
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), exp.len() + 1);
    let last = String::from_utf8_lossy(lines[lines.len() - 1]);
    let last_file = exp
        .iter()
        .rev()
        .find(|x| matches!(x.entry.kind, EntryKind::File | EntryKind::Sparse { .. }))
        .unwrap();
    let lf = String::from_utf8_lossy(&last_file.entry.path).to_string();
    assert!(
        last.starts_with('h') && last.ends_with(&format!("{lf} link to {lf}")),
        "{last}"
    );

    // Full restore with xattrs and ACLs.
    let full = dir.path().join("full");
    gnu_tar_extract(
        &tar,
        &full,
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
        ],
    );
    let mut sparse_checked = 0;
    for x in &exp {
        let e = &x.entry;
        let p = full.join(OsStr::from_bytes(&e.path));
        let name = String::from_utf8_lossy(&e.path).to_string();
        let st = std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{name}: {err}"));
        if !matches!(e.kind, EntryKind::HardLink { .. }) {
            assert_eq!(st.uid() as u64, e.meta.uid, "{name}");
            assert_eq!(st.gid() as u64, e.meta.gid, "{name}");
            assert_eq!(
                (st.mtime(), st.mtime_nsec() as u32),
                (e.meta.mtime.secs, e.meta.mtime.nanos),
                "{name}"
            );
            if !matches!(e.kind, EntryKind::Symlink { .. }) {
                assert_eq!(st.mode() & 0o7777, e.meta.mode, "{name}");
            }
        }
        match &e.kind {
            EntryKind::File => {
                assert!(st.file_type().is_file());
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    *x.content.as_ref().unwrap(),
                    "{name}"
                );
            }
            EntryKind::Sparse { segments } => {
                assert!(st.file_type().is_file());
                assert_eq!(st.len(), e.size, "{name}");
                assert!(
                    st.blocks() * 512 < 4 << 20,
                    "{name}: {} bytes allocated, holes not kept",
                    st.blocks() * 512
                );
                let f = std::fs::File::open(&p).unwrap();
                let mut pos = 0usize;
                let content = x.content.as_ref().unwrap();
                use std::os::unix::fs::FileExt;
                for s in segments {
                    let mut buf = vec![0u8; s.len as usize];
                    f.read_exact_at(&mut buf, s.offset).unwrap();
                    assert_eq!(
                        buf,
                        content[pos..pos + s.len as usize],
                        "{name} segment {s:?}"
                    );
                    pos += s.len as usize;
                    if s.offset >= 4096 {
                        let mut z = vec![1u8; 4096];
                        f.read_exact_at(&mut z, s.offset - 4096).unwrap();
                        assert!(z.iter().all(|&b| b == 0), "hole before {s:?}");
                    }
                }
                sparse_checked += 1;
            }
            EntryKind::Dir => assert!(st.is_dir()),
            EntryKind::Symlink { target } => {
                assert_eq!(
                    std::fs::read_link(&p).unwrap().as_os_str().as_bytes(),
                    target.as_slice()
                );
            }
            EntryKind::HardLink { target } => {
                let t = std::fs::metadata(full.join(OsStr::from_bytes(target))).unwrap();
                assert_eq!(st.ino(), t.ino(), "{name}");
            }
            EntryKind::Device { kind, major, minor } => {
                match kind {
                    DeviceKind::Char => assert!(st.file_type().is_char_device()),
                    DeviceKind::Block => assert!(st.file_type().is_block_device()),
                }
                assert_eq!(rustix::fs::major(st.rdev()), *major, "{name}");
                assert_eq!(rustix::fs::minor(st.rdev()), *minor, "{name}");
            }
            EntryKind::Fifo => assert!(st.file_type().is_fifo()),
        }
        if matches!(
            e.kind,
            EntryKind::Symlink { .. } | EntryKind::HardLink { .. }
        ) {
            continue;
        }
        let got = xattrs_of(&p);
        for xa in &e.meta.xattrs {
            assert_eq!(
                got.get(&xa.name),
                Some(&xa.value),
                "{name}: xattr {}",
                String::from_utf8_lossy(&xa.name)
            );
        }
    }
    assert_eq!(sparse_checked, 2);

    // The manifest's digest of the 3 GiB sparse file equals sha256sum of what tar restored.
    let (_, manifest) = read_all(&bytes, &id);
    let rec = manifest
        .files
        .iter()
        .find(|f| f.path == "var/lib/disk.img")
        .unwrap();
    let out = run(Command::new("sha256sum").arg(full.join("var/lib/disk.img")));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap(),
        rec.sha256.as_deref().unwrap()
    );

    // Python's tarfile (the decryptor's oracle) reads the same names, sizes, sparse maps.
    let script = r#"
import sys, tarfile, json
out = []
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    for m in t:
        out.append([m.name.encode('utf-8', 'surrogateescape').hex(), m.size, m.type.decode('latin-1'),
                    m.mode, m.uid, m.gid, repr(m.pax_headers.get('mtime', m.mtime)), m.sparse, m.linkname.encode('utf-8','surrogateescape').hex()])
        if m.isfile():
            f = t.extractfile(m); f.seek(0, 2)
    print(json.dumps(out))
"#;
    let out = run(Command::new(python()).arg("-c").arg(script).arg(&tar));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), exp.len() + 1);
    for (row, x) in rows.iter().zip(&exp) {
        let hexpath: String = x.entry.path.iter().map(|b| format!("{b:02x}")).collect();
        // tarfile drops the trailing `/` of directory names, as we do.
        assert_eq!(row[0].as_str().unwrap(), hexpath);
        assert_eq!(row[1].as_u64().unwrap(), x.entry.size, "{hexpath}");
        assert_eq!(row[3].as_u64().unwrap() as u32, x.entry.meta.mode);
        assert_eq!(row[4].as_u64().unwrap(), x.entry.meta.uid);
        if let EntryKind::Sparse { segments } = &x.entry.kind {
            let py: Vec<(u64, u64)> = serde_json::from_value(row[7].clone()).unwrap();
            let mut want: Vec<(u64, u64)> = segments.iter().map(|s| (s.offset, s.len)).collect();
            if py.len() == want.len() + 1 {
                want.push((x.entry.size, 0));
            }
            assert_eq!(py, want);
        }
    }

    // Python extracts the sparse file with holes and the right size too.
    let pyx = dir.path().join("py");
    let script = "import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t:\n    kw = {'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}\n    t.extractall(sys.argv[2], members=[m for m in t if m.name == 'var/lib/disk.img'], **kw)\n";
    run(Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&tar)
        .arg(&pyx));
    let st = std::fs::metadata(pyx.join("var/lib/disk.img")).unwrap();
    assert_eq!(st.len(), SPARSE_SIZE);
    assert!(st.blocks() * 512 < 4 << 20);
}

#[test]
fn library_extract_restores_and_refuses_nothing_valid() {
    let k = keys();
    let id = k.identity("id_rsa", None);
    let (bytes, exp) = build_corpus(&[k.recipient("id_rsa.pub")]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("restore");
    let report = extract::extract(
        &bytes[..],
        &id,
        &target,
        &extract::ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(report.entries as usize, exp.len());
    assert!(report.manifest.is_some());
    // No staging directory left behind.
    let names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().starts_with(".vmscrub")),
        "{names:?}"
    );
    for x in &exp {
        let p = target.join(OsStr::from_bytes(&x.entry.path));
        let st = std::fs::symlink_metadata(&p).unwrap();
        if let (EntryKind::File, Some(c)) = (&x.entry.kind, &x.content) {
            assert_eq!(&std::fs::read(&p).unwrap(), c);
        }
        if !matches!(
            x.entry.kind,
            EntryKind::HardLink { .. } | EntryKind::Symlink { .. }
        ) {
            assert_eq!(st.mode() & 0o7777, x.entry.meta.mode, "{:?}", p);
            assert_eq!(
                (st.mtime(), st.mtime_nsec() as u32),
                (x.entry.meta.mtime.secs, x.entry.meta.mtime.nanos),
                "{p:?}"
            );
            let got = xattrs_of(&p);
            for xa in &x.entry.meta.xattrs {
                assert_eq!(
                    got.get(&xa.name),
                    Some(&xa.value),
                    "{p:?} {}",
                    String::from_utf8_lossy(&xa.name)
                );
            }
        }
    }
    // Extracting again without --force conflicts before touching anything.
    let e = extract::extract(
        &bytes[..],
        &id,
        &target,
        &extract::ExtractOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
}
