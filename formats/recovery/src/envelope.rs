//! The two envelopes around the same payload (pax tar → zstd), behind one writer and
//! one reader: the age format (age-encryption.org/v1, which the standard `age` tool
//! opens) and vmscrub's own v1 format (`header.rs`, `stream.rs`). Readers tell them
//! apart by their first bytes, so `recover` never needs to be told.

use std::io::{self, BufRead, Read, Write};

use crate::age_stream::{self, AgeReader};
use crate::error::{Error, Result};
use crate::header::{Header, MAGIC};
use crate::keys::{Identity, Recipient};
use crate::stream::{DecryptReader, EncryptWriter};

/// The first line of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Which envelope an archive is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// vmscrub's own format: AES-256-GCM STREAM, the key RSA-OAEP-wrapped. RSA
    /// recipients only; `scripts/vmscrub-recover.py` opens it. The library default,
    /// so archives made by code that predates the choice stay what they were.
    #[default]
    V1,
    /// age-encryption.org/v1: ChaCha20-Poly1305 STREAM, X25519 / ssh-ed25519 /
    /// ssh-rsa recipient stanzas. `age -d -i KEY FILE | zstd -d | tar -x` opens it.
    Age,
}

impl ArchiveFormat {
    /// What `scrub` writes when not told: age whenever every recipient is a key the
    /// age format serves (ed25519, X25519, RSA up to 4096 bits), since then the owner
    /// needs nothing of ours to open it; v1 when only RSA keys are given and one of
    /// them is too large for age. Keys that neither serves are an error naming them.
    pub fn for_recipients(recipients: &[Recipient]) -> Result<ArchiveFormat> {
        let refused: Vec<String> = recipients
            .iter()
            .filter_map(|r| r.check_age().err())
            .map(|e| e.to_string())
            .collect();
        if refused.is_empty() {
            return Ok(ArchiveFormat::Age);
        }
        if recipients.iter().all(Recipient::is_rsa) {
            return Ok(ArchiveFormat::V1);
        }
        Err(Error::Recipient(format!(
            "no format serves every recipient: the v1 format takes only RSA keys, and the \
             age format refuses {}",
            refused.join("; ")
        )))
    }

    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::V1 => "v1",
            ArchiveFormat::Age => "age",
        }
    }

    /// The format whose magic `head` starts with.
    pub fn detect(head: &[u8]) -> Option<ArchiveFormat> {
        if head.starts_with(&MAGIC) {
            Some(ArchiveFormat::V1)
        } else if head.len() >= MAGIC.len()
            && (head.starts_with(AGE_MAGIC) || AGE_MAGIC.starts_with(head))
        {
            Some(ArchiveFormat::Age)
        } else {
            None
        }
    }
}

/// The encrypting end of the payload, in either envelope.
pub enum Sealer<W: Write> {
    V1(Box<EncryptWriter<W>>),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sealer<W> {
    /// Seals the final chunk and returns the output. Without this the archive is
    /// truncated, and every reader refuses it.
    pub fn finish(self) -> Result<W> {
        match self {
            Sealer::V1(w) => (*w).finish(),
            Sealer::Age(w) => {
                let mut inner = w.finish()?;
                inner.flush()?;
                Ok(inner)
            }
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sealer::V1(w) => w.write(data),
            Sealer::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealer::V1(w) => w.flush(),
            Sealer::Age(w) => w.flush(),
        }
    }
}

/// What the reader learnt from an archive's header.
#[derive(Clone, Debug)]
pub enum Envelope {
    V1(Header),
    Age,
}

impl Envelope {
    pub fn format(&self) -> ArchiveFormat {
        match self {
            Envelope::V1(_) => ArchiveFormat::V1,
            Envelope::Age => ArchiveFormat::Age,
        }
    }

    /// The recipients, for `recover --list`. An age header does not name them (an
    /// ssh stanza carries 4 bytes of the key's hash, an X25519 one nothing).
    pub fn recipient_list(&self) -> String {
        match self {
            Envelope::V1(h) => h.recipient_list(),
            Envelope::Age => "not named in an age file".into(),
        }
    }
}

/// The authenticated plaintext (the zstd stream), in either envelope. Buffered
/// straight from the decrypted chunk, so no second unzeroized copy exists.
pub enum Opened<R: Read> {
    V1(Box<DecryptReader<Prefixed<R>>>),
    Age(Box<AgeReader<Prefixed<R>>>),
}

impl<R: Read> Opened<R> {
    /// Succeeds only if the final chunk authenticated and nothing follows it; call
    /// once the payload has been read to its end.
    pub fn check_end(&mut self) -> Result<()> {
        match self {
            Opened::V1(r) if r.is_done() => Ok(()),
            Opened::V1(_) => Err(Error::Other("payload ended before the final chunk".into())),
            Opened::Age(r) => r.check_end(),
        }
    }
}

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::envelope::read_buffered(self, out)
    }
}

impl<R: Read> BufRead for Opened<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Opened::V1(r) => r.fill_buf(),
            Opened::Age(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Opened::V1(r) => r.consume(amt),
            Opened::Age(r) => r.consume(amt),
        }
    }
}

/// Reads the magic, then opens the envelope it names with `identity`.
pub fn open_envelope<R: Read>(mut input: R, identity: &Identity) -> Result<(Envelope, Opened<R>)> {
    let mut head = [0u8; MAGIC.len()];
    let got = read_up_to(&mut input, &mut head)?;
    let input = Prefixed {
        head,
        pos: 0,
        len: got,
        inner: input,
    };
    match ArchiveFormat::detect(&head[..got]) {
        Some(ArchiveFormat::V1) => {
            if !identity.is_rsa() {
                return Err(Error::Identity(format!(
                    "this archive is in the v1 format, which opens only with an RSA key; \
                     {} is an {} key",
                    identity.fingerprint_string(),
                    identity.kind()
                )));
            }
            let (header, r) = crate::reader::open_v1(input, identity)?;
            Ok((Envelope::V1(header), Opened::V1(Box::new(r))))
        }
        Some(ArchiveFormat::Age) => {
            let r = age_stream::open(input, identity)?;
            Ok((Envelope::Age, Opened::Age(Box::new(r))))
        }
        None if got < MAGIC.len() => Err(Error::Header(
            "the file is empty or shorter than a header".into(),
        )),
        None => Err(Error::BadMagic),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(got)
}

/// The input with the bytes read to detect the format put back in front.
pub struct Prefixed<R> {
    head: [u8; MAGIC.len()],
    pos: usize,
    len: usize,
    inner: R,
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(out.len());
            out[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

/// `Read` for a reader whose buffering is its `BufRead` (the decrypted chunk it
/// holds): copy out of the current buffer, then consume what was copied.
pub(crate) fn read_buffered<B: BufRead>(b: &mut B, out: &mut [u8]) -> io::Result<usize> {
    let buf = b.fill_buf()?;
    let n = buf.len().min(out.len());
    out[..n].copy_from_slice(&buf[..n]);
    b.consume(n);
    Ok(n)
}
