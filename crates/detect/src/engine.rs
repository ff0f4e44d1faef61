//! The streaming engine: one Aho-Corasick pass over the bytes finds anchors, and only
//! around an anchor does a validator run, on a bounded window. Streams of any size
//! are scanned in fixed memory; the window a validator sees never depends on how the
//! stream was cut into reads, so results are identical however the bytes arrive.

use std::collections::HashSet;
use std::io::{ErrorKind, Read};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use zeroize::Zeroize;

use crate::finding::{Finding, Fingerprint};
use crate::gate::{BLOCK, GateBuf, RUN, run_starts_in};
use crate::id::{DETECTOR_COUNT, DetectorId, Operation};
use crate::rules::{ANCHORS, GATED_GROUP, GROUPS, Rule, TEXT_GROUP};
use crate::window::{Ctx, Hit, LOOKAHEAD, LOOKBEHIND, Scratch, Window};

/// Bytes consumed per refill of a streamed scan (public so tests can put secrets
/// across refill boundaries). Large enough that keeping the
/// look-behind/look-ahead overlap (80 KiB) costs little, small enough to stay in L2/L3.
pub const CHUNK: usize = 1 << 20;
/// How many recent spans are remembered to drop a secret seen from two anchors.
const RECENT: usize = 64;
/// The scan buffer: look-behind + look-ahead + one chunk.
pub const BUFFER: usize = LOOKBEHIND + LOOKAHEAD + CHUNK;

/// Which detectors run, which fingerprints are allowed, how fingerprints are keyed.
#[derive(Clone, Debug)]
pub struct Config {
    enabled: [bool; DETECTOR_COUNT],
    allowed: HashSet<Fingerprint>,
    fingerprint_key: [u8; 32],
    max_findings: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: [true; DETECTOR_COUNT],
            allowed: HashSet::new(),
            fingerprint_key: blake3::derive_key("vmscrub-detect fingerprint v1", b""),
            max_findings: 4096,
        }
    }
}

impl Config {
    /// Every detector on, the public default fingerprint key.
    pub fn new() -> Self {
        Config::default()
    }

    /// Turns one detector off.
    pub fn disable(mut self, d: DetectorId) -> Self {
        self.enabled[d.index()] = false;
        self
    }

    /// Turns one detector on.
    pub fn enable(mut self, d: DetectorId) -> Self {
        self.enabled[d.index()] = true;
        self
    }

    /// Turns every detector of an operation off.
    pub fn disable_operation(mut self, op: Operation) -> Self {
        for &d in DetectorId::ALL.iter().filter(|d| d.operation() == op) {
            self.enabled[d.index()] = false;
        }
        self
    }

    /// Turns every detector of an operation on.
    pub fn enable_operation(mut self, op: Operation) -> Self {
        for &d in DetectorId::ALL.iter().filter(|d| d.operation() == op) {
            self.enabled[d.index()] = true;
        }
        self
    }

    /// Secrets with this fingerprint are not reported (a known public test key).
    pub fn allow(mut self, fp: Fingerprint) -> Self {
        self.allowed.insert(fp);
        self
    }

    /// Keys fingerprints with a private key. The default key is public, which keeps
    /// fingerprints comparable across machines but lets anyone test a guessed
    /// password against a reported fingerprint.
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.fingerprint_key = key;
        self
    }

    /// At most this many findings per stream (a hostile file full of tokens must not
    /// grow memory without bound); later ones set [`Scan::truncated`].
    pub fn max_findings(mut self, n: usize) -> Self {
        self.max_findings = n;
        self
    }
}

/// Errors building a detector set.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("building the anchor prefilter: {0}")]
    Prefilter(#[from] aho_corasick::BuildError),
}

/// Errors scanning a stream.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("reading the stream at byte {offset}: {source}")]
    Read {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

/// The result of scanning one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Findings, ordered by offset.
    pub findings: Vec<Finding>,
    /// Findings dropped because their fingerprint is allowed.
    pub allowed: usize,
    /// More than `max_findings` were found; the rest were not recorded.
    pub truncated: bool,
    /// Bytes scanned.
    pub bytes: u64,
}

/// One prefilter automaton and the rule of each of its patterns.
#[derive(Debug)]
struct Group {
    ac: AhoCorasick,
    rules: Vec<Rule>,
    /// Every rule of the group reads a text syntax (`key = value`, a URL): a
    /// stream whose head holds a NUL byte skips the pass.
    text_only: bool,
    /// Searched only in blocks where a run of token characters starts (gate.rs).
    gated: bool,
}

/// The compiled detectors: built once, shared by every thread (`Send + Sync`).
#[derive(Debug)]
pub struct DetectorSet {
    groups: Vec<Group>,
    max_anchor: usize,
    /// Whether any head rule's detector is enabled.
    head_rules: bool,
    enabled: [bool; DETECTOR_COUNT],
    allowed: HashSet<Fingerprint>,
    key: [u8; 32],
    max_findings: usize,
}

impl DetectorSet {
    /// Builds the prefilter over the anchors of the enabled detectors.
    pub fn new(config: Config) -> Result<DetectorSet, BuildError> {
        let active: Vec<(&[u8], Rule, u8)> = ANCHORS
            .iter()
            .copied()
            .filter(|(_, r, _)| r.detectors().iter().any(|d| config.enabled[d.index()]))
            .collect();
        let mut groups = Vec::new();
        for g in 0..GROUPS {
            let members: Vec<_> = active.iter().filter(|a| a.2 == g).collect();
            if members.is_empty() {
                continue;
            }
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(members.iter().map(|(a, _, _)| a))?;
            groups.push(Group {
                ac,
                rules: members.iter().map(|m| m.1).collect(),
                text_only: g == TEXT_GROUP,
                gated: g == GATED_GROUP,
            });
        }
        Ok(DetectorSet {
            groups,
            max_anchor: active.iter().map(|(a, _, _)| a.len()).max().unwrap_or(1),
            head_rules: HEAD_DETECTORS.iter().any(|d| config.enabled[d.index()]),
            enabled: config.enabled,
            allowed: config.allowed,
            key: config.fingerprint_key,
            max_findings: config.max_findings,
        })
    }

    /// Every detector on, default settings.
    pub fn with_defaults() -> Result<DetectorSet, BuildError> {
        DetectorSet::new(Config::default())
    }

    /// Whether a detector runs in this set.
    pub fn is_enabled(&self, d: DetectorId) -> bool {
        self.enabled[d.index()]
    }

    /// Scans bytes already in memory (no copy).
    pub fn scan_bytes(&self, scanner: &mut Scanner, data: &[u8]) -> Scan {
        let mut st = State::default();
        self.process(&mut scanner.scratch, &mut st, data, true);
        st.finish(data.len() as u64)
    }

    /// Scans a reader to its end in bounded memory.
    pub fn scan_reader<R: Read>(
        &self,
        scanner: &mut Scanner,
        mut reader: R,
    ) -> Result<Scan, ScanError> {
        let mut st = State::default();
        scanner.ensure_buffer();
        let mut filled = 0usize;
        loop {
            let mut eof = false;
            while filled < BUFFER {
                match reader.read(&mut scanner.buf[filled..BUFFER]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n.min(BUFFER - filled),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(source) => {
                        let offset = st.base + filled as u64;
                        scanner.wipe_used(filled);
                        return Err(ScanError::Read { offset, source });
                    }
                }
            }
            self.process(&mut scanner.scratch, &mut st, &scanner.buf[..filled], eof);
            if eof || st.truncated {
                let total = st.base + filled as u64;
                return Ok(st.finish(total));
            }
            filled = scanner.compact(&mut st, filled);
        }
    }

    /// A push-style scan, for callers that get the bytes in pieces (file extents).
    pub fn stream<'a>(&'a self, scanner: &'a mut Scanner) -> Stream<'a> {
        scanner.ensure_buffer();
        Stream {
            set: self,
            scanner,
            st: State::default(),
            filled: 0,
        }
    }

    /// Validates every anchor that starts in `hay[st.scanned..ready]`.
    fn process(&self, scratch: &mut Scratch, st: &mut State, hay: &[u8], eof: bool) {
        let ready = if eof {
            hay.len()
        } else {
            hay.len().saturating_sub(LOOKAHEAD)
        };
        if !st.head_done {
            st.head_done = true;
            st.binary = is_binary(hay);
            self.head(scratch, st, hay, eof);
        }
        if ready <= st.scanned {
            return;
        }
        if !self.groups.is_empty() {
            let hay_end = if eof {
                hay.len()
            } else {
                (ready + self.max_anchor - 1).min(hay.len())
            };
            // Candidates of every group, validated in stream order.
            st.cands.clear();
            for g in self.groups.iter().filter(|g| !(g.text_only && st.binary)) {
                if g.gated {
                    let ranges = gated_ranges(hay, st.scanned, ready, &mut scratch.gate);
                    for (from, to) in ranges {
                        let end = (to + self.max_anchor - 1).min(hay_end);
                        find(g, hay, from, end, to, &mut st.cands);
                    }
                } else {
                    find(g, hay, st.scanned, hay_end, ready, &mut st.cands);
                }
            }
            st.cands.sort_by_key(|c| c.0);
            let mut ctx = Ctx {
                fp_key: &self.key,
                scratch,
            };
            let cands = std::mem::take(&mut st.cands);
            for &(at, rule) in &cands {
                if st.truncated {
                    break;
                }
                let lo = at.saturating_sub(LOOKBEHIND);
                let hi = at.saturating_add(LOOKAHEAD).min(hay.len());
                let win = Window {
                    hay: &hay[lo..hi],
                    at: at - lo,
                };
                st.hits.clear();
                rule.validate(&win, &mut ctx, &mut st.hits);
                let hits = std::mem::take(&mut st.hits);
                for h in &hits {
                    self.record(st, h, lo);
                }
                st.hits = hits;
            }
            st.cands = cands;
        }
        st.scanned = ready;
    }

    /// The rules that judge a stream by its start (binary key containers) or, for a
    /// small file, as a whole (recovery keys): run once, on the first buffer, which
    /// holds the same bytes however the stream is read.
    fn head(&self, scratch: &mut Scratch, st: &mut State, hay: &[u8], eof: bool) {
        if !self.head_rules {
            return;
        }
        let first = &hay[..hay.len().min(BUFFER)];
        let whole = eof && hay.len() <= BUFFER;
        let mut ctx = Ctx {
            fp_key: &self.key,
            scratch,
        };
        st.hits.clear();
        crate::containers::head(first, whole, &mut ctx, &mut st.hits);
        if whole {
            crate::recovery::whole(first, &mut ctx, &mut st.hits);
        }
        ctx.scratch.wipe();
        let hits = std::mem::take(&mut st.hits);
        for h in &hits {
            self.record(st, h, 0);
        }
        st.hits = hits;
    }

    fn record(&self, st: &mut State, h: &Hit, lo: usize) {
        if !self.enabled[h.detector.index()] {
            return;
        }
        let start = st.base + (lo + h.start) as u64;
        let end = st.base + (lo + h.end) as u64;
        // The same secret seen from a second anchor (a PEM END line, a repeated key
        // name) overlaps an earlier report: keep one. Spans do not arrive in order
        // (a kubeconfig `users:` section reports lines after a later anchor), so
        // compare with the recent spans rather than a high-water mark.
        if st
            .recent
            .iter()
            .any(|&(d, s, e)| d == h.detector && start < e && s < end)
        {
            return;
        }
        if st.recent.len() == RECENT {
            st.recent.remove(0);
        }
        st.recent.push((h.detector, start, end));
        if self.allowed.contains(&h.fingerprint) {
            st.allowed += 1;
            return;
        }
        if st.findings.len() >= self.max_findings {
            st.truncated = true;
            return;
        }
        st.findings.push(Finding {
            detector: h.detector,
            offset: start,
            len: end - start,
            value: h
                .value
                .as_ref()
                .map(|r| st.base + (lo + r.start) as u64..st.base + (lo + r.end) as u64),
            fingerprint: h.fingerprint,
            why: h.why.clone(),
        });
    }
}

#[derive(Default)]
struct State {
    /// Stream offset of the buffer's first byte.
    base: u64,
    /// Anchors starting before this buffer index have been handled.
    scanned: usize,
    findings: Vec<Finding>,
    recent: Vec<(DetectorId, u64, u64)>,
    allowed: usize,
    truncated: bool,
    hits: Vec<Hit>,
    cands: Vec<(usize, Rule)>,
    /// The head rules have run.
    head_done: bool,
    /// The stream's head holds a NUL byte: text-only groups are skipped.
    binary: bool,
}

impl State {
    fn finish(mut self, bytes: u64) -> Scan {
        self.findings.sort_by_key(|f| (f.offset, f.detector));
        drop_generic_overlaps(&mut self.findings);
        Scan {
            findings: self.findings,
            allowed: self.allowed,
            truncated: self.truncated,
            bytes,
        }
    }
}

/// Candidates of one group: matches in `hay[from..end]` that start before `before`.
fn find(
    g: &Group,
    hay: &[u8],
    from: usize,
    end: usize,
    before: usize,
    out: &mut Vec<(usize, Rule)>,
) {
    for m in g.ac.find_iter(Input::new(hay).span(from..end)) {
        if m.start() >= before {
            break;
        }
        out.push((m.start(), g.rules[m.pattern().as_usize()]));
    }
}

/// The ranges of `hay[from..ready]` the gated group must search: consecutive
/// [`BLOCK`]s in which a run of [`RUN`] token characters starts, merged. A run may
/// end up to `RUN - 1` bytes past `ready` (the look-ahead keeps them in `hay`).
fn gated_ranges(hay: &[u8], from: usize, ready: usize, buf: &mut GateBuf) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut b = from;
    // Each step advances by at least one byte (`b < ready`), at most hay.len() steps.
    while b < ready {
        let e = (b + BLOCK).min(ready);
        let seg = &hay[b..(e + RUN - 1).min(hay.len())];
        if run_starts_in(seg, e - b, buf) {
            match ranges.last_mut() {
                Some(last) if last.1 == b => last.1 = e,
                _ => ranges.push((b, e)),
            }
        }
        b = e;
    }
    ranges
}

/// How much of a stream's head is looked at for a NUL byte, as git and grep do to
/// tell binary files from text.
const BINARY_PROBE: usize = 8 << 10;

/// Whether a stream is binary: a NUL byte in its first [`BINARY_PROBE`] bytes. The
/// first buffer is the same however the stream is read, so the verdict is too.
fn is_binary(head: &[u8]) -> bool {
    memchr::memchr(0, &head[..head.len().min(BINARY_PROBE)]).is_some()
}

/// Detectors whose rules run on the head of a stream rather than at an anchor.
const HEAD_DETECTORS: &[DetectorId] = &[
    DetectorId::KeepassDatabase,
    DetectorId::JavaKeystore,
    DetectorId::Pkcs12PrivateKey,
    DetectorId::PgpPrivateKey,
    DetectorId::DerPrivateKey,
    DetectorId::RecoveryKey,
];

/// A `secret-assignment` whose span overlaps a finding of a specific detector (an
/// `AWS_SECRET_ACCESS_KEY=` line of an AWS pair, `GITHUB_TOKEN=ghp_…`, a kubeconfig
/// `token:`) says less about the same secret: keep the specific one only.
fn drop_generic_overlaps(findings: &mut Vec<Finding>) {
    let generic = |f: &Finding| f.detector == DetectorId::SecretAssignment;
    if !findings.iter().any(generic) {
        return;
    }
    let specific: Vec<(u64, u64)> = findings
        .iter()
        .filter(|f| !generic(f))
        .map(|f| (f.offset, f.offset + f.len))
        .collect();
    findings.retain(|f| {
        !generic(f)
            || !specific
                .iter()
                .any(|&(s, e)| s < f.offset + f.len && f.offset < e)
    });
}

/// Per-thread scan buffers. Create one per thread and reuse it for every stream;
/// file bytes and decoded key material in it are wiped when it is dropped.
#[derive(Default)]
pub struct Scanner {
    buf: Vec<u8>,
    scratch: Scratch,
}

impl Scanner {
    pub fn new() -> Self {
        Scanner::default()
    }

    fn ensure_buffer(&mut self) {
        if self.buf.len() < BUFFER {
            self.buf = vec![0; BUFFER];
        }
    }

    /// Drops what no anchor can still need; returns the new fill level.
    fn compact(&mut self, st: &mut State, filled: usize) -> usize {
        let drop = st.scanned.saturating_sub(LOOKBEHIND);
        self.buf.copy_within(drop..filled, 0);
        st.scanned -= drop;
        st.base += drop as u64;
        filled - drop
    }

    fn wipe_used(&mut self, filled: usize) {
        if let Some(b) = self.buf.get_mut(..filled) {
            b.zeroize();
        }
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("buffer", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// A push-style scan in progress: `push` the bytes in order, then `finish`.
pub struct Stream<'a> {
    set: &'a DetectorSet,
    scanner: &'a mut Scanner,
    st: State,
    filled: usize,
}

impl Stream<'_> {
    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.st.truncated {
            let n = (BUFFER - self.filled).min(data.len());
            self.scanner.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BUFFER {
                self.set.process(
                    &mut self.scanner.scratch,
                    &mut self.st,
                    &self.scanner.buf[..self.filled],
                    false,
                );
                self.filled = self.scanner.compact(&mut self.st, self.filled);
            }
        }
    }

    /// Ends the stream and returns what was found.
    pub fn finish(mut self) -> Scan {
        let filled = self.filled;
        self.set.process(
            &mut self.scanner.scratch,
            &mut self.st,
            &self.scanner.buf[..filled],
            true,
        );
        let total = self.st.base + filled as u64;
        std::mem::take(&mut self.st).finish(total)
    }
}
