//! `ArchiveWriter`: the streaming writer the scrub side feeds one removed file at a
//! time. Memory is constant in the content size (a 64 KiB copy buffer, one cipher
//! chunk, zstd's window); only the manifest (one record per entry) grows with the
//! number of entries. Plaintext goes from the caller's reader through tar framing,
//! zstd and AES-GCM straight to the output: never to a temporary file.

use std::collections::HashSet;
use std::io::{Read, Write};

use rand_core::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::acl;
use crate::entry::{DeviceKind, Metadata, Segment, normalize_path};
use crate::envelope::{ArchiveFormat, Sealer};
use crate::error::{Error, Result, display_path};
use crate::header::{DEFAULT_CHUNK_SIZE, Header, RECIPIENT_RSA_OAEP_SHA256, RecipientEntry};
use crate::keys::Recipient;
use crate::manifest::{FORMAT, FileRecord, ImageInfo, Manifest, hex, path_record, rfc3339};
use crate::pax::{Records, format_time};
use crate::stream::EncryptWriter;
use crate::ustar::{self, BLOCK, Fields, octal_max};

const COPY_BUF: usize = 64 * 1024;
static ZEROS: [u8; COPY_BUF] = [0; COPY_BUF];

/// Tuning knobs. `vmscrub scrub` sets the format (`ArchiveFormat::for_recipients`
/// unless told), zstd level 1 and a worker per core.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The envelope.
    pub format: ArchiveFormat,
    /// Plaintext bytes per AEAD chunk (v1 only: age's chunks are 64 KiB).
    pub chunk_size: u32,
    /// zstd level (1–19).
    pub zstd_level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    pub zstd_workers: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            format: ArchiveFormat::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            zstd_level: 3,
            zstd_workers: 0,
        }
    }
}

/// What the scrub knows about the run, recorded in the manifest.
#[derive(Clone, Debug, Default)]
pub struct ArchiveInfo {
    pub image: ImageInfo,
    pub vmscrub_version: String,
    pub operations: Vec<String>,
    pub created: Option<std::time::SystemTime>,
}

/// Encrypts an existing tar stream as a recovery archive payload, unchanged. The
/// scrub uses [`ArchiveWriter`]; this is for re-encrypting a tar an owner already
/// has, and lets tests build archives whose tar is hostile (`../x`, absolute
/// paths), which `ArchiveWriter` refuses to write.
pub fn encrypt_tar<W: Write>(
    out: W,
    recipients: &[Recipient],
    opts: &WriterOptions,
    tar: &mut dyn Read,
) -> Result<W> {
    let mut z = start_payload(out, recipients, opts)?;
    std::io::copy(tar, &mut z)?;
    let enc = z.finish()?;
    enc.finish()
}

/// Header with a fresh key wrapped for every recipient, then the zstd encoder over
/// the chunk encryptor of the chosen envelope.
fn start_payload<W: Write>(
    out: W,
    recipients: &[Recipient],
    opts: &WriterOptions,
) -> Result<zstd::stream::write::Encoder<'static, Sealer<W>>> {
    if recipients.is_empty() {
        return Err(Error::Recipient(
            "a recovery archive needs at least one recipient public key".into(),
        ));
    }
    let sealer = match opts.format {
        ArchiveFormat::V1 => Sealer::V1(Box::new(start_v1(out, recipients, opts)?)),
        ArchiveFormat::Age => Sealer::Age(crate::age_stream::seal(out, recipients)?),
    };
    let mut z = zstd::stream::write::Encoder::new(sealer, opts.zstd_level)?;
    if opts.zstd_workers > 0 {
        z.multithread(opts.zstd_workers)?;
    }
    Ok(z)
}

/// The v1 header (a fresh data key RSA-OAEP-wrapped for every recipient) and the
/// AES-GCM chunk encryptor.
fn start_v1<W: Write>(
    mut out: W,
    recipients: &[Recipient],
    opts: &WriterOptions,
) -> Result<EncryptWriter<W>> {
    let mut rng = rand_core::OsRng;
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut *key);
    let mut nonce_prefix = [0u8; 7];
    rng.fill_bytes(&mut nonce_prefix);
    let entries = recipients
        .iter()
        .map(|r| {
            Ok(RecipientEntry {
                kind: RECIPIENT_RSA_OAEP_SHA256,
                fingerprint: r.fingerprint(),
                wrapped: r.wrap(&*key)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let header = Header::new(opts.chunk_size, nonce_prefix, entries)?;
    out.write_all(header.as_bytes())?;
    Ok(EncryptWriter::new(
        out,
        &key,
        &nonce_prefix,
        opts.chunk_size,
        header.aad(),
    ))
}

/// Streams removed files into an encrypted recovery archive.
pub struct ArchiveWriter<W: Write> {
    out: Option<zstd::stream::write::Encoder<'static, Sealer<W>>>,
    manifest: Manifest,
    /// Non-directory paths written so far: hard links may only point back to these.
    linkable: HashSet<Vec<u8>>,
    /// Set when a member was left half-written; every later call fails.
    poisoned: bool,
    /// The last regular file (or else directory) written, re-referenced after the
    /// manifest: see `finish`.
    anchor: Option<(Vec<u8>, Metadata, bool)>,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes the header (a fresh data key wrapped for every recipient) and starts
    /// the payload. At least one recipient is required.
    pub fn new(
        out: W,
        recipients: &[Recipient],
        info: ArchiveInfo,
        opts: &WriterOptions,
    ) -> Result<Self> {
        let z = start_payload(out, recipients, opts)?;
        let manifest = Manifest {
            format: FORMAT.to_string(),
            vmscrub_version: info.vmscrub_version,
            created: rfc3339(info.created.unwrap_or_else(std::time::SystemTime::now)),
            image: info.image,
            operations: info.operations,
            files: Vec::new(),
        };
        Ok(ArchiveWriter {
            out: Some(z),
            manifest,
            linkable: HashSet::new(),
            poisoned: false,
            anchor: None,
        })
    }

    fn sink(&mut self) -> Result<&mut zstd::stream::write::Encoder<'static, Sealer<W>>> {
        if self.poisoned {
            return Err(Error::Other(
                "the recovery archive is unusable after an earlier error".into(),
            ));
        }
        self.out
            .as_mut()
            .ok_or_else(|| Error::Other("archive already finished".into()))
    }

    /// Guards a multi-step write: any error leaves the archive poisoned.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.sink()?;
        let r = f(self);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// A regular file of `size` bytes read from `content`. Returns its SHA-256.
    pub fn add_file(
        &mut self,
        path: &[u8],
        meta: &Metadata,
        operation: &str,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<[u8; 32]> {
        let path = normalize_path(path)?;
        let mut rec = base_records(&path, meta, None)?;
        let fields = self.fields(&path, meta, ustar::TYPE_FILE, size, &mut rec)?;
        let digest = self.guarded(|w| {
            w.write_member_header(&path, &fields, &rec)?;
            let mut hasher = Sha256::new();
            w.copy_exact(&path, content, size, &mut hasher)?;
            w.pad(size)?;
            Ok(<[u8; 32]>::from(hasher.finalize()))
        })?;
        self.record(&path, "file", size, Some(&digest), operation, true);
        self.anchor = Some((path, meta.clone(), false));
        Ok(digest)
    }

    /// A sparse file of logical `size`; `data` yields the bytes of `segments`
    /// (sorted, non-overlapping) back to back. Stored as a GNU pax sparse 1.0
    /// member, which GNU tar and Python's `tarfile` extract with holes. Returns the
    /// SHA-256 of the logical content (holes hashed as zeros).
    pub fn add_sparse_file(
        &mut self,
        path: &[u8],
        meta: &Metadata,
        operation: &str,
        size: u64,
        segments: &[Segment],
        data: &mut dyn Read,
    ) -> Result<[u8; 32]> {
        let path = normalize_path(path)?;
        let stored_segments = normalize_sparse(size, segments).map_err(|why| Error::Entry {
            path: display_path(&path),
            why,
        })?;
        let stored: u64 = stored_segments.iter().map(|s| s.len).sum();
        let mut map: Vec<Segment> = stored_segments.clone();
        let end = map.last().map_or(0, |s| s.offset + s.len);
        if end < size || map.is_empty() {
            // GNU tar marks a trailing hole with a zero-length segment at the end.
            map.push(Segment {
                offset: size,
                len: 0,
            });
        }
        let mut map_text = format!("{}\n", map.len()).into_bytes();
        for s in &map {
            map_text.extend_from_slice(format!("{}\n{}\n", s.offset, s.len).as_bytes());
        }
        let map_padded = map_text.len() + ustar::padding(map_text.len() as u64);
        map_text.resize(map_padded, 0);
        let member_size = map_padded as u64 + stored;

        let mut rec = base_records(&path, meta, Some(()))?;
        rec.push("GNU.sparse.major", "1");
        rec.push("GNU.sparse.minor", "0");
        rec.push("GNU.sparse.name", &path);
        rec.push("GNU.sparse.realsize", size.to_string());
        let base = path.rsplit(|&b| b == b'/').next().unwrap_or(&path);
        let mut fake = b"GNUSparseFile.0/".to_vec();
        fake.extend_from_slice(base);
        fake.truncate(100);
        let fields = self.fields(&fake, meta, ustar::TYPE_FILE, member_size, &mut rec)?;
        let digest = self.guarded(|w| {
            w.write_member_header(&fake, &fields, &rec)?;
            w.sink()?.write_all(&map_text)?;
            let mut hasher = Sha256::new();
            let mut pos = 0u64;
            let mut given = segments.iter().filter(|g| g.len > 0).peekable();
            for st in &stored_segments {
                hash_zeros(&mut hasher, st.offset - pos);
                pos = st.offset;
                let st_end = st.offset + st.len;
                // Inside a stored segment: the caller's bytes where it gave some,
                // zeros in the bits of hole that alignment pulled in.
                while let Some(g) = given.peek().copied().filter(|g| g.offset < st_end) {
                    w.zeros(&mut hasher, g.offset - pos)?;
                    w.copy_exact(&path, data, g.len, &mut hasher)?;
                    pos = g.offset + g.len;
                    given.next();
                }
                w.zeros(&mut hasher, st_end - pos)?;
                pos = st_end;
            }
            hash_zeros(&mut hasher, size - pos);
            w.pad(member_size)?;
            Ok(<[u8; 32]>::from(hasher.finalize()))
        })?;
        self.record(&path, "sparse", size, Some(&digest), operation, true);
        self.anchor = Some((path, meta.clone(), false));
        Ok(digest)
    }

    pub fn add_dir(&mut self, path: &[u8], meta: &Metadata, operation: &str) -> Result<()> {
        let path = normalize_path(path)?;
        let mut name = path.clone();
        name.push(b'/');
        let mut rec = base_records(&name, meta, None)?;
        let fields = self.fields(&name, meta, ustar::TYPE_DIR, 0, &mut rec)?;
        self.guarded(|w| w.write_member_header(&name, &fields, &rec))?;
        self.record(&path, "dir", 0, None, operation, false);
        if self.anchor.as_ref().is_none_or(|a| a.2) {
            self.anchor = Some((path, meta.clone(), true));
        }
        Ok(())
    }

    /// A symlink; `target` is stored verbatim (absolute targets are normal in an
    /// image and stay absolute).
    pub fn add_symlink(
        &mut self,
        path: &[u8],
        meta: &Metadata,
        operation: &str,
        target: &[u8],
    ) -> Result<()> {
        let path = normalize_path(path)?;
        if target.is_empty() || target.contains(&0) {
            return Err(Error::Entry {
                path: display_path(&path),
                why: "symlink target is empty or contains NUL".into(),
            });
        }
        self.link_member(&path, meta, ustar::TYPE_SYMLINK, target)?;
        self.record(&path, "symlink", 0, None, operation, true);
        Ok(())
    }

    /// A second name for `target`, which must already be in this archive (tar
    /// restores hard links by linking to the earlier member).
    pub fn add_hardlink(
        &mut self,
        path: &[u8],
        meta: &Metadata,
        operation: &str,
        target: &[u8],
    ) -> Result<()> {
        let path = normalize_path(path)?;
        let target = normalize_path(target)?;
        if !self.linkable.contains(&target) {
            return Err(Error::Entry {
                path: display_path(&path),
                why: format!(
                    "hard link to {:?}, which is not an earlier non-directory entry of the archive",
                    display_path(&target)
                ),
            });
        }
        self.link_member(&path, meta, ustar::TYPE_HARDLINK, &target)?;
        self.record(&path, "hardlink", 0, None, operation, true);
        Ok(())
    }

    pub fn add_device(
        &mut self,
        path: &[u8],
        meta: &Metadata,
        operation: &str,
        kind: DeviceKind,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        let path = normalize_path(path)?;
        if u64::from(major) > octal_max(8) || u64::from(minor) > octal_max(8) {
            return Err(Error::Entry {
                path: display_path(&path),
                why: format!("device number {major}:{minor} does not fit a tar header"),
            });
        }
        let (flag, name) = match kind {
            DeviceKind::Char => (ustar::TYPE_CHAR, "char"),
            DeviceKind::Block => (ustar::TYPE_BLOCK, "block"),
        };
        let mut rec = base_records(&path, meta, None)?;
        let mut fields = self.fields(&path, meta, flag, 0, &mut rec)?;
        fields.devmajor = u64::from(major);
        fields.devminor = u64::from(minor);
        self.guarded(|w| w.write_member_header(&path, &fields, &rec))?;
        self.record(&path, name, 0, None, operation, true);
        Ok(())
    }

    pub fn add_fifo(&mut self, path: &[u8], meta: &Metadata, operation: &str) -> Result<()> {
        let path = normalize_path(path)?;
        let mut rec = base_records(&path, meta, None)?;
        let fields = self.fields(&path, meta, ustar::TYPE_FIFO, 0, &mut rec)?;
        self.guarded(|w| w.write_member_header(&path, &fields, &rec))?;
        self.record(&path, "fifo", 0, None, operation, true);
        Ok(())
    }

    /// Writes the manifest and the end-of-archive blocks, seals the final chunk and
    /// returns the output. Without this the archive is truncated and unreadable.
    ///
    /// The manifest is a pax global header, which must be followed by a member
    /// (Python's `tarfile` fails on a global header right before the end). That
    /// member is a hard link from the last regular file to itself — a no-op for
    /// GNU tar (it accepts an existing link to the same name) and for `tarfile`
    /// (which rewrites the same content) — or, in an archive without regular
    /// files, the last directory's header again with the same metadata.
    pub fn finish(mut self) -> Result<W> {
        self.sink()?;
        let json = self.manifest.to_json()?;
        let mut rec = Records::default();
        rec.push("comment", &json);
        let data = rec.encode();
        let fields = Fields {
            name: b"vmscrub-manifest",
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            mtime: 0,
            typeflag: ustar::TYPE_PAX_GLOBAL,
            linkname: b"",
            uname: b"",
            gname: b"",
            devmajor: 0,
            devminor: 0,
        };
        let z = self
            .out
            .take()
            .ok_or_else(|| Error::Other("archive already finished".into()))?;
        let mut z = z;
        z.write_all(&ustar::encode(&fields))?;
        z.write_all(&data)?;
        z.write_all(&ZEROS[..ustar::padding(data.len() as u64)])?;
        self.out = Some(z);
        if let Some((path, meta, is_dir)) = self.anchor.take() {
            if is_dir {
                let mut name = path.clone();
                name.push(b'/');
                let mut rec = base_records(&name, &meta, None)?;
                let fields = self.fields(&name, &meta, ustar::TYPE_DIR, 0, &mut rec)?;
                self.write_member_header(&name, &fields, &rec)?;
            } else {
                self.link_member(&path, &meta, ustar::TYPE_HARDLINK, &path)?;
            }
        }
        let mut z = self
            .out
            .take()
            .ok_or_else(|| Error::Other("archive already finished".into()))?;
        z.write_all(&[0u8; 2 * BLOCK])?;
        let enc = z.finish()?;
        enc.finish()
    }

    /// The manifest so far (the scrub may want to report from it).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn record(
        &mut self,
        path: &[u8],
        kind: &str,
        size: u64,
        sha: Option<&[u8; 32]>,
        op: &str,
        linkable: bool,
    ) {
        let (p, p_hex) = path_record(path);
        self.manifest.files.push(FileRecord {
            path: p,
            path_hex: p_hex,
            kind: kind.to_string(),
            size,
            sha256: sha.map(|d| hex(d)),
            operation: op.to_string(),
        });
        if linkable {
            self.linkable.insert(path.to_vec());
        } else {
            self.linkable.remove(path);
        }
    }

    fn link_member(&mut self, path: &[u8], meta: &Metadata, flag: u8, target: &[u8]) -> Result<()> {
        let mut rec = base_records(path, meta, None)?;
        if target.len() > 100 {
            rec.push("linkpath", target);
        }
        let mut fields = self.fields(path, meta, flag, 0, &mut rec)?;
        fields.linkname = target;
        self.guarded(|w| w.write_member_header(path, &fields, &rec))
    }

    /// Fixed header fields, moving whatever does not fit into pax records.
    fn fields<'a>(
        &self,
        name: &'a [u8],
        meta: &'a Metadata,
        typeflag: u8,
        size: u64,
        rec: &mut Records,
    ) -> Result<Fields<'a>> {
        if meta.uid > octal_max(8) {
            rec.push("uid", meta.uid.to_string());
        }
        if meta.gid > octal_max(8) {
            rec.push("gid", meta.gid.to_string());
        }
        if size > octal_max(12) {
            rec.push("size", size.to_string());
        }
        let t = meta.mtime;
        if t.nanos >= 1_000_000_000 {
            return Err(Error::Entry {
                path: display_path(name),
                why: "mtime nanoseconds out of range".into(),
            });
        }
        let in_range = t.secs >= 0 && (t.secs as u64) <= octal_max(12);
        if t.nanos != 0 || !in_range {
            rec.push("mtime", format_time(t.secs, t.nanos));
        }
        let uname = meta.uname.as_deref().unwrap_or(b"");
        let gname = meta.gname.as_deref().unwrap_or(b"");
        if uname.len() > 31 {
            rec.push("uname", uname);
        }
        if gname.len() > 31 {
            rec.push("gname", gname);
        }
        Ok(Fields {
            name,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            size,
            mtime: if in_range { t.secs as u64 } else { 0 },
            typeflag,
            linkname: b"",
            uname: if uname.len() > 31 { b"" } else { uname },
            gname: if gname.len() > 31 { b"" } else { gname },
            devmajor: 0,
            devminor: 0,
        })
    }

    fn write_member_header(
        &mut self,
        name: &[u8],
        fields: &Fields<'_>,
        rec: &Records,
    ) -> Result<()> {
        let sink = self.sink()?;
        if !rec.is_empty() {
            let data = rec.encode();
            let base = name
                .split(|&b| b == b'/')
                .rfind(|c| !c.is_empty())
                .unwrap_or(b"x");
            let mut pax_name = b"PaxHeaders/".to_vec();
            pax_name.extend_from_slice(base);
            pax_name.truncate(100);
            let pax = Fields {
                name: &pax_name,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: data.len() as u64,
                mtime: fields.mtime,
                typeflag: ustar::TYPE_PAX,
                linkname: b"",
                uname: b"",
                gname: b"",
                devmajor: 0,
                devminor: 0,
            };
            sink.write_all(&ustar::encode(&pax))?;
            sink.write_all(&data)?;
            sink.write_all(&ZEROS[..ustar::padding(data.len() as u64)])?;
        }
        sink.write_all(&ustar::encode(fields))?;
        Ok(())
    }

    fn copy_exact(
        &mut self,
        path: &[u8],
        content: &mut dyn Read,
        size: u64,
        hasher: &mut Sha256,
    ) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; COPY_BUF]);
        let mut left = size;
        let sink = self.sink()?;
        while left > 0 {
            let want = left.min(COPY_BUF as u64) as usize;
            let n = match content.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(Error::Entry {
                        path: display_path(path),
                        why: format!("content ended after {} of {size} bytes", size - left),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            hasher.update(&buf[..n]);
            sink.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Writes (and hashes) `n` zero bytes of member data.
    fn zeros(&mut self, hasher: &mut Sha256, mut n: u64) -> Result<()> {
        let sink = self.sink()?;
        while n > 0 {
            let k = n.min(COPY_BUF as u64) as usize;
            hasher.update(&ZEROS[..k]);
            sink.write_all(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let n = ustar::padding(size);
        self.sink()?.write_all(&ZEROS[..n])?;
        Ok(())
    }
}

/// The segments as stored: GNU tar reads each stored segment as whole 512-byte
/// blocks while Python's `tarfile` reads them back to back, so the two agree only
/// if every segment but one reaching the end of the file is a multiple of 512
/// bytes. Segments are therefore widened to 512-byte boundaries (clamped to the
/// file size) and merged where they then touch; the widening is hole, stored as
/// zeros. Extents from a filesystem are block-aligned already, so in practice
/// nothing changes. Errors on unsorted, overlapping or out-of-range input.
pub fn normalize_sparse(
    size: u64,
    segments: &[Segment],
) -> std::result::Result<Vec<Segment>, String> {
    const B: u64 = BLOCK as u64;
    let mut out: Vec<Segment> = Vec::new();
    let mut prev_end = 0u64;
    for s in segments {
        let end = s
            .offset
            .checked_add(s.len)
            .filter(|&e| e <= size && s.offset >= prev_end)
            .ok_or("sparse segments overlap, are unsorted or pass the file size")?;
        prev_end = end;
        if s.len == 0 {
            continue;
        }
        let start = s.offset - s.offset % B;
        let end = end.div_ceil(B).saturating_mul(B).min(size);
        match out.last_mut() {
            Some(last) if last.offset + last.len >= start => {
                last.len = end.max(last.offset + last.len) - last.offset;
            }
            _ => out.push(Segment {
                offset: start,
                len: end - start,
            }),
        }
    }
    Ok(out)
}

fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(COPY_BUF as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// pax records every member may need: a long path (`sparse` members carry theirs
/// in `GNU.sparse.name` instead), xattrs and ACLs.
fn base_records(name: &[u8], meta: &Metadata, sparse: Option<()>) -> Result<Records> {
    let mut rec = Records::default();
    if sparse.is_none() && name.len() > 100 {
        rec.push("path", name);
    }
    for x in &meta.xattrs {
        if x.name.is_empty() || x.name.contains(&b'=') || x.name.contains(&0) {
            return Err(Error::Entry {
                path: display_path(name),
                why: format!("xattr name {:?} cannot be stored", display_path(&x.name)),
            });
        }
        let text = match x.name.as_slice() {
            acl::ACCESS_XATTR | acl::DEFAULT_XATTR => acl::to_text(&x.value),
            _ => None,
        };
        match (x.name.as_slice(), text) {
            (acl::ACCESS_XATTR, Some(t)) => rec.push("SCHILY.acl.access", t),
            (acl::DEFAULT_XATTR, Some(t)) => rec.push("SCHILY.acl.default", t),
            _ => {
                let mut k = b"SCHILY.xattr.".to_vec();
                k.extend_from_slice(&x.name);
                rec.push(k, &x.value);
            }
        }
    }
    Ok(rec)
}
