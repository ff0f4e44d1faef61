use super::*;
use crate::fs::walk::memfs::MemFs;
use crate::guest::{FsIdentity, GuestFs};
use std::sync::Arc;

/// A test detector: `-----BEGIN TEST PRIVATE KEY-----` is a private key,
/// `tok_` followed by 8 letters a token, `ALIEN` a hit for an operation the
/// catalogue does not have. Reports offsets and a fake hash, never bytes.
pub struct FakeDetector;

impl ContentScanner for FakeDetector {
    fn scan(&self, _path: &[u8], r: &mut dyn Read, _size: u64) -> io::Result<Vec<ContentHit>> {
        let mut data = vec![];
        r.read_to_end(&mut data)?;
        let mut hits = vec![];
        let mut find = |needle: &[u8], det: &str, op: &str, len: usize| {
            let mut i = 0;
            while let Some(p) = data[i..].windows(needle.len()).position(|w| w == needle) {
                hits.push(ContentHit {
                    detector: det.into(),
                    operation: op.into(),
                    offset: (i + p) as u64,
                    length: len as u64,
                    hash: format!("h{}", i + p),
                    why: format!("{det} found"),
                    member: None,
                    value: Some((i + p) as u64..(i + p + len) as u64),
                });
                i += p + needle.len();
            }
        };
        find(
            b"-----BEGIN TEST PRIVATE KEY-----",
            "test-key",
            "private-keys",
            60,
        );
        find(b"tok_", "test-token", "tokens", 12);
        find(b"ALIEN", "alien", "no-such-op", 5);
        Ok(hits)
    }
}

pub const SECRET: &[u8] = b"-----BEGIN TEST PRIVATE KEY-----\nS3CR3T-MATERIAL-DO-NOT-PRINT\n";

/// A Debian-family guest with something for many operations.
pub fn debian_guest() -> Guest {
    let mut r = MemFs::new();
    r.file(
        "/etc/os-release",
        b"ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    r.file("/etc/fstab", b"LABEL=root / ext4 defaults 0 1\nLABEL=ESP /boot/efi vfat umask=0077 0 1\n/swapfile none swap sw 0 0\nLABEL=data /mnt/data ext4 defaults,comment=cloudconfig 0 2\n");
    r.file(
        "/etc/passwd",
        b"root:x:0:0::/root:/bin/bash\ndeploy:x:1000:1000::/srv/deploy:/bin/bash\nweird:x:1001:1001::/srv/[w]*:/bin/sh\n",
    );
    r.file("/etc/shadow", b"root:*:1::::::\ndeploy:$6$hash:1::::::\n");
    r.file("/etc/hosts", b"127.0.0.1 localhost\n127.0.1.1 golden\n");
    r.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
    r.file(
        "/var/lib/dbus/machine-id",
        b"0123456789abcdef0123456789abcdef\n",
    );
    r.file("/var/lib/dpkg/status", b"");
    r.file("/usr/bin/apt-get", b"");
    r.file("/usr/lib/systemd/systemd", b"");
    r.file("/etc/ssh/ssh_host_ed25519_key", SECRET);
    r.file("/etc/ssh/ssh_host_ed25519_key.pub", b"ssh-ed25519 AAAA");
    r.file("/etc/ssh/sshd_config", b"Port 22\n");
    let h = r.file("/root/.bash_history", b"ls\n");
    let m = r.meta_mut(h);
    (m.mode, m.uid, m.gid, m.mtime.sec) = (0o600, 0, 0, 1_700_000_000);
    r.file("/root/.ssh/authorized_keys", b"ssh-ed25519 AAAA");
    r.file("/srv/deploy/.bash_history", b"deploy\n");
    r.file("/srv/deploy/.python_history", b"1+1\n");
    r.file("/srv/deploy/.ssh/authorized_keys", b"ssh-ed25519 BBBB");
    r.file("/srv/deploy/.ssh/id_ed25519", b"not a recognizable key");
    r.file("/srv/deploy/.ssh/id_ed25519.pub", b"ssh-ed25519 CCCC");
    r.file("/srv/[w]*/.lesshst", b"x");
    r.file("/srv/wx/.lesshst", b"x");
    r.file("/srv/app/config.yml", b"token: tok_abcdefgh\n");
    r.file("/tmp/build/a.txt", b"12345");
    r.file("/tmp/build/sub/b.txt", b"123");
    r.file("/tmp/.X0-lock", b"1");
    r.file("/tmp/build/key.pem", SECRET);
    r.file("/var/log/syslog", b"log line\n");
    r.file("/var/log/journal/abc/system.journal", b"0123456789");
    r.file("/var/log/cloud-init.log", b"ci\n");
    r.file(
        "/var/lib/cloud/instances/i-1/user-data.txt",
        b"#cloud-config\n",
    );
    r.file("/var/lib/cloud/seed/nocloud/meta-data", b"instance-id: x\n");
    r.file("/var/lib/systemd/random-seed", &[7u8; 512]);
    r.file("/var/cache/apt/archives/x.deb", b"deb");
    r.file("/var/cache/debconf/config.dat", b"Name: x\n");
    r.file("/var/lib/apt/lists/deb.debian.org_dists", b"lists");
    r.file("/var/lib/dpkg/available", b"avail");
    r.file("/swapfile", &[0u8; 64]);
    r.file(
        "/etc/rsyslog.d/50-fwd.conf",
        b"# forward\n*.* @@loghost:514\n",
    );
    r.file(
        "/etc/rsyslog.conf",
        b"# no forwarding here\n*.* /var/log/syslog\n",
    );
    r.file("/usr/share/doc/x/ALIEN.txt", b"ALIEN");
    // A home directory's file hidden under the ESP mount point.
    r.file("/boot/efi/stale-copy.txt", b"tok_abcdefgh");
    let mut esp = MemFs::new();
    esp.file("/loader/random-seed", &[1u8; 32]);
    esp.file("/EFI/debian/grub.cfg", b"set root\n");
    let mut data = MemFs::new();
    data.file("/backup/id_rsa", SECRET);
    let id = |n: u32, l: &str| FsIdentity {
        partition: Some(n),
        fs_label: Some(l.into()),
        fs_type: Some(if l == "ESP" { "vfat" } else { "ext4" }.into()),
        ..Default::default()
    };
    Guest::new(
        vec![
            GuestFs {
                identity: id(1, "ESP"),
                fs: Arc::new(esp),
            },
            GuestFs {
                identity: id(2, "root"),
                fs: Arc::new(r),
            },
            GuestFs {
                identity: id(3, "data-other"),
                fs: Arc::new(data),
            },
        ],
        vec![crate::guest::Unreadable {
            identity: FsIdentity {
                partition: Some(4),
                fs_type: Some("xfs".into()),
                ..Default::default()
            },
            error: "xfs is not supported".into(),
        }],
    )
}

pub fn run(guest: &Guest, ops: &[&str], keep: &[&str], cat: &Catalogue) -> ScanResult {
    let ops: Vec<String> = ops.iter().map(|s| s.to_string()).collect();
    let sel = Selection::resolve(cat, &ops, &[]).unwrap();
    let progress = ScanProgress::default();
    let r = scan(
        guest,
        &ScanOptions {
            catalogue: cat,
            selection: &sel,
            keep: keep.iter().map(|s| s.to_string()).collect(),
            content: Some(&FakeDetector),
            threads: 3,
            progress: Some(&progress),
            package_trust: true,
        },
    )
    .unwrap();
    // The progress counters end where the stats do.
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(progress.entries.load(Relaxed), r.stats.entries_walked);
    assert_eq!(progress.files.load(Relaxed), r.stats.files_content_scanned);
    assert_eq!(progress.bytes.load(Relaxed), r.stats.bytes_content_scanned);
    r
}

fn summary(r: &ScanResult) -> Vec<String> {
    summary_root(r, 1)
}

fn summary_root(r: &ScanResult, root: usize) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| {
            let mut s = format!("{} {} {}", f.operation, f.action, display_path(&f.path));
            if f.filesystem != root {
                s.push_str(&format!(" [fs{}]", f.filesystem));
            }
            if let Some(t) = f.tree {
                s.push_str(&format!(" tree={}/{}/{}", t.files, t.dirs, t.bytes));
            }
            if f.shadowed {
                s.push_str(" shadowed");
            }
            if f.skipped {
                s.push_str(" skipped");
            }
            s
        })
        .collect()
}

#[test]
fn defaults_find_exactly_what_they_should() {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["defaults"], &[], &cat);
    let got = summary(&r);
    let expected = [
        "bash-history delete /root/.bash_history",
        "logfiles delete-tree /var/log/cloud-init.log",
        "logfiles delete-tree /var/log/journal/abc tree=1/1/10",
        "logfiles delete-tree /var/log/syslog",
        "machine-id rewrite /etc/machine-id",
        "machine-id delete /var/lib/dbus/machine-id",
        "package-manager-cache delete /var/cache/apt/archives/x.deb",
        "ssh-hostkeys delete /etc/ssh/ssh_host_ed25519_key",
        "ssh-hostkeys delete /etc/ssh/ssh_host_ed25519_key.pub",
        "ssh-userdir delete-tree /root/.ssh tree=1/1/16",
        "tmp-files delete-tree /tmp/.X0-lock",
        "tmp-files delete-tree /tmp/build tree=3/2/70",
        "private-keys delete /etc/ssh/ssh_host_ed25519_key",
        "private-keys delete /tmp/build/key.pem",
        "private-keys delete /backup/id_rsa [fs2]",
        "tokens delete /boot/efi/stale-copy.txt shadowed",
        "tokens redact /srv/app/config.yml",
        "user-histories delete /root/.bash_history",
        "user-histories delete /srv/[w]*/.lesshst",
        "user-histories delete /srv/deploy/.bash_history",
        "user-histories delete /srv/deploy/.python_history",
        "ssh-authorized-keys delete /root/.ssh/authorized_keys",
        "ssh-authorized-keys delete /srv/deploy/.ssh/authorized_keys",
        "ssh-user-keys delete /srv/deploy/.ssh/id_ed25519",
        "cloud-init-data delete-tree /var/lib/cloud/instances tree=1/2/14",
        "cloud-init-logs delete /var/log/cloud-init.log",
        "cloud-init-fstab rewrite /etc/fstab",
        "random-seed delete /boot/efi/loader/random-seed [fs0]",
        "random-seed delete /var/lib/systemd/random-seed",
        "hosts-127011 rewrite /etc/hosts",
        "apt-lists delete /var/lib/apt/lists/deb.debian.org_dists",
        "cache-files delete /var/cache/apt/archives/x.deb",
        "dpkg-available truncate /var/lib/dpkg/available",
        "swapfile rewrite /etc/fstab",
        "swapfile delete /swapfile",
        "rsyslog-forwarding report /etc/rsyslog.d/50-fwd.conf",
    ];
    assert_eq!(got, expected, "\n{}", got.join("\n"));
    // The "/srv/[w]*" home matched only itself, not /srv/wx.
    assert!(!got.iter().any(|s| s.contains("/srv/wx")));

    let mid = r
        .findings
        .iter()
        .find(|f| f.operation == "machine-id" && f.action == ActionKind::Rewrite)
        .unwrap();
    assert_eq!(mid.rewrite.as_ref().unwrap().new_size, 14);
    let hosts = r
        .findings
        .iter()
        .find(|f| f.operation == "hosts-127011")
        .unwrap();
    assert_eq!(hosts.rewrite.as_ref().unwrap().dropped_lines, [2]);
    assert_eq!(hosts.rewrite.as_ref().unwrap().new_size, 20);
    // A token in an app's YAML settings is overwritten in place ("token: REDACTED\n");
    // the same token alone in a text file (the ESP copy) deletes that file.
    let cfg = r
        .findings
        .iter()
        .find(|f| f.path == b"/srv/app/config.yml")
        .unwrap();
    let red = cfg.redact.as_ref().unwrap();
    assert_eq!(
        (red.lines.as_slice(), red.values, red.new_size),
        (&[1][..], 1, 16)
    );
    assert_eq!(cfg.bytes(), 4);
    let stale = r
        .findings
        .iter()
        .find(|f| f.path == b"/boot/efi/stale-copy.txt")
        .unwrap();
    assert!(stale.redact.is_none() && stale.note.as_deref().unwrap().contains("deleted whole"));
    let planned = r
        .plan()
        .into_iter()
        .find(|p| p.path == b"/srv/app/config.yml")
        .unwrap();
    assert_eq!(
        (planned.action, planned.redact),
        (ActionKind::Redact, vec![(7, 19)])
    );
    let pk = r
        .findings
        .iter()
        .find(|f| f.path == b"/tmp/build/key.pem")
        .unwrap();
    match &pk.why {
        Why::Content { hits, total_hits } => {
            assert_eq!(*total_hits, 1);
            assert_eq!((hits[0].offset, hits[0].length), (0, 60));
            assert_eq!(hits[0].detector, "test-key");
        }
        w => panic!("{w:?}"),
    }
    let kinds: Vec<WarningKind> = r.warnings.iter().map(|w| w.kind).collect();
    assert!(
        kinds.contains(&WarningKind::SshHostKeys),
        "{:#?}",
        r.warnings
    );
    assert!(kinds.contains(&WarningKind::UnreadableFilesystem));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("xfs is not supported"))
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("partition 3") && w.message.contains("not mounted"))
    );
    // Operations that can do nothing offline are not defaults: no noise about them.
    assert!(
        !r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::NotPerformedOffline),
        "{:#?}",
        r.warnings
    );
    assert!(r.warnings.iter().any(|w| w.message.contains("no-such-op")));
    // Selected explicitly, each says once why it does nothing; lvm-uuids' guard
    // does not hold (no /etc/lvm), so no warning for it.
    let asked = run(
        &g,
        &["defaults", "+customize", "+script", "+lvm-uuids"],
        &[],
        &cat,
    );
    let offline: Vec<&str> = asked
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::NotPerformedOffline)
        .filter_map(|w| w.operation.as_deref())
        .collect();
    assert_eq!(offline, ["customize", "script"]);
    let st = r.operations.iter().find(|o| o.name == "tmp-files").unwrap();
    assert_eq!((st.findings, st.bytes), (2, 71));
    assert!(
        !r.operations
            .iter()
            .find(|o| o.name == "net-hwaddr")
            .unwrap()
            .applies
    );
}

#[test]
fn plan_dedups_by_path() {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["defaults"], &[], &cat);
    let plan = r.plan();
    let get = |p: &str| plan.iter().find(|a| a.path == p.as_bytes());
    // Two operations, one delete.
    let hk = get("/etc/ssh/ssh_host_ed25519_key").unwrap();
    assert_eq!(hk.operations, ["ssh-hostkeys", "private-keys"]);
    assert_eq!(hk.action, ActionKind::Delete);
    // Covered by the /tmp/build tree.
    assert!(get("/tmp/build/key.pem").is_none());
    // Two rewrites of fstab merge.
    let fstab = get("/etc/fstab").unwrap();
    assert_eq!(fstab.action, ActionKind::Rewrite);
    assert_eq!(fstab.drop_lines.len(), 2);
    // Inside /root/.ssh (ssh-userdir tree): authorized_keys is covered.
    assert!(get("/root/.ssh/authorized_keys").is_none());
    // Report-only findings plan nothing.
    assert!(get("/etc/rsyslog.d/50-fwd.conf").is_none());
    let paths: HashSet<_> = plan
        .iter()
        .map(|a| (a.filesystem, a.path.clone()))
        .collect();
    assert_eq!(paths.len(), plan.len());
}

#[test]
fn keep_exempts_and_splits_trees() {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(
        &g,
        &["tmp-files,ssh-hostkeys,private-keys"],
        &["/tmp/build/sub/b.txt", "/etc/ssh/ssh_host_ed25519_key*"],
        &cat,
    );
    let got = summary(&r);
    assert_eq!(
        got,
        [
            "tmp-files delete-tree /tmp/.X0-lock",
            "tmp-files delete-tree /tmp/build/a.txt",
            "tmp-files delete-tree /tmp/build/key.pem",
            "private-keys delete /tmp/build/key.pem",
            "private-keys delete /backup/id_rsa [fs2]",
        ],
        "\n{}",
        got.join("\n")
    );
    // A kept directory keeps everything below it, content hits included.
    let r = run(&g, &["tmp-files,private-keys"], &["/tmp/build"], &cat);
    assert_eq!(
        summary(&r),
        [
            "tmp-files delete-tree /tmp/.X0-lock",
            "private-keys delete /etc/ssh/ssh_host_ed25519_key",
            "private-keys delete /backup/id_rsa [fs2]"
        ]
    );
}

#[test]
fn home_expansion_reaches_passwd_homes() {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["ssh-authorized-keys"], &[], &cat);
    assert_eq!(
        summary(&r),
        [
            "ssh-authorized-keys delete /root/.ssh/authorized_keys",
            "ssh-authorized-keys delete /srv/deploy/.ssh/authorized_keys",
        ]
    );
}

#[test]
fn user_account_drops_lines_and_homes() {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["user-account"], &[], &cat);
    assert_eq!(
        summary(&r),
        [
            "user-account rewrite /etc/passwd",
            "user-account rewrite /etc/shadow",
            "user-account delete-tree /srv/[w]* tree=1/1/1",
            "user-account delete-tree /srv/deploy tree=5/2/65",
        ]
    );
    let pw = &r.findings[0];
    assert_eq!(pw.rewrite.as_ref().unwrap().dropped_lines, [2, 3]);
}

#[test]
fn rewrite_that_would_grow_is_skipped_with_a_note() {
    let cat = Catalogue::builtin().unwrap();
    let mut r = MemFs::new();
    r.file("/etc/os-release", b"ID=fedora\n");
    r.file("/usr/lib/systemd/systemd", b"");
    r.file("/etc/machine-id", b"");
    r.file(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        b"DEVICE=eth0\nHWADDR=52:54:00:00:00:01\nHOSTNAME=build\n",
    );
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity::default(),
            fs: Arc::new(r),
        }],
        vec![],
    );
    let res = run(&g, &["machine-id,net-hwaddr,net-hostname"], &[], &cat);
    let got = summary_root(&res, 0);
    assert_eq!(
        got,
        [
            "machine-id rewrite /etc/machine-id skipped",
            "net-hostname rewrite /etc/sysconfig/network-scripts/ifcfg-eth0",
            "net-hwaddr rewrite /etc/sysconfig/network-scripts/ifcfg-eth0",
        ]
    );
    assert!(
        res.findings[0]
            .note
            .as_ref()
            .unwrap()
            .contains("longer than the file")
    );
    let plan = res.plan();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].drop_lines.len(), 2);
    // Already `uninitialized`: nothing to do.
    let mut r = MemFs::new();
    r.file("/etc/os-release", b"ID=fedora\n");
    r.file("/usr/lib/systemd/systemd", b"");
    r.file("/etc/machine-id", b"uninitialized\n");
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity::default(),
            fs: Arc::new(r),
        }],
        vec![],
    );
    assert!(run(&g, &["machine-id"], &[], &cat).findings.is_empty());
}

#[test]
fn no_os_root_runs_content_only() {
    let cat = Catalogue::builtin().unwrap();
    let mut d = MemFs::new();
    d.file("/tmp/x", b"1");
    d.file("/keys/k", SECRET);
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity {
                partition: Some(1),
                ..Default::default()
            },
            fs: Arc::new(d),
        }],
        vec![],
    );
    let r = run(&g, &["defaults"], &[], &cat);
    assert_eq!(summary(&r), ["private-keys delete /keys/k [fs0]"]);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("no operating system found"))
    );
    // Without detectors, the report says so.
    let sel = Selection::defaults(&cat);
    let r = scan(
        &g,
        &ScanOptions {
            catalogue: &cat,
            selection: &sel,
            keep: vec![],
            content: None,
            threads: 1,
            progress: None,
            package_trust: true,
        },
    )
    .unwrap();
    assert!(r.findings.is_empty());
    assert!(
        r.warnings.iter().any(
            |w| w.kind == WarningKind::NoContentDetection && w.message.contains("private-keys")
        )
    );
}

#[test]
fn ssh_warning_not_given_when_something_regenerates() {
    let cat = Catalogue::builtin().unwrap();
    let mut r = MemFs::new();
    r.file("/etc/os-release", b"ID=rhel\nID_LIKE=fedora\n");
    r.file("/etc/ssh/ssh_host_rsa_key", b"k");
    r.file("/usr/lib/systemd/system/sshd-keygen@.service", b"");
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity::default(),
            fs: Arc::new(r),
        }],
        vec![],
    );
    let res = run(&g, &["ssh-hostkeys"], &[], &cat);
    assert_eq!(res.findings.len(), 1);
    assert!(
        !res.warnings
            .iter()
            .any(|w| w.kind == WarningKind::SshHostKeys)
    );
}

#[test]
fn user_rules_and_allow_list() {
    let mut cat = Catalogue::builtin().unwrap();
    cat.add_toml(
        r#"
keep = ["/srv/app/config.yml"]
[[allow]]
path = "/tmp/build/*.pem"
detector = "test-key"
[[operation]]
name = "app-state"
heading = "Remove the app's state"
default = true
os = ["debian-family"]
  [[operation.rule]]
  action = "delete-tree"
  paths = ["{home}/.python_history", "/srv/app"]
"#,
        "extra.toml",
        false,
    )
    .unwrap();
    let g = debian_guest();
    let r = run(&g, &["app-state,private-keys,tokens"], &[], &cat);
    assert_eq!(
        summary(&r),
        [
            "private-keys delete /etc/ssh/ssh_host_ed25519_key",
            "private-keys delete /backup/id_rsa [fs2]",
            "tokens delete /boot/efi/stale-copy.txt shadowed",
            "app-state delete-tree /srv/deploy/.python_history",
        ],
        "{:#?}",
        summary(&r)
    );
}

#[test]
fn walk_error_is_a_warning_and_other_filesystems_continue() {
    struct Broken;
    impl Filesystem for Broken {
        fn fs_type(&self) -> crate::fs::FsType {
            crate::fs::FsType::Ext4
        }
        fn root(&self) -> NodeId {
            1
        }
        fn metadata(&self, _: NodeId) -> FsResult<Metadata> {
            Err(crate::fs::FsError::Corrupt("bad inode".into()))
        }
        fn read_dir(&self, _: NodeId) -> FsResult<Vec<crate::fs::DirEntry>> {
            Err(crate::fs::FsError::Corrupt(
                "directory block 7: bad checksum".into(),
            ))
        }
        fn open(&self, _: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
            Err(crate::fs::FsError::Corrupt("x".into()))
        }
        fn read_link(&self, _: NodeId) -> FsResult<Vec<u8>> {
            Err(crate::fs::FsError::Corrupt("x".into()))
        }
        fn xattrs(&self, _: NodeId) -> FsResult<Vec<crate::fs::Xattr>> {
            Ok(vec![])
        }
    }
    let cat = Catalogue::builtin().unwrap();
    let mut d = MemFs::new();
    d.file("/k", SECRET);
    let g = Guest::new(
        vec![
            GuestFs {
                identity: FsIdentity {
                    partition: Some(1),
                    ..Default::default()
                },
                fs: Arc::new(Broken),
            },
            GuestFs {
                identity: FsIdentity {
                    partition: Some(2),
                    ..Default::default()
                },
                fs: Arc::new(d),
            },
        ],
        vec![],
    );
    let r = run(&g, &["defaults"], &[], &cat);
    assert_eq!(summary_root(&r, 9), ["private-keys delete /k [fs1]"]);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::UnreadableFilesystem
                && w.message.contains("bad checksum"))
    );
}

#[test]
fn an_unreadable_directory_is_a_warning_and_the_rest_is_scanned() {
    let cat = Catalogue::builtin().unwrap();
    let mut d = MemFs::new();
    d.file("/a/k", SECRET);
    // Listed as a directory, but its node is a file: listing it fails.
    d.file("/broken", b"");
    d.nodes.get_mut(&1).unwrap().2.last_mut().unwrap().kind = FileKind::Directory;
    d.file("/z/k", SECRET);
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity {
                partition: Some(1),
                ..Default::default()
            },
            fs: Arc::new(d),
        }],
        vec![],
    );
    let r = run(&g, &["defaults"], &[], &cat);
    assert_eq!(
        summary_root(&r, 9),
        [
            "private-keys delete /a/k [fs0]",
            "private-keys delete /z/k [fs0]"
        ]
    );
    let w: Vec<&Warning> = r
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::UnreadableFilesystem)
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.starts_with(
            "partition 1: directory /broken could not be read; nothing below it was scanned"
        ),
        "{}",
        w[0].message
    );
}

/// A MemFs whose files carry extended attributes.
struct WithXattrs(MemFs, Vec<crate::fs::Xattr>);

impl Filesystem for WithXattrs {
    fn fs_type(&self) -> crate::fs::FsType {
        crate::fs::FsType::Ext4
    }
    fn root(&self) -> NodeId {
        self.0.root()
    }
    fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
        self.0.metadata(id)
    }
    fn read_dir(&self, id: NodeId) -> FsResult<Vec<crate::fs::DirEntry>> {
        self.0.read_dir(id)
    }
    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
        self.0.open(id)
    }
    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
        self.0.read_link(id)
    }
    fn xattrs(&self, _: NodeId) -> FsResult<Vec<crate::fs::Xattr>> {
        Ok(self.1.clone())
    }
}

#[test]
fn user_xattr_values_are_scanned_and_named_never_shown() {
    let cat = Catalogue::builtin().unwrap();
    let mut d = MemFs::new();
    d.file("/srv/data.bin", b"nothing in the bytes\n");
    let xattrs = vec![
        crate::fs::Xattr {
            name: b"user.api".to_vec(),
            value: b"key=tok_abcdefgh".to_vec(),
        },
        // The kernel's and LSMs' attributes are not scanned.
        crate::fs::Xattr {
            name: b"security.selinux".to_vec(),
            value: b"tok_zzzzzzzz".to_vec(),
        },
    ];
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity {
                partition: Some(1),
                ..Default::default()
            },
            fs: Arc::new(WithXattrs(d, xattrs)),
        }],
        vec![],
    );
    let r = run(&g, &["defaults"], &[], &cat);
    let f: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.operation == "tokens")
        .collect();
    assert_eq!(f.len(), 1, "{:?}", summary_root(&r, 9));
    let Why::Content { hits, .. } = &f[0].why else {
        panic!("a content finding")
    };
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].member.as_deref(), Some("xattr user.api"));
    assert!(
        hits[0].why.starts_with("in xattr user.api: "),
        "{}",
        hits[0].why
    );
    assert!(!format!("{hits:?}").contains("tok_abcdefgh"));
}

#[test]
fn the_esp_is_scanned_by_content() {
    // A filesystem with no place in the guest's tree (an ESP without an OS root
    // beside it) still gets content detection on every file.
    let cat = Catalogue::builtin().unwrap();
    let mut esp = MemFs::new();
    esp.file("/EFI/recovery/key.txt", b"tok_recovery\n");
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity {
                partition: Some(1),
                fs_label: Some("ESP".into()),
                fs_type: Some("vfat".into()),
                ..Default::default()
            },
            fs: Arc::new(esp),
        }],
        vec![],
    );
    let r = run(&g, &["defaults"], &[], &cat);
    assert_eq!(
        summary_root(&r, 9),
        ["tokens delete /EFI/recovery/key.txt [fs0]"]
    );
}
