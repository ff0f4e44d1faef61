//! LVM2 end to end, judged by lvm2 itself. Fixtures (fixtures/lvm.toml) are made
//! by the real lvm2 tools on loop devices; `scripts/lvm_fixture.py report` asks
//! lvm2 (`pvs`, `vgs`, `lvs --segments`, `pvck --dump metadata`, only ever on the
//! image's own loop devices, detached on every exit) what an image holds and
//! where each LV's bytes are. vmscrub's model must agree with that; its LV
//! devices must read what lies at lvm2's offsets; a scrubbed output must keep the
//! LVM metadata byte-identical (lvm2 reads the same VG back), every LV's ext4
//! must pass `e2fsck -fn` after extraction at lvm2's offsets, and no removed
//! secret or old extent content may be left in the raw bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use vmscrub::image::{self, OpenOptions};
use vmscrub_blockdev::ReadAt;
use vmscrub_fixtures::{fixture, repo_root, run};

/// The binary under test; `VMSCRUB_BIN` overrides it (a target directory shared
/// between worktrees has one `target/debug/vmscrub`, whoever built last).
fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let bin =
        std::env::var_os("VMSCRUB_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_vmscrub").into());
    Command::new(bin)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What lvm2 says about `img`.
fn lvm2(img: &Path) -> Value {
    let script = repo_root().join("scripts/lvm_fixture.py");
    let out = run("python3", &[&script, &"report", &img]);
    serde_json::from_slice(&out).unwrap()
}

fn inspect(img: &Path) -> Value {
    serde_json::from_str(&ok(&vmscrub(&[&"inspect", &"--format", &"json", &img]))).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// An LV's bytes, read at the image offsets lvm2's report gives.
fn lv_bytes_by_lvm2(img: &Path, report: &Value, lv: &str) -> Vec<u8> {
    let data = std::fs::read(img).unwrap();
    let mut runs: Vec<(u64, u64, u64)> = report["lv_map"][lv]
        .as_array()
        .unwrap_or_else(|| panic!("lvm2 has no map for {lv}"))
        .iter()
        .map(|r| (num(&r[0]), num(&r[1]), num(&r[2])))
        .collect();
    runs.sort();
    let mut out = vec![];
    for (lv_off, img_off, len) in runs {
        assert_eq!(
            lv_off,
            out.len() as u64,
            "lvm2's runs of {lv} are contiguous"
        );
        out.extend_from_slice(&data[img_off as usize..(img_off + len) as usize]);
    }
    out
}

/// An LV's bytes as vmscrub's own LV device reads them.
fn lv_bytes_by_vmscrub(img: &Path, lv: &str) -> Vec<u8> {
    let opened = image::open(img, &OpenOptions::default()).unwrap();
    let disk: Arc<dyn ReadAt> = opened.disk;
    let layout = image::discover(disk).unwrap();
    let v = layout
        .volumes
        .iter()
        .find(|v| v.lv.as_ref().is_some_and(|l| l.path() == lv))
        .unwrap_or_else(|| panic!("vmscrub has no volume {lv}"));
    let mut buf = vec![0u8; v.device.size() as usize];
    v.device.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// `e2fsck -fn` on an LV extracted at lvm2's offsets.
fn fsck_lv(img: &Path, report: &Value, lv: &str, dir: &Path) {
    let f = dir.join(lv.replace('/', "-"));
    std::fs::write(&f, lv_bytes_by_lvm2(img, report, lv)).unwrap();
    let o = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "e2fsck -fn {lv} of {}: {}{}",
        img.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// vmscrub's VG/PV/LV/segment model equals lvm2's report.
fn model_matches(img: &Path) -> (Value, Value) {
    let l = lvm2(img);
    let j = inspect(img);
    let vgs = j["volume_groups"].as_array().unwrap();
    assert_eq!(vgs.len(), l["vgs"].as_array().unwrap().len());
    for lvg in l["vgs"].as_array().unwrap() {
        let name = lvg["vg_name"].as_str().unwrap();
        let g = vgs.iter().find(|g| g["name"] == name).unwrap();
        assert_eq!(g["uuid"], lvg["vg_uuid"]);
        assert_eq!(g["seqno"].as_u64().unwrap(), num(&lvg["vg_seqno"]));
        assert_eq!(
            g["extent_size"].as_u64().unwrap(),
            num(&lvg["vg_extent_size"])
        );
    }
    for lp in l["pvs"].as_array().unwrap() {
        let g = vgs.iter().find(|g| g["name"] == lp["vg_name"]).unwrap();
        let p = g["physical_volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["uuid"] == lp["pv_uuid"])
            .unwrap_or_else(|| panic!("PV {} missing", lp["pv_uuid"]));
        assert_eq!(p["partition"], lp["partition"]);
        assert_eq!(num(&p["pe_start"]), num(&lp["pe_start"]));
        assert_eq!(num(&p["pe_count"]), num(&lp["pv_pe_count"]));
        assert_eq!(num(&p["pe_used"]), num(&lp["pv_pe_alloc_count"]));
    }
    // Segments: lvm2 prints one row per segment, PE ranges as pN:a-b per stripe.
    let mut theirs: BTreeMap<String, Vec<(u64, u64, String, String)>> = BTreeMap::new();
    for s in l["lvs"].as_array().unwrap() {
        let key = format!(
            "{}/{}",
            s["vg_name"].as_str().unwrap(),
            s["lv_name"].as_str().unwrap()
        );
        let kind = match s["segtype"].as_str().unwrap() {
            "linear" => "striped",
            k => k,
        };
        theirs.entry(key).or_default().push((
            num(&s["seg_start_pe"]),
            num(&s["seg_size_pe"]),
            kind.to_string(),
            s["seg_pe_ranges"].as_str().unwrap().to_string(),
        ));
    }
    let mut ours: BTreeMap<String, Vec<(u64, u64, String, String)>> = BTreeMap::new();
    for g in vgs {
        let part_of = |pv: &str| {
            g["physical_volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == pv)
                .map(|p| p["partition"].as_u64().unwrap_or(0)) // p0: the whole disk
                .unwrap()
        };
        for lv in g["logical_volumes"].as_array().unwrap() {
            let key = format!(
                "{}/{}",
                g["name"].as_str().unwrap(),
                lv["name"].as_str().unwrap()
            );
            let mut total = 0;
            for s in lv["segments"].as_array().unwrap() {
                let stripes = s["stripes"].as_array().unwrap();
                let count = s["extent_count"].as_u64().unwrap();
                total += count;
                let per = count / (stripes.len().max(1) as u64);
                let ranges: Vec<String> = stripes
                    .iter()
                    .map(|st| {
                        let a = st["start_extent"].as_u64().unwrap();
                        format!(
                            "p{}:{a}-{}",
                            part_of(st["pv"].as_str().unwrap()),
                            a + per - 1
                        )
                    })
                    .collect();
                ours.entry(key.clone()).or_default().push((
                    s["start_extent"].as_u64().unwrap(),
                    count,
                    s["type"].as_str().unwrap().to_string(),
                    ranges.join(" "),
                ));
            }
            let lsize = l["lvs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| {
                    format!(
                        "{}/{}",
                        x["vg_name"].as_str().unwrap(),
                        x["lv_name"].as_str().unwrap()
                    ) == key
                })
                .map(|x| num(&x["lv_size"]))
                .unwrap();
            assert_eq!(lv["size"].as_u64().unwrap(), lsize, "{key}");
            assert_eq!(total * g["extent_size"].as_u64().unwrap(), lsize, "{key}");
        }
    }
    for v in ours.values_mut().chain(theirs.values_mut()) {
        v.sort();
    }
    assert_eq!(ours, theirs);
    (l, j)
}

fn lv_names(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = report["lv_map"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    v.sort();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn rhel_layout_agrees_with_lvm2_and_reads_through_fstab() {
    let img = fixture("lvm-rhel");
    let (l, j) = model_matches(&img);
    let lvs = lv_names(&l);
    assert_eq!(lvs, ["rhel/home", "rhel/root", "rhel/swap", "rhel/var-log"]);
    for lv in &lvs {
        assert!(
            lv_bytes_by_lvm2(&img, &l, lv) == lv_bytes_by_vmscrub(&img, lv),
            "{lv}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    for lv in ["rhel/root", "rhel/home", "rhel/var-log"] {
        fsck_lv(&img, &l, lv, tmp.path());
    }
    // The ring buffer's older copies, as `pvck --dump metadata_all` lists them.
    let seqnos = l["metadata_copies"]["2"].as_array().unwrap();
    let g = &j["volume_groups"][0];
    assert!(seqnos.len() > 1, "{seqnos:?}");
    assert_eq!(
        g["old_metadata_copies"].as_u64().unwrap(),
        seqnos.len() as u64 - 1
    );
    let host = l["pvck"]["2"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|x| x.strip_prefix("creation_host = "))
        .unwrap();
    assert!(
        g["metadata_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| format!("\"{}\"", h.as_str().unwrap()) == host),
        "{host}"
    );
    // The `lvm-metadata` operation (off by default) reports them in a scan, with
    // the host lvm2's own dump names and the number of copies it lists.
    let scan = |ops: &str| -> Value {
        serde_json::from_str(&ok(&vmscrub(&[
            &"scan",
            &"--format",
            &"json",
            &"--operations",
            &ops,
            &img,
        ])))
        .unwrap()
    };
    let said: Vec<Value> = scan("defaults,+lvm-metadata")["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["operation"] == "lvm-metadata")
        .cloned()
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    let msg = said[0]["message"].as_str().unwrap();
    assert_eq!(said[0]["kind"], "lvm-metadata");
    assert!(msg.starts_with("volume group rhel:"), "{msg}");
    assert!(
        msg.contains(&format!("keep {} copies", seqnos.len())),
        "{msg}"
    );
    assert!(msg.contains(host.trim_matches('"')), "{msg}");
    assert!(
        !scan("defaults")["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["operation"] == "lvm-metadata"),
        "lvm-metadata is off by default"
    );
    // home's segments are out of PV order (lvm2 says so too).
    let home: Vec<&Value> = l["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["lv_name"] == "home")
        .collect();
    assert_eq!(home.len(), 2);
    // The mount view: fstab names root by /dev/mapper, home by /dev/VG/LV, /var/log by UUID.
    let os = &j["os"];
    assert_eq!(os["root_lv"], "rhel/root");
    let mounts: Vec<(String, Value, Value)> = os["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_string(),
                m["lv"].clone(),
                m["partition"].clone(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/".into(), "rhel/root".into(), Value::Null),
            ("/boot".into(), Value::Null, 1.into()),
            ("/home".into(), "rhel/home".into(), Value::Null),
            ("/var/log".into(), "rhel/var-log".into(), Value::Null),
        ]
    );
    let i = img.to_str().unwrap();
    assert_eq!(
        ok(&vmscrub(&[&"cat", &i, &"/root/.bash_history"])),
        "LVMSECRET-ROOT-HISTORY mysql -psecret\n"
    );
    assert_eq!(
        ok(&vmscrub(&[&"cat", &i, &"/var/log/messages"])),
        "LVMKEEP-VARLOG boot ok\n"
    );
    assert!(ok(&vmscrub(&[&"ls", &i, &"/home/user/.ssh"])).contains("id_rsa"));
    assert_eq!(
        ok(&vmscrub(&[&"cat", &i, &"/boot/grub2/grub.cfg"])),
        "set default=0\n"
    );
    assert_eq!(
        ok(&vmscrub(&[
            &"cat",
            &"--fs",
            &"rhel/home",
            &i,
            &"/user/notes.txt"
        ])),
        "LVMKEEP-HOME notes\n"
    );
    // Every filesystem on every LV is scanned; swap is named, not skipped.
    let scan = vmscrub(&[&"scan", &i, &"--format", &"json"]);
    let v: Value = serde_json::from_slice(&scan.stdout).unwrap();
    let text = v.to_string();
    for p in [
        "/root/.bash_history",
        "/home/user/.ssh/id_rsa",
        "/home/user/.bash_history",
        "/var/log/messages",
    ] {
        assert!(text.contains(p), "{p} not in the scan");
    }
    let unreadable = v["guest"]["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(unreadable[0]["identity"]["lv"], "rhel/swap");
    // The qcow2 of the same disk reads the same.
    let q = fixture("lvm-rhel-qcow2");
    assert_eq!(
        ok(&vmscrub(&[&"cat", &q, &"/var/log/messages"])),
        "LVMKEEP-VARLOG boot ok\n"
    );
}

#[test]
fn scrub_through_lvs_keeps_lvm_metadata_and_zeroes_free_extents() {
    let img = fixture("lvm-rhel");
    let before = lvm2(&img);
    let raw_in = std::fs::read(&img).unwrap();
    assert!(
        contains(&raw_in, b"LVMREMOVED-OLD-EXTENT-"),
        "the removed LV's marker is planted"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.img");
    assert!(
        contains(&raw_in, b"LVMSWAP-PAGED-OUT-"),
        "the swap LV's marker is planted"
    );
    let o = vmscrub(&[&"scrub", &img, &"-o", &out]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("LVM2 volume group rhel:"), "{err}");
    let after = lvm2(&out);
    for k in ["pvs", "vgs", "lvs", "pvck", "lv_map"] {
        assert_eq!(
            before[k], after[k],
            "lvm2 reads {k} differently after the scrub"
        );
    }
    // The label and metadata area bytes are unchanged: everything before the
    // first extent of the PV (partition 2).
    let pv = &before["pvs"][0];
    let disk: Arc<dyn ReadAt> = Arc::new(vmscrub_blockdev::FileDisk::open(&img).unwrap());
    let start = image::discover(disk).unwrap().volumes[1].offset as usize;
    let pe_start = num(&pv["pe_start"]) as usize;
    let raw_out = std::fs::read(&out).unwrap();
    assert!(
        raw_in[start..start + 2048] == raw_out[start..start + 2048],
        "label sectors changed"
    );
    let mda = 4096;
    assert!(
        raw_in[start + mda..start + pe_start] == raw_out[start + mda..start + pe_start],
        "metadata area changed"
    );
    for lv in ["rhel/root", "rhel/home", "rhel/var-log"] {
        fsck_lv(&out, &after, lv, tmp.path());
    }
    for gone in [
        &b"LVMSECRET-"[..],
        b"LVMREMOVED-OLD-EXTENT-",
        b"LVMSWAP-PAGED-OUT-",
    ] {
        assert!(
            !contains(&raw_out, gone),
            "{} left in the output",
            String::from_utf8_lossy(gone)
        );
    }
    let o = out.to_str().unwrap();
    assert_eq!(
        ok(&vmscrub(&[&"cat", &o, &"/home/user/notes.txt"])),
        "LVMKEEP-HOME notes\n"
    );
    assert!(!ok(&vmscrub(&[&"ls", &o, &"/home/user"])).contains("bash_history"));
    // The swap LV is empty swap again, with its UUID and label (blkid on the LV
    // extracted at lvm2's offsets).
    let blkid = |image: &Path, report: &Value| {
        let f = tmp.path().join("swap.lv");
        std::fs::write(&f, lv_bytes_by_lvm2(image, report, "rhel/swap")).unwrap();
        let o = run("blkid", &[&"-p", &"-o", &"export", &f]);
        let mut kv: Vec<String> = String::from_utf8(o)
            .unwrap()
            .lines()
            .filter(|l| {
                ["UUID=", "LABEL=", "TYPE="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(str::to_string)
            .collect();
        kv.sort();
        kv
    };
    let (a, b) = (blkid(&img, &before), blkid(&out, &after));
    assert_eq!(a, b);
    assert!(
        a.contains(&"TYPE=swap".to_string()) && a.contains(&"LABEL=rhelswap".to_string()),
        "{a:?}"
    );
}

#[test]
fn striped_and_spanning_lvs_agree_with_lvm2() {
    let img = fixture("lvm-striped");
    let (l, j) = model_matches(&img);
    let g = &j["volume_groups"][0];
    let wide = g["logical_volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "wide")
        .unwrap();
    assert_eq!(wide["segments"][0]["stripe_size"], 65536);
    assert_eq!(wide["segments"][0]["stripes"].as_array().unwrap().len(), 2);
    let tmp = tempfile::tempdir().unwrap();
    for lv in ["data/span", "data/wide"] {
        assert!(
            lv_bytes_by_lvm2(&img, &l, lv) == lv_bytes_by_vmscrub(&img, lv),
            "{lv}"
        );
        fsck_lv(&img, &l, lv, tmp.path());
    }
    let i = img.to_str().unwrap();
    for fs in ["data/wide", "data/span"] {
        assert_eq!(
            ok(&vmscrub(&[&"cat", &"--fs", &fs, &i, &"/data/report.txt"])),
            "LVMKEEP-DATA striped\n"
        );
    }
    // A scrub through stripes removes the key planted on both LVs (into the
    // archive, under each LV's own directory), keeps both filesystems clean and
    // the metadata as it was.
    let key = ok(&vmscrub(&[
        &"cat",
        &"--fs",
        &"data/wide",
        &i,
        &"/data/deploy_key",
    ]));
    assert!(key.contains("OPENSSH PRIVATE KEY"));
    let out = tmp.path().join("out.img");
    let id = tmp.path().join("age.key");
    run("age-keygen", &[&"-o", &id]);
    let recipient = String::from_utf8(run("age-keygen", &[&"-y", &id])).unwrap();
    let archive = tmp.path().join("rec.vmsr");
    let o = vmscrub(&[
        &"scrub",
        &img,
        &"-o",
        &out,
        &"--data-volume",
        &"--recovery",
        &archive,
        &"--recipient",
        &recipient.trim(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list = ok(&vmscrub(&[&"recover", &"-i", &id, &"--list", &archive]));
    for lv in ["lv-data-wide", "lv-data-span"] {
        assert!(list.contains(&format!("{lv}/data/deploy_key")), "{list}");
    }
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let raw_out = std::fs::read(&out).unwrap();
    // From the middle of the body: its start is the same in every OpenSSH key.
    let mid = &body.as_bytes()[body.len() / 2..body.len() / 2 + 40];
    assert!(
        contains(&std::fs::read(&img).unwrap(), mid),
        "the probe is in the input"
    );
    assert!(!contains(&raw_out, mid), "key bytes left in the output");
    let after = lvm2(&out);
    assert_eq!(l["pvck"], after["pvck"]);
    for lv in ["data/span", "data/wide"] {
        fsck_lv(&out, &after, lv, tmp.path());
    }
    let blob = ok(&vmscrub(&[
        &"cat",
        &"--fs",
        &"data/wide",
        &out,
        &"/data/blob.bin",
    ]));
    let blob_in = ok(&vmscrub(&[
        &"cat",
        &"--fs",
        &"data/wide",
        &i,
        &"/data/blob.bin",
    ]));
    assert!(blob == blob_in, "kept data survives the scrub");
}

#[test]
fn thin_pool_is_named_and_refused() {
    let img = fixture("lvm-thin");
    let l = lvm2(&img);
    let types: BTreeMap<String, String> = l["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["lv_name"].as_str().unwrap().to_string(),
                s["segtype"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(types["pool"], "thin-pool", "lvm2 sees a real thin pool");
    assert_eq!(types["thin"], "thin");
    let j = inspect(&img);
    let lvs = j["volume_groups"][0]["logical_volumes"].as_array().unwrap();
    let reason = |n: &str| lvs.iter().find(|x| x["name"] == n).unwrap()["refused_reason"].clone();
    assert!(
        reason("pool").as_str().unwrap().contains("thin pool"),
        "{}",
        reason("pool")
    );
    assert!(
        reason("thin").as_str().unwrap().contains("thin volume"),
        "{}",
        reason("thin")
    );
    assert_eq!(reason("plain"), Value::Null);
    assert!(lv_bytes_by_lvm2(&img, &l, "tvg/plain") == lv_bytes_by_vmscrub(&img, "tvg/plain"));
    let scan: Value = serde_json::from_slice(
        &vmscrub(&[&"scan", &img, &"--format", &"json", &"--data-volume"]).stdout,
    )
    .unwrap();
    let unreadable = scan["guest"]["unreadable"].as_array().unwrap();
    assert!(
        unreadable.iter().any(|u| u["identity"]["lv"] == "tvg/pool"),
        "{unreadable:?}"
    );
    let human = ok(&vmscrub(&[&"inspect", &img]));
    assert!(
        human.contains("pool: logical volume pool is a thin pool"),
        "{human}"
    );
}

#[test]
fn vg_with_a_missing_pv_is_refused() {
    let img = fixture("lvm-missing");
    let l = lvm2(&img);
    assert_eq!(
        num(&l["vgs"][0]["vg_missing_pv_count"]),
        1,
        "lvm2 misses a PV too"
    );
    let j = inspect(&img);
    let g = &j["volume_groups"][0];
    assert_eq!(g["name"], "half");
    assert_eq!(g["readable"], false);
    let why = g["refused_reason"].as_str().unwrap();
    let missing = g["physical_volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["present"] == false)
        .unwrap();
    assert!(
        why.contains("missing") && why.contains(missing["uuid"].as_str().unwrap()),
        "{why}"
    );
    assert!(
        j["partitions"][0]["filesystem"]["unreadable_reason"]
            .as_str()
            .unwrap()
            .contains("missing")
    );
    // scrub refuses: the LVs it cannot assemble may hold secrets.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.img");
    let o = vmscrub(&[&"scrub", &img, &"-o", &out]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("volume group half cannot be read"));
    assert!(!out.exists());
}

/// Hostile LVM metadata in a real image: flipped bytes in the label, the
/// metadata area header and the text never panic; vmscrub either reads the VG
/// or names why not.
#[test]
fn corrupted_lvm_metadata_gives_reasons_not_panics() {
    let img = fixture("lvm-rhel");
    let base = std::fs::read(&img).unwrap();
    let pv = 34816 * 512usize;
    let tmp = tempfile::tempdir().unwrap();
    let mut seed = 7u64;
    for round in 0..40 {
        let mut d = base.clone();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = pv + 512 + (seed >> 33) as usize % (8192 + 4096);
            d[at] ^= 1 << ((seed >> 20) % 8);
        }
        let p: PathBuf = tmp.path().join(format!("c{round}.img"));
        std::fs::write(&p, &d).unwrap();
        let o = vmscrub(&[&"inspect", &"--format", &"json", &p]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            o.status.code() == Some(0) || o.status.code() == Some(3),
            "{err}"
        );
        if o.status.success() {
            let j: Value = serde_json::from_slice(&o.stdout).unwrap();
            let g = &j["volume_groups"][0];
            let said = g["readable"] == true
                || g["refused_reason"].is_string()
                || j["partitions"][1]["filesystem"]["unreadable_reason"].is_string()
                || j["warnings"].to_string().contains("LVM2 label");
            assert!(said, "{j}");
        }
        std::fs::remove_file(&p).unwrap();
    }
}

/// A PV on the bare disk (no partition table): the same model, the same bytes.
#[test]
fn pv_on_the_bare_disk() {
    let img = fixture("lvm-bare");
    let (l, j) = model_matches(&img);
    assert_eq!(j["partition_table"]["type"], "none");
    assert_eq!(
        j["volume_groups"][0]["physical_volumes"][0]["partition"],
        Value::Null
    );
    assert!(lv_bytes_by_lvm2(&img, &l, "bare/data") == lv_bytes_by_vmscrub(&img, "bare/data"));
    let i = img.to_str().unwrap();
    assert_eq!(
        ok(&vmscrub(&[
            &"cat",
            &"--fs",
            &"bare/data",
            &i,
            &"/data/report.txt"
        ])),
        "LVMKEEP-DATA striped\n"
    );
}

/// Two VGs with one name (lvm2 lists both, with different UUIDs): neither is
/// read, since an fstab name like /dev/dup/root could mean either.
#[test]
fn two_vgs_with_one_name_are_refused() {
    let img = fixture("lvm-dup");
    let l = lvm2(&img);
    let vgs = l["vgs"].as_array().unwrap();
    assert_eq!(vgs.len(), 2);
    assert!(vgs.iter().all(|g| g["vg_name"] == "dup"));
    assert_ne!(vgs[0]["vg_uuid"], vgs[1]["vg_uuid"]);
    let j = inspect(&img);
    for g in j["volume_groups"].as_array().unwrap() {
        assert_eq!(g["readable"], false);
        assert!(
            g["refused_reason"]
                .as_str()
                .unwrap()
                .contains("two volume groups are named dup")
        );
        assert_eq!(g["logical_volumes"][0]["filesystem"], Value::Null);
    }
    let o = vmscrub(&[
        &"scrub",
        &img,
        &"-o",
        &tempfile::tempdir().unwrap().path().join("o.img"),
        &"--data-volume",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
