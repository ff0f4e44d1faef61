//! `vmscrub convert` through the binary, judged by independent tools: for every
//! input fixture and every output format and option, `qemu-img check` finds no
//! error (and for qcow2 no leak, with the image ending where the file does),
//! `qemu-img compare` says the output is identical to the input, `qemu-img info`
//! names the expected format / create-type / compat / cluster size /
//! compression, `qemu-img map` shows compressed clusters where compression was
//! asked for and pays (none for random data), 7-Zip (a second,
//! independent VMDK reader) extracts streamOptimized outputs byte for byte, and
//! our own readers read back the oracle's bytes. Then the failure paths: no
//! writable directory, a full disk (tmpfs) and a file-size limit (EFBIG), Ctrl-C —
//! exit 3, no output and no temporary file left, input unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vmscrub::image::{self, OpenOptions};
use vmscrub_blockdev::ReadAt;
use vmscrub_fixtures::{fixture, qemu_raw, run};

fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn qemu_info(path: &Path) -> Value {
    serde_json::from_slice(&run("qemu-img", &[&"info", &"--output=json", &path])).unwrap()
}

/// `qemu-img info` with the format given (qemu does not recognise a fixed VHD,
/// whose only signature is its footer).
fn qemu_info_as(path: &Path, format: &str) -> Value {
    serde_json::from_slice(&run(
        "qemu-img",
        &[&"info", &"--output=json", &"-f", &format, &path],
    ))
    .unwrap()
}

/// A VHD output against the specification and Azure's rules, read with our own
/// eyes (not the reader under test): the footer at the end (and, dynamic, at
/// the start) with its cookie, type and checksum; a fixed disk's size a whole
/// number of MiB and the file exactly that plus the footer; holes kept.
fn vhd_checks(out: &Path, oracle: &Path, subformat: &str, virt: u64, what: &str) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let f = std::fs::File::open(out).unwrap();
    let meta = f.metadata().unwrap();
    let mut footer = [0u8; 512];
    f.read_exact_at(&mut footer, meta.len() - 512).unwrap();
    assert_eq!(&footer[..8], b"conectix", "{what}");
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    assert_eq!(be32(&footer, 64), !sum, "{what}: footer checksum");
    let size = u64::from_be_bytes(footer[48..56].try_into().unwrap());
    assert_eq!(size, virt, "{what}: the footer's size is what qemu reads");
    match subformat {
        "fixed" => {
            assert_eq!(be32(&footer, 60), 2, "{what}");
            assert_eq!(size % (1 << 20), 0, "{what}: Azure wants whole MiB");
            assert_eq!(meta.len(), size + 512, "{what}");
        }
        _ => {
            assert_eq!(be32(&footer, 60), 3, "{what}");
            let mut head = [0u8; 520];
            f.read_exact_at(&mut head, 0).unwrap();
            assert_eq!(&head[..512], &footer[..], "{what}: the copy at the start");
            assert_eq!(&head[512..520], b"cxsparse", "{what}");
        }
    }
    // Holes stay holes: no more allocated than the data, plus a page or two
    // per block (its bitmap) and the tables.
    let data: u64 = vmscrub_blockdev::FileDisk::open(oracle)
        .unwrap()
        .allocated_ranges()
        .unwrap()
        .iter()
        .map(|r| r.end - r.start)
        .sum();
    let overhead = (virt / (2 << 20) + 1) * 8192 + (1 << 20);
    assert!(
        meta.blocks() * 512 <= data + overhead,
        "{what}: {} bytes allocated for {data} bytes of data",
        meta.blocks() * 512
    );
}

/// Container fixtures (qemu-made) and the edge shapes of fixtures/convert.toml.
const INPUTS: &[&str] = &[
    "c-raw",
    "c-vmdk-sparse",
    "c-vmdk-stream",
    "c-vmdk-flat",
    "c-vmdk-2gb-sparse",
    "c-vmdk-2gb-flat",
    "c-vmdk-odd-stream",
    "conv-odd",
    "conv-unaligned",
    "conv-big-sparse",
    "conv-all-zero",
    "conv-random",
    "conv-one-sector",
];

/// qcow2 inputs (the compressed ones are where parallel reading pays).
const QCOW2_INPUTS: &[&str] = &[
    "c-qcow2",
    "c-qcow2-v2",
    "c-qcow2-zlib",
    "c-qcow2-zstd",
    "c-qcow2-4k-clusters",
    "c-qcow2-2m-clusters",
    "c-qcow2-zero-clusters",
];

/// What a qcow2 output must show in `qemu-img info`.
struct Qcow2Expect {
    compat: &'static str,
    cluster_size: u64,
    compression_type: &'static str,
    /// Clusters stored compressed (where compression pays).
    compressed: bool,
}

/// One output of the matrix: the arguments, the qemu format, and what the
/// output must look like (VMDK create-type, qcow2 header, VHD subformat).
struct Out {
    args: &'static [&'static str],
    format: &'static str,
    vmdk: Option<&'static str>,
    qcow2: Option<Qcow2Expect>,
    vhd: Option<&'static str>,
}

const fn vmdk(args: &'static [&'static str], ct: &'static str) -> Out {
    Out {
        args,
        format: "vmdk",
        vmdk: Some(ct),
        qcow2: None,
        vhd: None,
    }
}

const fn vhd(args: &'static [&'static str], subformat: &'static str) -> Out {
    Out {
        args,
        format: "vpc",
        vmdk: None,
        qcow2: None,
        vhd: Some(subformat),
    }
}

const fn qcow2(
    args: &'static [&'static str],
    compat: &'static str,
    cluster_size: u64,
    compression_type: &'static str,
    compressed: bool,
) -> Out {
    Out {
        args,
        format: "qcow2",
        vmdk: None,
        qcow2: Some(Qcow2Expect {
            compat,
            cluster_size,
            compression_type,
            compressed,
        }),
        vhd: None,
    }
}

const OUTPUTS: &[Out] = &[
    Out {
        args: &["-O", "raw"],
        format: "raw",
        vmdk: None,
        qcow2: None,
        vhd: None,
    },
    vhd(&["-O", "vhd", "--subformat", "fixed"], "fixed"),
    vhd(&["-O", "vpc"], "dynamic"),
    Out {
        args: &["-O", "vhdx"],
        format: "vhdx",
        vmdk: None,
        qcow2: None,
        vhd: None,
    },
    vmdk(&["--subformat", "streamOptimized"], "streamOptimized"),
    vmdk(&["--subformat", "monolithicSparse"], "monolithicSparse"),
    vmdk(&["--subformat", "monolithicFlat"], "monolithicFlat"),
    qcow2(&["-O", "qcow2"], "1.1", 65536, "zlib", false),
    qcow2(
        &["-O", "qcow2", "--compat", "0.10"],
        "0.10",
        65536,
        "zlib",
        false,
    ),
    qcow2(&["-O", "qcow2", "--compress"], "1.1", 65536, "zlib", true),
    qcow2(
        &["-O", "qcow2", "--compress=zstd"],
        "1.1",
        65536,
        "zstd",
        true,
    ),
    qcow2(
        &["-O", "qcow2", "--cluster-size", "4K"],
        "1.1",
        4096,
        "zlib",
        false,
    ),
    qcow2(
        &["-O", "qcow2", "--cluster-size", "2M", "--compress"],
        "1.1",
        2 << 20,
        "zlib",
        true,
    ),
];

/// `qemu-img check --output=json` of a qcow2 output: exit 0, no errors, no
/// leaks, no corruptions, and the image ends where the file does (compact).
fn qcow2_check(out: &Path, what: &str) -> Value {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", "-f", "qcow2"])
        .arg(out)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "{what}: qemu-img check: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(o.status.success(), "{what}: qemu-img check: {v}");
    for k in ["check-errors", "leaks", "corruptions"] {
        assert_eq!(v[k].as_u64().unwrap_or(0), 0, "{what}: {k}: {v}");
    }
    assert_eq!(
        v["image-end-offset"].as_u64(),
        Some(std::fs::metadata(out).unwrap().len()),
        "{what}: {v}"
    );
    v
}

/// Bytes of guest disk that `qemu-img map` reports as stored compressed.
fn compressed_bytes(out: &Path) -> u64 {
    let map: Value = serde_json::from_slice(&run(
        "qemu-img",
        &[&"map", &"--output=json", &"-f", &"qcow2", &out],
    ))
    .unwrap();
    map.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["compressed"].as_bool() == Some(true))
        .map(|e| e["length"].as_u64().unwrap())
        .sum()
}

/// Compares a device with the oracle raw file. Sizes may differ by less than a
/// sector (a VMDK rounds its capacity up to whole sectors, and so does qemu's raw
/// output; our raw output keeps the exact size); the extra bytes must be zeros.
/// Every byte of the device is read; where the oracle file is a hole (the host
/// filesystem's map), it is compared with zeros instead of reading the hole.
fn same_bytes(dev: &dyn ReadAt, oracle: &Path, slack: u64, what: &str) {
    use std::os::unix::fs::FileExt;
    let o = std::fs::File::open(oracle).unwrap();
    let olen = o.metadata().unwrap().len();
    let odata = vmscrub_blockdev::FileDisk::open(oracle)
        .unwrap()
        .allocated_ranges()
        .unwrap();
    assert!(
        dev.size().abs_diff(olen) < slack,
        "{what}: size {} vs {olen}",
        dev.size()
    );
    let chunk = 4 << 20;
    let (mut a, mut b) = (vec![0u8; chunk], vec![0u8; chunk]);
    let zeros = vec![0u8; chunk];
    let mut pos = 0u64;
    let total = dev.size().max(olen);
    while pos < total {
        let n = (total - pos).min(chunk as u64) as usize;
        a[..n].fill(0);
        let d = dev.size().saturating_sub(pos).min(n as u64) as usize;
        dev.read_exact_at(&mut a[..d], pos).unwrap();
        let want = if odata.intersects(pos..pos + n as u64) {
            b[..n].fill(0);
            let m = olen.saturating_sub(pos).min(n as u64) as usize;
            o.read_exact_at(&mut b[..m], pos).unwrap();
            &b[..n]
        } else {
            &zeros[..n]
        };
        assert!(a[..n] == *want, "{what}: bytes differ in [{pos}, +{n})");
        pos += n as u64;
    }
}

fn judge(input: &Path, oracle: &Path, out: &Path, o: &Out, what: &str) {
    let (format, ct) = (o.format, o.vmdk);
    if format == "vmdk" || format == "vhdx" {
        let check = run("qemu-img", &[&"check", &"-f", &format, &out]);
        assert!(
            String::from_utf8_lossy(&check).contains("No errors"),
            "{what}: {}",
            String::from_utf8_lossy(&check)
        );
    }
    let cmp = Command::new("qemu-img")
        .args(["compare", "-F", format])
        .arg(input)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        cmp.status.success() && String::from_utf8_lossy(&cmp.stdout).contains("identical"),
        "{what}: qemu-img compare: {}{}",
        String::from_utf8_lossy(&cmp.stdout),
        String::from_utf8_lossy(&cmp.stderr)
    );
    let info = if format == "vpc" {
        qemu_info_as(out, format)
    } else {
        qemu_info(out)
    };
    assert_eq!(info["format"], format, "{what}");
    if let Some(sub) = o.vhd {
        vhd_checks(
            out,
            oracle,
            sub,
            info["virtual-size"].as_u64().unwrap(),
            what,
        );
    }
    if let Some(ct) = ct {
        let data = &info["format-specific"]["data"];
        assert_eq!(data["create-type"], ct, "{what}");
        let compressed = ct == "streamOptimized";
        for e in data["extents"].as_array().unwrap() {
            assert_eq!(
                e["compressed"].as_bool().unwrap_or(false),
                compressed,
                "{what}: {e}"
            );
        }
    }
    if let Some(q) = &o.qcow2 {
        let check = qcow2_check(out, what);
        let data = &info["format-specific"]["data"];
        assert_eq!(
            info["cluster-size"].as_u64(),
            Some(q.cluster_size),
            "{what}"
        );
        assert_eq!(data["compat"], q.compat, "{what}");
        if q.compat == "1.1" {
            assert_eq!(data["compression-type"], q.compression_type, "{what}");
        }
        assert!(info.get("backing-filename").is_none(), "{what}");
        let compressed = compressed_bytes(out);
        let stored = check["allocated-clusters"].as_u64().unwrap_or(0);
        let random = what.starts_with("conv-random ");
        if !q.compressed || random {
            // Random data does not shrink: every cluster is stored as it is.
            assert_eq!(compressed, 0, "{what}");
        } else if stored > 0 {
            assert!(compressed > 0, "{what}: nothing compressed");
        }
        if random {
            let file = std::fs::metadata(out).unwrap().len();
            let virt = info["virtual-size"].as_u64().unwrap();
            // The data as it is, plus header, L2, L1 and refcount clusters.
            let meta = virt / 100 + 5 * q.cluster_size;
            assert!(file <= virt + meta, "{what}: {file} bytes");
        }
    }
    let img = image::open(out, &OpenOptions::default()).unwrap();
    let ours = if format == "vpc" { "vhd" } else { format };
    assert_eq!(img.info.format.as_str(), ours, "{what}");
    if let Some(ct) = ct.or(o.vhd) {
        assert_eq!(img.info.subformat.as_deref(), Some(ct), "{what}");
    }
    // A fixed VHD is rounded up to a whole MiB (its tail zeros); others to a sector.
    let slack = if o.vhd == Some("fixed") { 1 << 20 } else { 512 };
    same_bytes(&*img.disk, oracle, slack, what);
    if ct == Some("streamOptimized") {
        // 7-Zip's VMDK handler: an independent reader of VMware-style streams.
        // Its output is streamed and compared chunk by chunk (the big shape is 6 GiB).
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let mut child = Command::new("7zz")
            .args(["e", "-tvmdk", "-so"])
            .arg(out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let o = std::fs::File::open(oracle).unwrap();
        let olen = o.metadata().unwrap().len();
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut pos = 0u64;
        loop {
            let n = pipe.read(&mut a).unwrap();
            if n == 0 {
                break;
            }
            b[..n].fill(0);
            let m = olen.saturating_sub(pos).min(n as u64) as usize;
            o.read_exact_at(&mut b[..m], pos).unwrap();
            assert!(a[..n] == b[..n], "{what}: 7zz bytes differ near {pos}");
            pos += n as u64;
        }
        assert!(child.wait().unwrap().success(), "{what}: 7zz failed");
        assert!(
            pos >= olen && pos - olen < 512,
            "{what}: 7zz gave {pos} bytes"
        );
    }
}

fn convert_all(inputs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for name in inputs {
        let input = fixture(name);
        let oracle = qemu_raw(&input, dir.path());
        for (k, o) in OUTPUTS.iter().enumerate() {
            let what = format!("{name} → {}", o.args.join(" "));
            let out = dir.path().join(format!("out-{name}-{k}.{}", o.format));
            let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"--quiet"];
            for x in o.args {
                a.push(x);
            }
            a.push(&input);
            a.push(&out);
            ok(&vmscrub(&a), &what);
            judge(&input, &oracle, &out, o, &what);
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let n = e.unwrap().file_name();
                assert!(
                    !n.to_string_lossy().ends_with(".vmscrub-tmp"),
                    "{what}: temporary file {n:?} left"
                );
            }
            std::fs::remove_file(&out).unwrap();
            let _ = std::fs::remove_file(out.with_file_name(format!("out-{name}-{k}-flat.vmdk")));
        }
        std::fs::remove_file(&oracle).unwrap();
    }
}

#[test]
fn qemu_made_containers_to_every_output() {
    vmscrub_fixtures::build(&INPUTS[..7]);
    convert_all(&INPUTS[..7]);
}

#[test]
fn edge_shapes_to_every_output() {
    vmscrub_fixtures::build(&INPUTS[7..]);
    convert_all(&INPUTS[7..]);
}

#[test]
fn qcow2_inputs_to_every_output() {
    vmscrub_fixtures::build(QCOW2_INPUTS);
    convert_all(QCOW2_INPUTS);
}

/// A qcow2 input defaults to qcow2 output (this was "not built yet": exit 3,
/// nothing written). Now: written, with qemu-img's defaults whatever the input
/// was, nothing else left in the directory; and qcow2 options that make no
/// sense are usage errors (exit 2) that write nothing.
#[test]
fn qcow2_output_defaults_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.qcow2");
    // The zstd, 2 MiB-cluster, v2 inputs: their layout is not inherited.
    for (input, extra) in [
        ("c-qcow2-zstd", &[][..]),
        ("c-qcow2-2m-clusters", &["-O", "qcow2"][..]),
        ("c-qcow2-v2", &[][..]),
    ] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"-q"];
        for x in extra {
            a.push(x);
        }
        let input = fixture(input);
        a.push(&input);
        a.push(&out);
        let o = vmscrub(&a);
        ok(&o, &format!("{input:?} {extra:?}"));
        let info = qemu_info(&out);
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["cluster-size"].as_u64(), Some(65536));
        assert_eq!(info["format-specific"]["data"]["compat"], "1.1");
        assert_eq!(info["format-specific"]["data"]["compression-type"], "zlib");
        assert_eq!(compressed_bytes(&out), 0, "uncompressed unless asked");
        qcow2_check(&out, "default");
        no_leftovers(dir.path(), &["o.qcow2"], "default qcow2");
        std::fs::remove_file(&out).unwrap();
    }

    // > 128 GiB of virtual disk: 512-byte clusters would need an L1 table over
    // qemu's 32 MiB limit.
    let huge = dir.path().join("huge.qcow2");
    run(
        "qemu-img",
        &[&"create", &"-q", &"-f", &"qcow2", &huge, &"200G"],
    );
    let raw = fixture("c-raw");
    let vmdk = fixture("c-vmdk-sparse");
    let qcow = fixture("c-qcow2");
    let cases: &[(&[&str], &Path, &str)] = &[
        (&["--compress"], &raw, "the output format is raw"),
        (
            &["--cluster-size", "4K"],
            &vmdk,
            "the output format is vmdk",
        ),
        (
            &["-O", "raw", "--compress"],
            &qcow,
            "--output-format is raw",
        ),
        (
            &["--subformat", "streamOptimized", "--compat", "1.1"],
            &qcow,
            "--subformat makes a VMDK",
        ),
        (
            &["-O", "qcow2", "--compress=zstd", "--compat", "0.10"],
            &qcow,
            "needs --compat 1.1",
        ),
        (
            &["-O", "qcow2", "--cluster-size", "512"],
            &huge,
            "32 MiB limit",
        ),
    ];
    for (args, input, want) in cases {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"-q"];
        for x in *args {
            a.push(x);
        }
        a.push(input);
        a.push(&out);
        let o = vmscrub(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        no_leftovers(dir.path(), &["huge.qcow2"], &format!("{args:?}"));
    }
    // clap's own refusals.
    for args in [
        &["--cluster-size", "1000"][..],
        &["--cluster-size", "4M"],
        &["--compress=lz4"],
        &["--compat", "2"],
    ] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"-q", &"-O", &"qcow2"];
        for x in args {
            a.push(x);
        }
        a.push(&qcow);
        a.push(&out);
        assert_eq!(vmscrub(&a).status.code(), Some(2), "{args:?}");
    }
    no_leftovers(dir.path(), &["huge.qcow2"], "clap");
}

fn descriptor_of(path: &Path) -> vmscrub_vmdk::Descriptor {
    let f = vmscrub_blockdev::FileDisk::open(path).unwrap();
    vmscrub_vmdk::create::read_descriptor(&f).unwrap()
}

/// Defaults: the input's format; a VMDK becomes streamOptimized; a new disk gets
/// fresh IDs and keeps the input's adapter (qemu wrote "ide").
#[test]
fn defaults_and_descriptor_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sparse = fixture("c-vmdk-sparse");
    ok(
        &vmscrub(&[&"convert", &"-q", &sparse, &d.join("a.vmdk")]),
        "vmdk default",
    );
    ok(
        &vmscrub(&[&"convert", &"-q", &sparse, &d.join("b.vmdk")]),
        "vmdk default again",
    );
    let raw = fixture("c-raw");
    ok(
        &vmscrub(&[&"convert", &"-q", &raw, &d.join("c.img")]),
        "raw default",
    );
    ok(
        &vmscrub(&[
            &"convert",
            &"-q",
            &"--subformat",
            &"monolithicSparse",
            &raw,
            &d.join("e.vmdk"),
        ]),
        "--subformat implies vmdk",
    );
    assert_eq!(qemu_info(&d.join("c.img"))["format"], "raw");
    let (input, a, b, e) = (
        descriptor_of(&sparse),
        descriptor_of(&d.join("a.vmdk")),
        descriptor_of(&d.join("b.vmdk")),
        descriptor_of(&d.join("e.vmdk")),
    );
    assert_eq!(a.create_type(), Some("streamOptimized"));
    assert_eq!(e.create_type(), Some("monolithicSparse"));
    assert_eq!(input.ddb("adapterType"), Some("ide"));
    assert_eq!(
        a.ddb("adapterType"),
        Some("ide"),
        "carried over from the VMDK input"
    );
    assert_eq!(a.ddb("geometry.heads"), Some("16"));
    assert_eq!(
        e.ddb("adapterType"),
        Some("lsilogic"),
        "default for a raw input"
    );
    assert_eq!(e.ddb("geometry.heads"), Some("255"));
    assert_eq!(a.ddb("toolsVersion"), input.ddb("toolsVersion"));
    assert_eq!(a.ddb("virtualHWVersion"), input.ddb("virtualHWVersion"));
    assert_ne!(a.cid(), input.cid());
    assert_ne!(a.cid(), b.cid());
    assert_ne!(a.ddb("uuid"), b.ddb("uuid"));
    assert!(a.ddb("uuid").is_some());
    assert_eq!(a.parent_cid(), Some(0xffff_ffff));
    // The extent line names the file by its final name, not the temporary one.
    assert_eq!(a.extents[0].file_name.as_deref(), Some("a.vmdk"));

    let o = vmscrub(&[
        &"convert",
        &"-O",
        &"raw",
        &"--subformat",
        &"streamOptimized",
        &raw,
        &d.join("x"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let help = vmscrub(&[&"convert", &"--help"]);
    ok(&help, "help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("plain-copy") && help.contains("debug"),
        "{help}"
    );
    for flag in ["--compress", "--cluster-size", "--compat", "qcow2 output"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

fn no_leftovers(dir: &Path, keep: &[&str], what: &str) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "{what}: leftovers");
}

#[test]
fn existing_output_and_the_input_itself_are_protected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    std::fs::copy(fixture("conv-odd"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out.vmdk");
    std::fs::write(&out, b"precious").unwrap();
    let o = vmscrub(&[&"convert", &"-q", &input, &out]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(
        &vmscrub(&[&"convert", &"-q", &"--force", &"-O", &"vmdk", &input, &out]),
        "--force",
    );
    assert_eq!(qemu_info(&out)["format"], "vmdk");
    for args in [vec!["--force"], vec!["--force", "-O", "vmdk"]] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"-q"];
        for x in &args {
            a.push(x);
        }
        a.push(&input);
        a.push(&input);
        let o = vmscrub(&a);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("is the input"));
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    no_leftovers(dir.path(), &["in.img", "out.vmdk"], "protect");
}

#[test]
fn unwritable_directory_fails_cleanly() {
    let input = fixture("conv-odd");
    let o = vmscrub(&[&"convert", &input, &"/nonexistent-dir/out.vmdk"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent-dir"));

    // A directory without write permission, as an unprivileged user (root ignores
    // permissions, so drop to nobody when running as root).
    use std::os::unix::fs::PermissionsExt;
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = top.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let src = top.path().join("in.img");
    std::fs::copy(&input, &src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let euid = String::from_utf8(run("id", &[&"-u"])).unwrap();
    let mut cmd = if euid.trim() == "0" {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vmscrub"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_vmscrub"))
    };
    let o = cmd
        .args(["convert", "-q"])
        .arg(&src)
        .arg(ro.join("out.vmdk"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot create a file in"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    no_leftovers(&ro, &[], "read-only dir");
}

/// The file-size limit (`prlimit --fsize`, unprivileged): writes fail with EFBIG
/// instead of SIGXFSZ killing the process mid-write.
#[test]
fn file_size_limit_fails_cleanly() {
    let input = fixture("c-raw");
    for sub in [
        "streamOptimized",
        "monolithicSparse",
        "monolithicFlat",
        "qcow2",
        "qcow2 --compress",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fmt: Vec<&str> = match sub.strip_prefix("qcow2") {
            Some(rest) => ["-O", "qcow2"]
                .into_iter()
                .chain(rest.split_whitespace())
                .collect(),
            None => vec!["--subformat", sub],
        };
        let o = Command::new("prlimit")
            .arg("--fsize=1500000")
            .arg(env!("CARGO_BIN_EXE_vmscrub"))
            .args(["convert", "-q"])
            .args(&fmt)
            .arg(&input)
            .arg(dir.path().join("o.vmdk"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{sub}: {err}");
        assert!(err.contains("File too large"), "{sub}: {err}");
        no_leftovers(dir.path(), &[], sub);
    }
}

/// A full filesystem: a 1 MiB tmpfs in a private mount namespace (`unshare -rm`
/// works without root where user namespaces are allowed, and as root).
#[test]
fn disk_full_fails_cleanly() {
    let input = fixture("c-raw");
    let mnt = tempfile::tempdir().unwrap();
    for sub in [
        "streamOptimized",
        "monolithicSparse",
        "monolithicFlat",
        "raw",
        "qcow2",
        "qcow2 --compress",
    ] {
        let fmt = if sub == "raw" || sub.starts_with("qcow2") {
            format!("-O {sub}")
        } else {
            format!("--subformat {sub}")
        };
        let script = format!(
            "mount -t tmpfs -o size=1M none '{m}' && '{bin}' convert -q {fmt} '{i}' '{m}/o.img'; echo \"rc=$?\"; ls -A '{m}'",
            m = mnt.path().display(),
            bin = env!("CARGO_BIN_EXE_vmscrub"),
            i = input.display(),
        );
        let o = Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            out.trim(),
            "rc=3",
            "{sub}: leftovers or wrong exit: {out} / {err}"
        );
        assert!(err.contains("No space left"), "{sub}: {err}");
    }
}

fn crc_of(path: &Path) -> (u64, u32) {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (n, h.finalize())
}

/// SIGINT during a long convert: exit 3, no output, no temporary file, input as before.
#[test]
fn ctrl_c_leaves_nothing() {
    let input = fixture("conv-interrupt");
    let before = crc_of(&input);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.vmdk");
    let child = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args([
            "convert",
            "-q",
            "--threads",
            "1",
            "--subformat",
            "streamOptimized",
        ])
        .arg(&input)
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temporary file is being written, then interrupt.
    let t0 = Instant::now();
    loop {
        let growing = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 4 << 20));
        if growing {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "convert never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run("kill", &[&"-INT", &child.id().to_string()]);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    no_leftovers(dir.path(), &[], "ctrl-c");
    assert_eq!(crc_of(&input), before, "input changed");
}

/// A damaged input (a flipped byte inside a compressed grain): the read error
/// stops the pass, exit 3, nothing left beside the input.
#[test]
fn corrupt_input_fails_cleanly() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("in.vmdk");
    ok(
        &vmscrub(&[
            &"convert",
            &"-q",
            &"-O",
            &"vmdk",
            &fixture("conv-random"),
            &good,
        ]),
        "make a stream",
    );
    // Our streams put the first grain marker at sector 128 (overHead).
    let f = std::fs::OpenOptions::new().write(true).open(&good).unwrap();
    f.write_all_at(&[0xff; 16], 128 * 512 + 2000).unwrap();
    drop(f);
    for out in ["o.raw", "o.vmdk"] {
        let o = vmscrub(&[&"convert", &"-q", &good, &dir.path().join(out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("grain 0") && err.contains("nothing was written"),
            "{err}"
        );
        no_leftovers(dir.path(), &["in.vmdk"], out);
    }
}
