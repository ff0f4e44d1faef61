//! Test support: keys made by the real tools, and a corpus of entries of every kind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vmscrub_recovery::*;

pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Keys generated once per test binary with ssh-keygen and openssl.
pub struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
    pub fn identity(&self, name: &str, pass: Option<&str>) -> Identity {
        let pass = pass.map(str::to_string);
        Identity::parse(&self.read(name), &mut || {
            Ok(zeroize::Zeroizing::new(
                pass.clone().expect("passphrase asked for a plain key"),
            ))
        })
        .unwrap()
    }
    pub fn recipient(&self, name: &str) -> Recipient {
        let mut v = Recipient::parse(&self.read(name)).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }
}

pub const PASS: &str = "correct horse battery staple";

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let kg = |args: &[&str]| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-C", "test@vmscrub"])
                .args(args))
        };
        let p = |n: &str| d.join(n).to_str().unwrap().to_string();
        kg(&["-t", "rsa", "-b", "3072", "-N", "", "-f", &p("id_rsa")]);
        kg(&[
            "-t",
            "rsa",
            "-b",
            "3072",
            "-N",
            PASS,
            "-f",
            &p("id_rsa_pass"),
        ]);
        kg(&[
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-m",
            "PEM",
            "-f",
            &p("pkcs1.pem"),
        ]);
        kg(&["-t", "ed25519", "-N", "", "-f", &p("id_ed25519")]);
        kg(&["-t", "ecdsa", "-N", "", "-f", &p("id_ecdsa")]);
        kg(&["-t", "rsa", "-b", "1024", "-N", "", "-f", &p("id_rsa_1024")]);
        let ossl = |args: &[&str]| run(Command::new("openssl").args(args));
        ossl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p("pkcs8.pem"),
        ]);
        ossl(&[
            "pkcs8",
            "-topk8",
            "-in",
            &p("pkcs8.pem"),
            "-out",
            &p("pkcs8_enc.pem"),
            "-passout",
            &format!("pass:{PASS}"),
        ]);
        ossl(&[
            "pkey",
            "-in",
            &p("pkcs8.pem"),
            "-pubout",
            "-out",
            &p("pkcs8.spki.pem"),
        ]);
        ossl(&[
            "rsa",
            "-in",
            &p("pkcs1.pem"),
            "-RSAPublicKey_out",
            "-out",
            &p("pkcs1.pub.pem"),
        ]);
        ossl(&[
            "pkey",
            "-in",
            &p("pkcs8.pem"),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &p("pkcs8.spki.der"),
        ]);
        ossl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            &p("ed25519.p8.pem"),
        ]);
        ossl(&[
            "pkey",
            "-in",
            &p("ed25519.p8.pem"),
            "-pubout",
            "-out",
            &p("ed25519.spki.pem"),
        ]);
        Keys { dir }
    })
}

pub fn meta(mode: u32, secs: i64, nanos: u32) -> Metadata {
    Metadata {
        mode,
        uid: 1000,
        gid: 1000,
        uname: Some(b"alice".to_vec()),
        gname: Some(b"users".to_vec()),
        mtime: Timestamp { secs, nanos },
        xattrs: vec![],
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn cap_v2() -> Vec<u8> {
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE (bit 10).
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

pub fn acl_bin(text: &str) -> Vec<u8> {
    vmscrub_recovery::acl::from_text(text.as_bytes()).unwrap()
}

/// One expected entry plus the bytes of its logical content (files).
pub struct Expect {
    pub entry: Entry,
    pub content: Option<Vec<u8>>,
}

pub const SPARSE_SIZE: u64 = 3 * 1024 * 1024 * 1024 + 12345;

pub fn sparse_segments() -> Vec<Segment> {
    vec![
        Segment {
            offset: 0,
            len: 4096,
        },
        Segment {
            offset: 1 << 30,
            len: 65536 + 7,
        },
        Segment {
            offset: (2u64 << 30) + 512,
            len: 1000,
        },
    ]
}

pub fn long_name() -> Vec<u8> {
    let mut p = b"var/lib/".to_vec();
    for i in 0..12 {
        p.extend_from_slice(format!("very-long-directory-name-{i:02}/").as_bytes());
    }
    p.extend_from_slice(b"file.txt");
    p
}

/// Writes an archive with every entry kind; returns the archive bytes and what a
/// reader must give back.
pub fn build_corpus(recipients: &[Recipient]) -> (Vec<u8>, Vec<Expect>) {
    let info = ArchiveInfo {
        image: ImageInfo {
            name: "golden.qcow2".into(),
            size: 2 << 30,
            sha256: Some("ab".repeat(32)),
        },
        vmscrub_version: "0.1.0-test".into(),
        operations: vec!["ssh-hostkeys".into(), "logfiles".into()],
        created: None,
    };
    let mut w =
        ArchiveWriter::new(Vec::new(), recipients, info, &WriterOptions::default()).unwrap();
    let mut exp = Vec::new();
    let mut push =
        |path: &[u8], kind: EntryKind, meta: Metadata, size: u64, content: Option<Vec<u8>>| {
            exp.push(Expect {
                entry: Entry {
                    path: path.to_vec(),
                    kind,
                    meta,
                    size,
                },
                content,
            });
        };

    let mut m = meta(0o755, 1_700_000_000, 123_456_789);
    m.xattrs.push(Xattr {
        name: b"system.posix_acl_default".to_vec(),
        value: acl_bin("user::rwx\ngroup::r-x\ngroup:27:rwx\nmask::rwx\nother::r-x"),
    });
    w.add_dir(b"/etc", &m, "test").unwrap();
    push(b"etc", EntryKind::Dir, m, 0, None);

    // With an access ACL the group bits of the mode are the ACL mask (r--).
    let mut m = meta(0o640, 1_700_000_001, 1);
    m.uid = 0;
    m.gid = 0;
    m.uname = Some(b"root".to_vec());
    m.gname = Some(b"root".to_vec());
    m.xattrs.push(Xattr {
        name: b"user.comment".to_vec(),
        value: b"host key\x00\xff".to_vec(),
    });
    m.xattrs.push(Xattr {
        name: b"trusted.overlay".to_vec(),
        value: b"y".to_vec(),
    });
    m.xattrs.push(Xattr {
        name: b"system.posix_acl_access".to_vec(),
        value: acl_bin("user::rw-\nuser:1000:r--\ngroup::---\nmask::r--\nother::---"),
    });
    let data = b"-----BEGIN OPENSSH PRIVATE KEY-----\nMARKER-HOSTKEY\n".repeat(40);
    w.add_file(
        b"/etc/ssh_host_rsa_key",
        &m,
        "ssh-hostkeys",
        data.len() as u64,
        &mut &data[..],
    )
    .unwrap();
    push(
        b"etc/ssh_host_rsa_key",
        EntryKind::File,
        m,
        data.len() as u64,
        Some(data),
    );

    let m = meta(0o644, 0, 0);
    w.add_file(b"etc/empty", &m, "test", 0, &mut &b""[..])
        .unwrap();
    push(b"etc/empty", EntryKind::File, m, 0, Some(vec![]));

    // Directory contents follow their directory (walk order), so GNU tar's
    // delayed directory mtimes are not disturbed by later members.
    let m = meta(0o777, 1_700_000_004, 5);
    w.add_symlink(b"etc/localtime", &m, "test", b"/usr/share/zoneinfo/UTC")
        .unwrap();
    push(
        b"etc/localtime",
        EntryKind::Symlink {
            target: b"/usr/share/zoneinfo/UTC".to_vec(),
        },
        m,
        0,
        None,
    );

    let m = meta(0o777, 1_700_000_005, 0);
    let ltarget = [b"../".as_slice(), &b"t".repeat(200)].concat();
    w.add_symlink(b"etc/longlink", &m, "test", &ltarget)
        .unwrap();
    push(
        b"etc/longlink",
        EntryKind::Symlink { target: ltarget },
        m,
        0,
        None,
    );

    let m = meta(0o600, 1_700_000_001, 1);
    w.add_hardlink(
        b"etc/ssh_host_rsa_key.hardlink",
        &m,
        "ssh-hostkeys",
        b"etc/ssh_host_rsa_key",
    )
    .unwrap();
    push(
        b"etc/ssh_host_rsa_key.hardlink",
        EntryKind::HardLink {
            target: b"etc/ssh_host_rsa_key".to_vec(),
        },
        m,
        0,
        None,
    );

    let mut m = meta(0o4755, 1_600_000_000, 999_999_999);
    m.xattrs.push(Xattr {
        name: b"security.capability".to_vec(),
        value: cap_v2(),
    });
    let data = noise(300_000, 7);
    w.add_file(
        b"usr/bin/ping",
        &m,
        "test",
        data.len() as u64,
        &mut &data[..],
    )
    .unwrap();
    push(
        b"usr/bin/ping",
        EntryKind::File,
        m,
        data.len() as u64,
        Some(data),
    );

    let m = meta(0o640, 86_400, 500_000_000);
    let data = b"log line\n".repeat(1000);
    let name = long_name();
    w.add_file(&name, &m, "logfiles", data.len() as u64, &mut &data[..])
        .unwrap();
    push(&name, EntryKind::File, m, data.len() as u64, Some(data));

    let mut m = meta(0o600, 1_700_000_002, 42);
    m.uid = 3_000_000;
    m.gid = 4_000_000;
    m.uname = Some(b"a-user-name-that-is-longer-than-31-bytes".to_vec());
    m.gname = None;
    let data = b"caf\xe9 content".to_vec();
    w.add_file(
        b"home/u/caf\xe9.txt",
        &m,
        "test",
        data.len() as u64,
        &mut &data[..],
    )
    .unwrap();
    push(
        b"home/u/caf\xe9.txt",
        EntryKind::File,
        m,
        data.len() as u64,
        Some(data),
    );

    let m = meta(0o600, 1_700_000_003, 0);
    let mut lname = b"home/u/".to_vec();
    lname.extend(std::iter::repeat_n(0xfeu8, 150));
    let data = b"long non-utf8".to_vec();
    w.add_file(&lname, &m, "test", data.len() as u64, &mut &data[..])
        .unwrap();
    push(&lname, EntryKind::File, m, data.len() as u64, Some(data));

    let m = meta(0o666, 1_700_000_006, 0);
    w.add_device(b"dev/null", &m, "test", DeviceKind::Char, 1, 3)
        .unwrap();
    push(
        b"dev/null",
        EntryKind::Device {
            kind: DeviceKind::Char,
            major: 1,
            minor: 3,
        },
        m,
        0,
        None,
    );
    let m = meta(0o660, 1_700_000_007, 0);
    w.add_device(b"dev/sda", &m, "test", DeviceKind::Block, 8, 0)
        .unwrap();
    push(
        b"dev/sda",
        EntryKind::Device {
            kind: DeviceKind::Block,
            major: 8,
            minor: 0,
        },
        m,
        0,
        None,
    );
    let m = meta(0o644, 1_700_000_008, 0);
    w.add_fifo(b"run/initctl", &m, "test").unwrap();
    push(b"run/initctl", EntryKind::Fifo, m, 0, None);

    // Sparse: 3 GiB logical, ~70 KB of data, ends in a hole.
    let m = meta(0o640, 1_700_000_009, 777);
    let segs = sparse_segments();
    let data: Vec<u8> = segs
        .iter()
        .enumerate()
        .flat_map(|(i, s)| noise(s.len as usize, i as u64 + 100))
        .collect();
    w.add_sparse_file(
        b"var/lib/disk.img",
        &m,
        "test",
        SPARSE_SIZE,
        &segs,
        &mut &data[..],
    )
    .unwrap();
    let (norm, stored) = stored_form(SPARSE_SIZE, &segs, &data);
    push(
        b"var/lib/disk.img",
        EntryKind::Sparse { segments: norm },
        m,
        SPARSE_SIZE,
        Some(stored),
    );

    // Sparse ending in data, with a long path.
    let m = meta(0o600, 1_700_000_010, 0);
    let segs = vec![Segment {
        offset: 1 << 20,
        len: 5000,
    }];
    let data = noise(5000, 9);
    let mut sname = long_name();
    sname.extend_from_slice(b".sparse");
    w.add_sparse_file(&sname, &m, "test", (1 << 20) + 5000, &segs, &mut &data[..])
        .unwrap();
    let (norm, stored) = stored_form((1 << 20) + 5000, &segs, &data);
    push(
        &sname,
        EntryKind::Sparse { segments: norm },
        m,
        (1 << 20) + 5000,
        Some(stored),
    );

    let bytes = w.finish().unwrap();
    (bytes, exp)
}

/// What a reader gives back for a sparse file: the 512-aligned segments and their
/// bytes (the caller's data, zeros where alignment widened a segment).
pub fn stored_form(size: u64, segs: &[Segment], data: &[u8]) -> (Vec<Segment>, Vec<u8>) {
    let norm = normalize_sparse(size, segs).unwrap();
    let mut out = Vec::new();
    for n in &norm {
        let mut buf = vec![0u8; n.len as usize];
        let mut pos = 0usize;
        for s in segs {
            if s.offset >= n.offset && s.offset + s.len <= n.offset + n.len {
                let at = (s.offset - n.offset) as usize;
                buf[at..at + s.len as usize].copy_from_slice(&data[pos..pos + s.len as usize]);
            }
            pos += s.len as usize;
        }
        out.extend(buf);
    }
    (norm, out)
}

pub fn python() -> &'static str {
    "python3"
}

pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
