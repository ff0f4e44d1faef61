use super::*;
use crate::fs::walk::memfs::MemFs;

fn gfs(fs: MemFs, id: FsIdentity) -> GuestFs {
    GuestFs {
        identity: id,
        fs: Arc::new(fs),
    }
}

fn part(n: u32, label: &str, uuid: &str) -> FsIdentity {
    FsIdentity {
        partition: Some(n),
        fs_label: Some(label.into()),
        fs_uuid: Some(uuid.into()),
        part_uuid: Some(format!("pu-{n}")),
        part_name: Some(format!("pn-{n}")),
        ..Default::default()
    }
}

fn root_fs(fstab: &str) -> MemFs {
    let mut r = MemFs::new();
    r.file(
        "/etc/os-release",
        b"ID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 24.04\"\n",
    );
    r.file("/etc/fstab", fstab.as_bytes());
    r.file(
        "/etc/passwd",
        b"root:x:0:0::/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\ndeploy:x:1000:1000::/srv/deploy:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n",
    );
    r.file("/var/lib/dpkg/status", b"");
    r.file("/usr/bin/apt-get", b"");
    r.file("/usr/lib/systemd/systemd", b"");
    r.put(b"/boot/efi", FileKind::Directory, b"");
    r
}

#[test]
fn mounts_from_fstab_and_resolves_longest_prefix() {
    let root = root_fs(
        "LABEL=root / ext4 defaults 0 1\nUUID=AAAA-BBBB /boot/efi vfat umask=0077 0 1\nPARTUUID=pu-3 /home ext4 defaults\n/dev/vda4 /var/log ext4 defaults\nLABEL=missing /srv ext4 defaults\n",
    );
    let mut esp = MemFs::new();
    esp.file("/loader/random-seed", b"0123");
    let mut home = MemFs::new();
    home.file("/alice/.bash_history", b"ls");
    let mut log = MemFs::new();
    log.file("/syslog", b"x");
    let g = Guest::new(
        vec![
            gfs(esp, part(1, "ESP", "aaaa-bbbb")),
            gfs(root, part(2, "root", "r")),
            gfs(home, part(3, "home", "h")),
            gfs(log, part(4, "log", "l")),
        ],
        vec![],
    );
    assert_eq!(g.root, Some(1));
    assert_eq!(
        g.resolve(b"/etc/passwd"),
        Some((1, b"/etc/passwd".to_vec()))
    );
    assert_eq!(
        g.resolve(b"/boot/efi/loader/random-seed"),
        Some((0, b"/loader/random-seed".to_vec()))
    );
    assert_eq!(g.resolve(b"/boot/efi"), Some((0, b"/".to_vec())));
    assert_eq!(g.resolve(b"/boot/efix"), Some((1, b"/boot/efix".to_vec())));
    assert_eq!(g.resolve(b"/home/alice"), Some((2, b"/alice".to_vec())));
    assert_eq!(
        g.resolve(b"/var/log/syslog"),
        Some((3, b"/syslog".to_vec()))
    );
    assert_eq!(g.resolve(b"/var/lib"), Some((1, b"/var/lib".to_vec())));
    assert!(g.exists(b"/home/alice/.bash_history"));
    assert!(g.unmounted().is_empty());
    assert!(
        g.notes
            .iter()
            .any(|n| n.contains("line 5") && n.contains("/srv")),
        "{:?}",
        g.notes
    );
    let os = g.os.as_ref().unwrap();
    assert_eq!(os.describe(), "Ubuntu 24.04");
    assert!(g.facts.debian_family && g.facts.linux && g.facts.systemd);
    assert_eq!(g.facts.package_formats, ["dpkg"]);
    assert_eq!(g.facts.package_managers, ["apt"]);
    let (homes, _) = g.homes();
    assert_eq!(
        homes,
        ["/", "/usr/sbin", "/srv/deploy", "/home/alice"].map(String::from)[1..]
    );
    let users: Vec<_> = g.removable_users().into_iter().map(|(u, _)| u).collect();
    assert_eq!(users, ["deploy", "alice"]);
}

#[test]
fn unmentioned_esp_is_placed_like_systemd_would() {
    let root = root_fs("LABEL=root / ext4 defaults\n");
    let mut esp = MemFs::new();
    esp.file("/loader/random-seed", b"0123");
    let mut id = part(1, "ESP", "e");
    id.part_type = Some("C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into());
    let g = Guest::new(vec![gfs(esp, id), gfs(root, part(2, "root", "r"))], vec![]);
    assert_eq!(g.mount_point(0), Some(&b"/boot/efi"[..]));
    assert_eq!(
        g.mounts.iter().find(|m| m.fs == 0).unwrap().source,
        MountSource::EspAuto
    );
}

#[test]
fn several_roots_pick_the_one_its_fstab_names() {
    let old = root_fs("LABEL=other / ext4 defaults\n");
    let new = root_fs("UUID=R2 / ext4 defaults\n");
    let g = Guest::new(
        vec![
            gfs(old, part(1, "old", "r1")),
            gfs(new, part(2, "new", "r2")),
        ],
        vec![],
    );
    assert_eq!(g.root, Some(1));
    assert!(
        g.notes[0].contains("several filesystems hold an OS"),
        "{:?}",
        g.notes
    );
    assert_eq!(g.unmounted(), [0]);
    // Neither names itself: the first in partition order wins.
    let a = root_fs("LABEL=zz / ext4 defaults\n");
    let b = root_fs("LABEL=zz / ext4 defaults\n");
    let g = Guest::new(
        vec![gfs(a, part(1, "a", "1")), gfs(b, part(2, "b", "2"))],
        vec![],
    );
    assert_eq!(g.root, Some(0));
}

#[test]
fn no_os_root_means_everything_unmounted() {
    let mut data = MemFs::new();
    data.file("/id_rsa", b"x");
    let g = Guest::new(vec![gfs(data, part(1, "data", "d"))], vec![]);
    assert_eq!(g.root, None);
    assert!(!g.facts.has_os);
    assert_eq!(g.unmounted(), [0]);
    assert_eq!(g.resolve(b"/id_rsa"), None);
}

#[test]
fn symlinked_os_release_and_lookup_bounds() {
    let mut r = MemFs::new();
    r.file("/usr/lib/os-release", b"ID=fedora\n");
    r.put(
        b"/etc/os-release",
        FileKind::Symlink,
        b"../usr/lib/os-release",
    );
    r.put(b"/a", FileKind::Symlink, b"/b");
    r.put(b"/b", FileKind::Symlink, b"/a");
    let g = Guest::new(vec![gfs(r, part(1, "r", "r"))], vec![]);
    assert_eq!(g.facts.id.as_deref(), Some("fedora"));
    assert!(g.facts.rhel_family);
    assert!(g.read(b"/a", 10).is_none());
    assert!(g.exists(b"/a"));
}

#[test]
fn ssh_regeneration_evidence() {
    let g = Guest::new(vec![gfs(root_fs(""), part(1, "r", "r"))], vec![]);
    assert!(g.ssh_hostkey_regeneration().is_empty());
    let mut r = root_fs("");
    r.file(
        "/etc/systemd/system/my-ssh-regen.service",
        b"[Service]\nExecStart=/usr/bin/ssh-keygen -A\n",
    );
    let g = Guest::new(vec![gfs(r, part(1, "r", "r"))], vec![]);
    assert_eq!(g.ssh_hostkey_regeneration().len(), 1);
    let mut r = root_fs("");
    r.file("/usr/lib/systemd/system/sshd-keygen@.service", b"");
    let g = Guest::new(vec![gfs(r, part(1, "r", "r"))], vec![]);
    assert!(g.ssh_hostkey_regeneration()[0].contains("sshd-keygen@"));
    let mut r = root_fs("");
    r.file("/etc/cloud/cloud.cfg", b"");
    let g = Guest::new(vec![gfs(r, part(1, "r", "r"))], vec![]);
    assert!(g.ssh_hostkey_regeneration()[0].contains("cloud-init"));
}

#[test]
fn hostdir_reads_a_tree() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    std::fs::write(t.path().join("etc/os-release"), "ID=debian\n").unwrap();
    std::os::unix::fs::symlink("/nowhere", t.path().join("etc/link")).unwrap();
    let h = hostdir::HostDir::open(t.path()).unwrap();
    let g = Guest::new(
        vec![GuestFs {
            identity: FsIdentity::default(),
            fs: Arc::new(h),
        }],
        vec![],
    );
    assert!(g.facts.debian_family);
    let (i, id) = g.lookup(b"/etc/link", false).unwrap();
    assert_eq!(
        g.filesystems[i].fs.metadata(id).unwrap().kind,
        FileKind::Symlink
    );
    assert!(g.filesystems[i].fs.open(id).is_err());
}
