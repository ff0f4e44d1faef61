//! Throughput benchmark for the detectors (all on).
//!
//!   scan_bench synthetic random|log|FILE SIZE_MB [THREADS]   in-memory, median of 7 runs
//!   scan_bench tree DIR [THREADS]                       every regular file, read + scan
//!
//! Compare the tree mode with `find DIR -type f -print0 | xargs -0 cat > /dev/null`
//! under hyperfine (the floor: reading the same files).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vmscrub_detect::{Config, DetectorId, DetectorSet, Operation, Scanner};

fn xorshift(len: usize, mut s: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn log_text(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "kernel",
        "systemd",
        "sshd",
        "session",
        "opened",
        "closed",
        "for",
        "user",
        "root",
        "eth0",
        "DHCPACK",
        "from",
        "link",
        "up",
        "Started",
        "Stopped",
        "daemon",
        "cron",
        "error",
        "warning",
        "info",
        "pid=",
        "uid=",
        "/usr/lib",
        "/var/log",
        "ok",
        "Accepted",
        "publickey",
        "port",
        "ssh2:",
        "RSA",
        "SHA256:",
    ];
    let mut out = Vec::with_capacity(len + 256);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    while out.len() < len {
        let r = next();
        out.extend_from_slice(
            format!(
                "Jan {:2} {:02}:{:02}:{:02} host ",
                r % 28 + 1,
                r % 24,
                r % 60,
                (r >> 8) % 60
            )
            .as_bytes(),
        );
        for _ in 0..(4 + next() % 10) {
            out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(format!("[{}]\n", next() % 99_999).as_bytes());
    }
    out.truncate(len);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // DETECT_DISABLE=tokens,netrc turns operations or detectors off (to see what costs).
    let mut config = Config::new();
    for name in std::env::var("DETECT_DISABLE")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        if let Some(op) = Operation::from_name(name) {
            config = config.disable_operation(op);
        } else {
            config =
                config.disable(DetectorId::from_name(name).expect("a detector or operation name"));
        }
    }
    let set = DetectorSet::new(config).unwrap();
    match args.get(1).map(String::as_str) {
        Some("synthetic") => {
            let kind = &args[2];
            let mb: usize = args[3].parse().unwrap();
            let threads: usize = args.get(4).map_or(1, |t| t.parse().unwrap());
            let data = if kind == "random" {
                xorshift(mb << 20, 1)
            } else {
                log_text(mb << 20)
            };
            let mut times = Vec::new();
            for _ in 0..7 {
                let t0 = Instant::now();
                std::thread::scope(|sc| {
                    for t in 0..threads {
                        let (set, data) = (&set, &data);
                        sc.spawn(move || {
                            let mut scanner = Scanner::new();
                            let part = data.len() / threads;
                            let s = set.scan_bytes(&mut scanner, &data[t * part..(t + 1) * part]);
                            std::hint::black_box(s.findings.len());
                        });
                    }
                });
                times.push(t0.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            println!(
                "{kind} {mb} MiB, {threads} thread(s): median {:.1} ms, {:.2} GB/s",
                med * 1e3,
                data.len() as f64 / med / 1e9
            );
        }
        Some("tree") => {
            let mut files = Vec::new();
            walk(Path::new(&args[2]), &mut files);
            let threads: usize = args.get(3).map_or(1, |t| t.parse().unwrap());
            let t0 = Instant::now();
            let (bytes, findings): (u64, usize) = std::thread::scope(|sc| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (set, files) = (&set, &files);
                        sc.spawn(move || {
                            let mut scanner = Scanner::new();
                            let (mut b, mut n) = (0, 0);
                            for f in files.iter().skip(t).step_by(threads) {
                                let s = set
                                    .scan_reader(&mut scanner, File::open(f).unwrap())
                                    .unwrap();
                                b += s.bytes;
                                n += s.findings.len();
                            }
                            (b, n)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1))
            });
            let el = t0.elapsed().as_secs_f64();
            println!(
                "{} files, {:.1} MB, {findings} findings, {threads} thread(s): {:.3} s, {:.2} GB/s",
                files.len(),
                bytes as f64 / 1e6,
                el,
                bytes as f64 / el / 1e9
            );
        }
        _ => eprintln!(
            "usage: scan_bench synthetic random|log SIZE_MB [THREADS] | scan_bench tree DIR [THREADS]"
        ),
    }
}
