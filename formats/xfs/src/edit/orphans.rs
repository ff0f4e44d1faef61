//! Orphans: inodes on the AGI's unlinked lists, files deleted while a program
//! still had them open when the image was taken. The guest's next mount frees
//! them in log recovery; the editor writes a clean log, which means no
//! recovery, so it frees them itself, the same way: each is released like a
//! file whose last name went (its blocks zeroed with the rest), and the lists
//! are emptied. Left alone, they would stay allocated for good, their content
//! with them.

use std::collections::HashSet;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::inode_raw::{RawInode, field};
use super::inodes::ino_of;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

const NULLAGINO: u32 = u32::MAX;
/// Where the 64 list heads start in the AGI, and its CRC.
const AGI_UNLINKED: usize = 40;
const AGI_BUCKETS: usize = 64;
const AGI_CRC: usize = 312;

/// Every orphan of AG `agno`, its list link cleared (the caller releases
/// them), and the AGI's list heads emptied, staged.
pub(crate) fn take_orphans<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    agno: u32,
) -> Result<Vec<u64>> {
    let (_, agi) = fs.ag_headers(agno)?;
    if !agi.has_unlinked() {
        return Ok(vec![]);
    }
    let mut seen = HashSet::new();
    let mut out = vec![];
    for &head in &agi.unlinked {
        let mut agino = head;
        while agino != NULLAGINO {
            let ino = ino_of(fs, agno, agino);
            // A list longer than the AG's inodes, or one that comes back to
            // an inode, is a loop.
            if !seen.insert(agino) || seen.len() > agi.count as usize {
                return Err(Error::corrupt(
                    "AGI unlinked list",
                    Loc::inode(ino),
                    format!("AG {agno}: the list loops"),
                ));
            }
            let mut raw = RawInode::read(fs, ino)?;
            if raw.u32(field::NLINK) != 0 {
                return Err(Error::corrupt(
                    "AGI unlinked list",
                    Loc::inode(ino),
                    "an inode on the list still has names",
                ));
            }
            agino = raw.u32(field::NEXT_UNLINKED);
            raw.set_u32(field::NEXT_UNLINKED, NULLAGINO);
            raw.write(stage)?;
            out.push(ino);
        }
    }
    let mut sector = vec![0u8; usize::from(fs.sb.sect_size)];
    fs.read_bytes(&mut sector, agi.offset, "AGI")?;
    sector[AGI_UNLINKED..AGI_UNLINKED + 4 * AGI_BUCKETS].fill(0xff);
    crate::checksum::store(&mut sector, AGI_CRC);
    stage
        .patch(agi.offset, &sector)
        .map_err(|source| Error::Io {
            what: "staged AGI",
            offset: agi.offset,
            source,
        })?;
    Ok(out)
}
