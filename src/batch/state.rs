//! The batch's memory between runs: one redb file recording each image that was
//! processed to the end, with its identity and the configuration it was
//! processed under. A record is written (and fsynced by redb's commit) as each
//! image finishes, so an interrupted run loses only the images in progress.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Key: the image's absolute path bytes; value: a JSON [`Record`].
const IMAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("images");

/// How much of each end of an image the quick digest reads.
const EDGE: u64 = 1 << 20;

/// What makes an image "the same" as last time. The first MiB holds every
/// container's header (qcow2, VMDK, VHDX, a dynamic VHD's footer copy) and the
/// partition table; the last MiB a VHD's footer and a GPT's backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// `sha256:` of the first and last MiB.
    pub digest: String,
    /// `sha256:` of the whole file, with `--verify-digests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_digest: Option<String>,
}

/// One finished image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub identity: Identity,
    /// Digest of the configuration it was processed under.
    pub config: String,
    /// (operation, from a content detector, count).
    pub findings: Vec<(String, bool, u64)>,
    /// Warnings of the kinds `--fail-on warning` counts.
    pub warnings: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<std::path::PathBuf>,
}

pub struct State {
    db: redb::Database,
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        let db = redb::Database::create(path)
            .with_context(|| format!("state database {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(IMAGES)?;
        tx.commit()?;
        Ok(State { db })
    }

    /// The record of `image`; a record that does not decode is no record (the
    /// image is redone).
    pub fn get(&self, image: &Path) -> Result<Option<Record>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(IMAGES)?;
        let key = key_of(image);
        Ok(table
            .get(key.as_slice())?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    pub fn put(&self, image: &Path, record: &Record) -> Result<()> {
        let value = serde_json::to_vec(record)?;
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(IMAGES)?;
            let key = key_of(image);
            table.insert(key.as_slice(), value.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets `image` (it is being redone, or failed).
    pub fn remove(&self, image: &Path) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(IMAGES)?;
            let key = key_of(image);
            table.remove(key.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn key_of(image: &Path) -> Vec<u8> {
    let abs = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    abs.as_os_str().as_bytes().to_vec()
}

/// The identity of the file at `path`; `full` hashes all of it.
pub fn identity(path: &Path, full: bool) -> std::io::Result<Identity> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let size = meta.len();
    let mtime_ns = {
        use std::os::unix::fs::MetadataExt;
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
    };
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    hash_range(&mut f, 0, EDGE.min(size), &mut h)?;
    let tail = size.saturating_sub(EDGE).max(EDGE.min(size));
    hash_range(&mut f, tail, size - tail, &mut h)?;
    let digest = format!("sha256:{:x}", h.finalize());
    let full_digest = if full {
        let mut h = Sha256::new();
        hash_range(&mut f, 0, size, &mut h)?;
        Some(format!("sha256:{:x}", h.finalize()))
    } else {
        None
    };
    Ok(Identity {
        size,
        mtime_ns,
        digest,
        full_digest,
    })
}

fn hash_range(f: &mut std::fs::File, start: u64, len: u64, h: &mut Sha256) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(start))?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        crate::output::check_interrupted()?;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        f.read_exact(chunk)?;
        h.update(&*chunk);
        left -= want as u64;
    }
    Ok(())
}

/// Whether `record` says `now` was already done under `config`. With
/// `verify` the whole-file digests must match too (a record without one
/// cannot vouch, and the image is redone).
pub fn unchanged(record: &Record, now: &Identity, config: &str, verify: bool) -> bool {
    let r = &record.identity;
    record.config == config
        && r.size == now.size
        && r.mtime_ns == now.mtime_ns
        && r.digest == now.digest
        && (!verify || (r.full_digest.is_some() && r.full_digest == now.full_digest))
}
