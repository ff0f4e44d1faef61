//! Hostile logs: a dirty-log fixture (fixtures/xfs.toml `xfs-dirty-mix`) with
//! its records damaged. A bad record CRC, garbage in a record header and
//! random damage to the operations (with the CRCs made to match, so the
//! parsers behind the CRC check are reached) must each end the replay with a
//! typed error that says why — never a panic, a hang or a partial replay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use vmscrub_blockdev::MemDisk;
use vmscrub_xfs::{Error, LogState, Xfs};

const BB: usize = 512;

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}

/// A record in the image: byte offset of its header, header blocks, `h_len`.
struct Rec {
    at: usize,
    hblks: usize,
    len: usize,
}

fn setup() -> (Vec<u8>, Vec<Rec>) {
    let img = std::fs::read(vmscrub_fixtures::fixture("xfs-dirty-mix")).unwrap();
    let fs = Xfs::open(MemDisk::new(img.clone())).unwrap();
    let sb = fs.superblock();
    let start = sb.fsb_to_byte(sb.log_start).unwrap() as usize;
    let LogState::Dirty { head, .. } = fs.log_state().unwrap() else {
        panic!("the fixture's log is not dirty")
    };
    // Walk the records from the start of the log (a fresh log never wrapped).
    let mut recs = vec![];
    let mut bb = 0usize;
    while (bb as u64) < head {
        let at = start + bb * BB;
        assert_eq!(
            be32(&img, at),
            0xfeed_babe,
            "record header at log block {bb}"
        );
        let len = be32(&img, at + 12) as usize;
        let h_size = be32(&img, at + 320) as usize;
        let hblks = if be32(&img, at + 8) == 2 && h_size > 32768 {
            h_size.div_ceil(32768)
        } else {
            1
        };
        recs.push(Rec { at, hblks, len });
        bb += hblks + len.div_ceil(BB);
    }
    assert!(recs.len() > 2, "{} records", recs.len());
    (img, recs)
}

/// Recomputes a record's CRC, as the kernel computes it.
fn fix_crc(img: &mut [u8], r: &Rec) {
    let mut c = img[r.at..r.at + 328].to_vec();
    c[32..36].fill(0);
    for i in 1..r.hblks {
        c.extend_from_slice(&img[r.at + i * BB..r.at + i * BB + 260]);
    }
    let d = r.at + r.hblks * BB;
    c.extend_from_slice(&img[d..d + r.len]);
    img[r.at + 32..r.at + 36].copy_from_slice(&crc32c::crc32c(&c).to_le_bytes());
}

fn replay(img: Vec<u8>) -> Result<usize, Error> {
    let t = Instant::now();
    let fs = Xfs::open(MemDisk::new(img))?;
    let r = fs.replay_log().map(|r| r.map_or(0, |r| r.transactions));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "replay took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn the_fixture_replays_and_its_crcs_are_computed_as_here() {
    let (mut img, recs) = setup();
    assert!(replay(img.clone()).unwrap() > 0);
    for r in &recs {
        fix_crc(&mut img, r);
    }
    assert!(
        replay(img).unwrap() > 0,
        "recomputing the CRCs changed them"
    );
}

#[test]
fn a_damaged_record_is_a_checksum_mismatch() {
    let (mut img, recs) = setup();
    let r = &recs[recs.len() / 2];
    img[r.at + r.hblks * BB + 100] ^= 0x40;
    match replay(img) {
        Err(Error::ChecksumMismatch { structure, .. }) => assert_eq!(structure, "log record"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_record_headers_are_refused_with_the_reason() {
    let (img, recs) = setup();
    // The last record: always between the tail and the head.
    let r = recs.last().unwrap();
    for (off, value, want) in [
        (40usize, u32::MAX, "corrupt XFS log transaction"), // h_num_logops
        (12, 1 << 30, "exceeds its size"),                  // h_len
        (8, 7, "unknown record version"),                   // h_version
        (20, 12345, "stale record"),                        // block of h_lsn
    ] {
        let mut bad = img.clone();
        bad[r.at + off..r.at + off + 4].copy_from_slice(&value.to_be_bytes());
        fix_crc(
            &mut bad,
            &Rec {
                len: r.len.min(1 << 18),
                ..*r
            },
        );
        let e = replay(bad).expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_damage_behind_matching_crcs_gives_errors_not_panics() {
    let (img, recs) = setup();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut failed, mut replayed) = (0, 0);
    // Each round copies the 300 MB image: a few dozen rounds stay quick.
    for _ in 0..60 {
        let mut bad = img.clone();
        let r = &recs[(rng.next() as usize) % recs.len()];
        let d = r.at + r.hblks * BB;
        for _ in 0..1 + rng.next() % 4 {
            // Skip the cycle words: damage there moves the head instead.
            let mut o = (rng.next() as usize) % r.len;
            if o % BB < 4 {
                o += 4;
            }
            bad[d + o.min(r.len - 1)] = rng.next() as u8;
        }
        fix_crc(&mut bad, r);
        match replay(bad) {
            Ok(_) => replayed += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "no damage was noticed ({replayed} replayed)");
}

/// The last buffer item of the log, retyped (an intent without its done
/// item, a quota item, an unknown type), with the record's CRC made to match:
/// the replay refuses by name rather than skipping what it does not do.
#[test]
fn items_the_replay_does_not_do_are_refused_by_name() {
    let (img, recs) = setup();
    let bytes = &img;
    // The type of the last buffer item whose first word is no cycle stamp.
    let (r, at) = recs
        .iter()
        .flat_map(|r| {
            let d = r.at + r.hblks * BB;
            (12..r.len.saturating_sub(2))
                .filter(move |o| {
                    o % BB >= 4
                        && bytes[d + o..d + o + 2] == [0x3c, 0x12]
                        && bytes[d + o - 4] == 0x69
                })
                .map(move |o| (r, d + o))
        })
        .last()
        .expect("a buffer item");
    for (kind, want) in [
        (0x1236u16, "unfinished intent(s) (extent free (EFI))"),
        (
            0x1242,
            "unfinished intent(s) (reference count update (CUI))",
        ),
        (0x123d, "quota items"),
        (0x1299, "log item type 0x1299"),
    ] {
        let mut bad = img.clone();
        bad[at..at + 2].copy_from_slice(&kind.to_le_bytes());
        fix_crc(&mut bad, r);
        let e = replay(bad).expect_err(want);
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
}

/// The v5 rule: an item whose block on disk carries a newer LSN is not
/// replayed. The AGF of AG 0 (sector 1) is logged in the fixture's log; with
/// a newer LSN written into it (and its CRC fixed) the replay leaves it as it
/// is on disk, and says it skipped an item.
#[test]
fn a_block_newer_than_its_log_item_is_not_replayed() {
    let (img, _) = setup();
    let before = Xfs::open(MemDisk::new(img.clone()))
        .unwrap()
        .replay_log()
        .unwrap()
        .unwrap();
    assert_eq!(before.skipped_newer, 0);
    assert!(
        before.sectors.contains_key(&512),
        "the log replays no AGF of AG 0"
    );
    let mut newer = img.clone();
    let agf = &mut newer[512..1024];
    assert_eq!(&agf[..4], b"XAGF");
    agf[208..216].copy_from_slice(&0x7fff_ffff_0000_0000u64.to_be_bytes());
    let mut c = agf.to_vec();
    c[216..220].fill(0);
    let crc = crc32c::crc32c(&c);
    agf[216..220].copy_from_slice(&crc.to_le_bytes());
    let agf_on_disk = agf.to_vec();
    let after = Xfs::open(MemDisk::new(newer))
        .unwrap()
        .replay_log()
        .unwrap()
        .unwrap();
    assert!(after.skipped_newer > 0);
    assert!(
        after.sectors.get(&512).is_none_or(|s| *s == agf_on_disk),
        "the newer AGF was replayed over"
    );
}

/// Damage anywhere in the log's blocks, cycle words and headers included
/// (CRCs left as they are, so the head and the tail may move): the replay
/// returns, with a replay or a reason.
#[test]
fn random_damage_anywhere_in_the_log_gives_errors_not_panics() {
    let (img, recs) = setup();
    let first = recs[0].at;
    let last = recs.last().unwrap();
    let end = last.at + (last.hblks + last.len.div_ceil(BB)) * BB;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..30 {
        let mut bad = img.clone();
        for _ in 0..1 + rng.next() % 8 {
            let o = first + (rng.next() as usize) % (end - first);
            // Every other round hits a block's first word (cycle or magic).
            let o = if round % 2 == 0 {
                o - o % BB + (rng.next() as usize) % 8
            } else {
                o
            };
            bad[o] = rng.next() as u8;
        }
        if let Err(e) = replay(bad) {
            assert!(!e.to_string().is_empty());
        }
    }
}
