//! Archive throughput: how fast `ArchiveWriter` turns removed files into an
//! encrypted archive, and how fast `decrypt_to` gets the tar back. Inputs are made
//! in memory so only the archive pipeline is measured.
//!
//! ```text
//! cargo run --release -p vmscrub-recovery --example throughput -- [logs|random] [MiB] [runs] [zstd_workers] [level]
//! ```
//! `logs`: many 64 KiB files of syslog-like text; `random`: incompressible 1 MiB files.
//! Prints each run and the median, in MB/s of input (10^6 bytes/s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use vmscrub_recovery::*;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn log_pool(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    let mut x = 0x1234_5678u64;
    let procs = ["sshd", "systemd", "kernel", "cron", "dhclient", "nginx"];
    let msgs = [
        "Accepted publickey for admin from 10.0.{a}.{b} port {c} ssh2",
        "Started Session {c} of user root.",
        "EXT4-fs (vda1): mounted filesystem with ordered data mode",
        "(root) CMD (run-parts /etc/cron.hourly) pid={c}",
        "DHCPACK of 10.0.{a}.{b} from 10.0.0.1 (xid=0x{c:x})",
        "10.0.{a}.{b} - - \"GET /api/v1/items/{c} HTTP/1.1\" 200 {a}{b}",
    ];
    let mut t = 1_700_000_000u64;
    while out.len() < len {
        let r = xorshift(&mut x);
        t += r % 3;
        let i = (r >> 8) as usize % msgs.len();
        let (a, b, c) = ((r >> 16) % 256, (r >> 24) % 256, (r >> 32) % 65536);
        let msg = msgs[i]
            .replace("{a}", &a.to_string())
            .replace("{b}", &b.to_string())
            .replace("{c:x}", &format!("{c:x}"))
            .replace("{c}", &c.to_string());
        out.extend_from_slice(format!("{t} host {}[{}]: {msg}\n", procs[i], c % 5000).as_bytes());
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("logs")
        .to_string();
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let workers: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let level: i32 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(3);
    let total = mib << 20;
    let (pool, file_size) = if kind == "random" {
        let mut x = 99u64;
        (
            (0..64 << 20)
                .map(|_| (xorshift(&mut x) >> 24) as u8)
                .collect::<Vec<u8>>(),
            1 << 20,
        )
    } else {
        (log_pool(64 << 20), 64 << 10)
    };
    let nfiles = total / file_size;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = {
        use rsa::pkcs8::EncodePrivateKey;
        key.to_pkcs8_pem(Default::default()).unwrap()
    };
    let id = Identity::parse(pem.as_bytes(), &mut || unreachable!()).unwrap();
    let recipient = id.to_recipient().unwrap();
    let opts = WriterOptions {
        format: ArchiveFormat::V1,
        zstd_workers: workers,
        zstd_level: level,
        ..WriterOptions::default()
    };
    println!(
        "{kind}: {nfiles} files x {file_size} B = {mib} MiB, zstd level {level}, workers {workers}"
    );
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    // One output buffer for all runs, touched once, so page faults of a fresh
    // gigabyte are not billed to the archive.
    let mut out: Vec<u8> = vec![0u8; total + total / 8];
    for run in 0..runs {
        let meta = Metadata {
            mode: 0o640,
            ..Metadata::default()
        };
        let start = Instant::now();
        out.clear();
        let mut w = ArchiveWriter::new(
            &mut out,
            std::slice::from_ref(&recipient),
            ArchiveInfo::default(),
            &opts,
        )
        .unwrap();
        let mut off = 0usize;
        for i in 0..nfiles {
            if off + file_size > pool.len() {
                off = (i * 4099) % 4096;
            }
            let path = format!("var/log/app/{:03}/file-{i:06}.log", i % 997);
            w.add_file(
                path.as_bytes(),
                &meta,
                "logfiles",
                file_size as u64,
                &mut &pool[off..off + file_size],
            )
            .unwrap();
            off += file_size + 17;
        }
        let archive: &[u8] = w.finish().unwrap();
        let e = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let n = decrypt_to(archive, &id, &mut std::io::sink()).unwrap();
        let d = start.elapsed().as_secs_f64();
        let mb = total as f64 / 1e6;
        println!(
            "run {run}: archive {:.0} MB/s ({:.1} s, ratio {:.2}), recover {:.0} MB/s ({} MB tar)",
            mb / e,
            e,
            total as f64 / archive.len() as f64,
            mb / d,
            n / 1_000_000
        );
        enc.push(mb / e);
        dec.push(mb / d);
    }
    // Floors on the same bytes: zstd alone (same level/workers) and SHA-256 alone.
    let feed = |f: &mut dyn FnMut(&[u8])| {
        let mut off = 0usize;
        for i in 0..nfiles {
            if off + file_size > pool.len() {
                off = (i * 4099) % 4096;
            }
            f(&pool[off..off + file_size]);
            off += file_size + 17;
        }
    };
    let start = Instant::now();
    let mut z = zstd::stream::write::Encoder::new(std::io::sink(), level).unwrap();
    if workers > 0 {
        z.multithread(workers).unwrap();
    }
    feed(&mut |b| std::io::Write::write_all(&mut z, b).unwrap());
    z.finish().unwrap();
    let zt = start.elapsed().as_secs_f64();
    let start = Instant::now();
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    feed(&mut |b| h.update(b));
    let _ = h.finalize();
    let ht = start.elapsed().as_secs_f64();
    let mb = total as f64 / 1e6;
    println!(
        "floors: zstd alone {:.0} MB/s, sha256 alone {:.0} MB/s",
        mb / zt,
        mb / ht
    );
    enc.sort_by(f64::total_cmp);
    dec.sort_by(f64::total_cmp);
    println!(
        "median: archive {:.0} MB/s, recover {:.0} MB/s",
        enc[enc.len() / 2],
        dec[dec.len() / 2]
    );
}
