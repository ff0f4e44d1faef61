//! Opening an archive: header, key unwrap, the authenticated plaintext stream, and a
//! pax tar reader over it. Plaintext is handed out chunk by chunk as each chunk
//! verifies; whether the *whole* archive is authentic is known only at the end
//! (`TarReader::finish`, `decrypt_to`). Callers that write to disk must therefore
//! stage and commit only after that (see `extract.rs`, and `recover -o`).

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::acl;
use crate::entry::{DeviceKind, Entry, EntryKind, Metadata, Segment, Timestamp, Xattr};
use crate::envelope::{Envelope, Opened, open_envelope};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::keys::{Identity, format_fingerprint};
use crate::manifest::Manifest;
use crate::pax::{Records, parse_time, parse_u64};
use crate::stream::DecryptReader;
use crate::ustar::{self, BLOCK};

/// Bound on one pax header (the manifest is the largest: ~150 bytes per file).
const MAX_PAX: u64 = 256 * 1024 * 1024;
const MAX_SPARSE_SEGMENTS: u64 = 4 * 1024 * 1024;

pub type Payload<R> = zstd::stream::read::Decoder<'static, Opened<R>>;

/// Opens an archive in either envelope (told apart by its first bytes) with
/// `identity`; the payload is the authenticated zstd stream, decompressed.
pub fn open<R: Read>(input: R, identity: &Identity) -> Result<(Envelope, Payload<R>)> {
    let (envelope, opened) = open_envelope(input, identity)?;
    let z = zstd::stream::read::Decoder::with_buffer(opened)?;
    Ok((envelope, z))
}

/// The v1 envelope: reads the header and unwraps the data key with `identity`: the
/// entry whose fingerprint matches first, then every other entry (a key may have
/// been re-encoded, changing nothing but how it was found).
pub(crate) fn open_v1<R: Read>(
    mut input: R,
    identity: &Identity,
) -> Result<(Header, DecryptReader<R>)> {
    let header = Header::read(&mut input)?;
    let fp = identity.fingerprint();
    let mut order: Vec<usize> = (0..header.recipients.len())
        .filter(|&i| header.recipients[i].fingerprint == fp)
        .collect();
    let matched = !order.is_empty();
    order.extend((0..header.recipients.len()).filter(|&i| header.recipients[i].fingerprint != fp));
    let mut key: Option<Zeroizing<Vec<u8>>> = None;
    for i in order {
        if let Some(k) = identity.unwrap(&header.recipients[i].wrapped)
            && k.len() == 32
        {
            key = Some(k);
            break;
        }
    }
    let Some(key) = key else {
        return Err(if matched {
            Error::Header(format!(
                "the key entry for {} does not decrypt with this key: the entry was modified",
                format_fingerprint(&fp)
            ))
        } else {
            Error::NoMatchingRecipient {
                fingerprint: format_fingerprint(&fp),
                recipients: header.recipient_list(),
            }
        });
    };
    let dec = DecryptReader::new(
        input,
        &key,
        &header.nonce_prefix,
        header.chunk_size,
        header.aad(),
        header.as_bytes().len() as u64,
    )?;
    Ok((header, dec))
}

/// Decrypts the whole payload (the plain tar) into `out`. Returns the byte count
/// once the final chunk has authenticated; on any error, what was written to
/// `out` must be discarded.
pub fn decrypt_to<R: Read>(input: R, identity: &Identity, out: &mut dyn Write) -> Result<u64> {
    let (_, mut payload) = open(input, identity)?;
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut total = 0u64;
    loop {
        let n = match payload.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(e)),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    check_done(payload)?;
    Ok(total)
}

fn check_done<R: Read>(payload: Payload<R>) -> Result<()> {
    let mut opened = payload.finish();
    opened.check_end()
}

/// Walks the members of the decrypted tar.
pub struct TarReader<R: Read> {
    inner: Payload<R>,
    offset: u64,
    /// Stored bytes of the current member not yet read, and its padding.
    remaining: u64,
    pad: usize,
    manifest: Option<Manifest>,
    last_dir: Option<Entry>,
    ended: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: Payload<R>) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            pad: 0,
            manifest: None,
            last_dir: None,
            ended: false,
        }
    }

    fn read_exact_payload(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(Error::Tar(format!(
                        "payload ends inside a member at tar offset {}",
                        self.offset + got as u64
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io(e)),
            }
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact_payload(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK]> {
        let mut b = [0u8; BLOCK];
        self.read_exact_payload(&mut b)?;
        Ok(b)
    }

    fn read_member_data(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_PAX {
            return Err(Error::Tar(format!("{what} of {size} bytes is too large")));
        }
        let mut data = vec![0u8; size as usize];
        self.read_exact_payload(&mut data)?;
        self.skip(ustar::padding(size) as u64)?;
        Ok(data)
    }

    /// Reads the current member's stored bytes (for a sparse file: its segments
    /// back to back). Returns 0 at the member's end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let k = self.remaining.min(buf.len() as u64) as usize;
        self.read_exact_payload(&mut buf[..k])?;
        self.remaining -= k as u64;
        Ok(k)
    }

    /// The manifest, once the reader has passed it (after `next` returned `None`).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The next member, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.ended {
            return Ok(None);
        }
        let (rem, pad) = (self.remaining, self.pad);
        self.skip(rem)?;
        self.skip(pad as u64)?;
        self.remaining = 0;
        self.pad = 0;
        let mut pax = Records::default();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        for _ in 0..64 {
            let at = self.offset;
            let block = self.read_block()?;
            if ustar::is_zero(&block) {
                self.ended = true;
                return Ok(None);
            }
            let h = ustar::decode(&block, at)?;
            match h.typeflag {
                ustar::TYPE_PAX => {
                    let data = self.read_member_data(h.size, "pax header")?;
                    pax.list.extend(Records::decode(&data)?.list);
                    continue;
                }
                ustar::TYPE_PAX_GLOBAL => {
                    let data = self.read_member_data(h.size, "pax global header")?;
                    let g = Records::decode(&data)?;
                    if let Some(c) = g.get("comment")
                        && c.starts_with(b"{")
                    {
                        self.manifest = Some(Manifest::from_json(c)?);
                    }
                    continue;
                }
                ustar::TYPE_GNU_LONGNAME | ustar::TYPE_GNU_LONGLINK => {
                    let mut data = self.read_member_data(h.size, "GNU long name")?;
                    if let Some(end) = data.iter().position(|&b| b == 0) {
                        data.truncate(end);
                    }
                    if h.typeflag == ustar::TYPE_GNU_LONGNAME {
                        long_name = Some(data);
                    } else {
                        long_link = Some(data);
                    }
                    continue;
                }
                _ => {}
            }
            let entry = self.member(h, &block, pax, long_name, long_link)?;
            // The writer's trailing anchor (see `ArchiveWriter::finish`): a hard
            // link to itself, or a repeated directory header; neither is news.
            if let EntryKind::HardLink { target } = &entry.kind
                && *target == entry.path
            {
                pax = Records::default();
                long_name = None;
                long_link = None;
                continue;
            }
            if self.manifest.is_some()
                && entry.kind == EntryKind::Dir
                && self.last_dir.as_ref() == Some(&entry)
            {
                pax = Records::default();
                long_name = None;
                long_link = None;
                continue;
            }
            if entry.kind == EntryKind::Dir {
                self.last_dir = Some(entry.clone());
            }
            return Ok(Some(entry));
        }
        Err(Error::Tar("too many extended headers in a row".into()))
    }

    fn member(
        &mut self,
        h: ustar::Decoded,
        block: &[u8; BLOCK],
        pax: Records,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry> {
        let mut path = h.name.clone();
        if &block[257..263] == b"ustar\0" && block[345] != 0 {
            let end = block[345..500].iter().position(|&b| b == 0).unwrap_or(155);
            let mut p = block[345..345 + end].to_vec();
            p.push(b'/');
            p.extend_from_slice(&h.name);
            path = p;
        }
        if let Some(n) = long_name {
            path = n;
        }
        if let Some(p) = pax.get("path") {
            path = p.to_vec();
        }
        let mut link = long_link.unwrap_or(h.linkname.clone());
        if let Some(l) = pax.get("linkpath") {
            link = l.to_vec();
        }
        let mut meta = Metadata {
            mode: h.mode & 0o7777,
            uid: h.uid,
            gid: h.gid,
            uname: (!h.uname.is_empty()).then(|| h.uname.clone()),
            gname: (!h.gname.is_empty()).then(|| h.gname.clone()),
            mtime: Timestamp {
                secs: h.mtime,
                nanos: 0,
            },
            xattrs: Vec::new(),
        };
        let mut stored = h.size;
        for (k, v) in &pax.list {
            match k.as_slice() {
                b"uid" => meta.uid = parse_u64(v, "uid")?,
                b"gid" => meta.gid = parse_u64(v, "gid")?,
                b"uname" => meta.uname = Some(v.clone()),
                b"gname" => meta.gname = Some(v.clone()),
                b"size" => stored = parse_u64(v, "size")?,
                b"mtime" => {
                    let (secs, nanos) = parse_time(v)?;
                    meta.mtime = Timestamp { secs, nanos };
                }
                b"SCHILY.acl.access" => meta.xattrs.push(Xattr {
                    name: acl::ACCESS_XATTR.to_vec(),
                    value: acl::from_text(v)?,
                }),
                b"SCHILY.acl.default" => meta.xattrs.push(Xattr {
                    name: acl::DEFAULT_XATTR.to_vec(),
                    value: acl::from_text(v)?,
                }),
                k if k.starts_with(b"SCHILY.xattr.") => meta.xattrs.push(Xattr {
                    name: k[13..].to_vec(),
                    value: v.clone(),
                }),
                _ => {}
            }
        }
        let sparse =
            pax.get("GNU.sparse.major") == Some(b"1") && pax.get("GNU.sparse.minor") == Some(b"0");
        if sparse && let Some(n) = pax.get("GNU.sparse.name") {
            path = n.to_vec();
        }
        while path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        let (kind, size) = match h.typeflag {
            ustar::TYPE_FILE | 0 | ustar::TYPE_CONTIG if sparse => {
                let real = pax
                    .get("GNU.sparse.realsize")
                    .ok_or_else(|| Error::Tar("sparse member without GNU.sparse.realsize".into()))
                    .and_then(|v| parse_u64(v, "GNU.sparse.realsize"))?;
                let (segments, map_len) = self.read_sparse_map(stored, real)?;
                stored -= map_len;
                (EntryKind::Sparse { segments }, real)
            }
            ustar::TYPE_FILE | 0 | ustar::TYPE_CONTIG => (EntryKind::File, stored),
            ustar::TYPE_DIR => (EntryKind::Dir, 0),
            ustar::TYPE_SYMLINK => (EntryKind::Symlink { target: link }, 0),
            ustar::TYPE_HARDLINK => (EntryKind::HardLink { target: link }, 0),
            ustar::TYPE_CHAR | ustar::TYPE_BLOCK => {
                let major = u32::try_from(h.devmajor)
                    .map_err(|_| Error::Tar("device major too large".into()))?;
                let minor = u32::try_from(h.devminor)
                    .map_err(|_| Error::Tar("device minor too large".into()))?;
                let kind = if h.typeflag == ustar::TYPE_CHAR {
                    DeviceKind::Char
                } else {
                    DeviceKind::Block
                };
                (EntryKind::Device { kind, major, minor }, 0)
            }
            ustar::TYPE_FIFO => (EntryKind::Fifo, 0),
            t => {
                return Err(Error::Tar(format!(
                    "unsupported member type {:?} for {}",
                    t as char,
                    crate::error::display_path(&path)
                )));
            }
        };
        // Only regular/sparse files carry data (hard links and others have size 0
        // in our archives; if not, skip what they carry).
        self.remaining = stored;
        let total_data = match &kind {
            EntryKind::Sparse { .. } => h.size,
            _ => stored,
        };
        self.pad = ustar::padding(total_data);
        Ok(Entry {
            path,
            kind,
            meta,
            size,
        })
    }

    /// Reads the sparse 1.0 map at the start of the member data. Returns the
    /// segments (without GNU's terminating zero-length one) and the bytes it used.
    fn read_sparse_map(&mut self, member_size: u64, real: u64) -> Result<(Vec<Segment>, u64)> {
        let mut text: Vec<u8> = Vec::new();
        let mut used = 0u64;
        let mut numbers: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        loop {
            if used + BLOCK as u64 > member_size {
                return Err(Error::Tar("sparse map runs past the member".into()));
            }
            text.extend_from_slice(&self.read_block()?);
            used += BLOCK as u64;
            while let Some(nl) = text.iter().position(|&b| b == b'\n') {
                let n = parse_u64(&text[..nl], "sparse map")?;
                text.drain(..=nl);
                match want {
                    None => {
                        if n > MAX_SPARSE_SEGMENTS {
                            return Err(Error::Tar(format!("sparse map with {n} segments")));
                        }
                        want = Some(n * 2);
                    }
                    Some(_) => numbers.push(n),
                }
                if want == Some(numbers.len() as u64) {
                    break;
                }
            }
            if want == Some(numbers.len() as u64) {
                break;
            }
            if text.len() > 64 {
                return Err(Error::Tar("sparse map line too long".into()));
            }
        }
        let mut segs = Vec::new();
        let mut end = 0u64;
        let mut data = 0u64;
        for pair in numbers.chunks_exact(2) {
            let (offset, len) = (pair[0], pair[1]);
            let e = offset
                .checked_add(len)
                .filter(|&e| e <= real && offset >= end)
                .ok_or_else(|| {
                    Error::Tar("sparse map segments overlap or pass the file size".into())
                })?;
            if len % BLOCK as u64 != 0 && e != real && pair != &numbers[numbers.len() - 2..] {
                // GNU tar and Python lay such data out differently: ambiguous.
                return Err(Error::Tar(
                    "sparse segment not a multiple of 512 bytes".into(),
                ));
            }
            end = e;
            data += len;
            if len > 0 {
                segs.push(Segment { offset, len });
            }
        }
        if used.checked_add(data) != Some(member_size) {
            return Err(Error::Tar(
                "sparse map does not match the member size".into(),
            ));
        }
        Ok((segs, used))
    }

    /// Drains the payload to its end and checks that the final chunk authenticated.
    /// Until this returns `Ok`, nothing read so far may be trusted as complete.
    pub fn finish(mut self) -> Result<Option<Manifest>> {
        let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io(e)),
            }
        }
        let manifest = self.manifest.take();
        check_done(self.inner)?;
        Ok(manifest)
    }
}
