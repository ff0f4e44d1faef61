//! VHDX output (dynamic), in the one sequential pass: each 32 MiB block is
//! placed in the file the first time the pass writes into it, in disk order,
//! and only its non-zero units are written (the rest stays a hole, which reads
//! as the zeros it holds). The front matter — identifier, headers, region
//! tables, metadata, BAT — is written once the last block is known.

use std::fs::File;
use std::io;

use vmscrub_vhdx::create;

use super::writeback::{self, SyncingFile};
use super::{ImageSink, RAW_UNIT, Run};

pub struct VhdxSink {
    file: SyncingFile,
    size: u64,
    /// Per block: its data's file offset, once placed.
    placed: Vec<Option<u64>>,
    next: u64,
    /// File-write, data-write and virtual-disk GUIDs.
    ids: [[u8; 16]; 3],
}

impl VhdxSink {
    pub fn new(file: File, size: u64) -> io::Result<Self> {
        if size > create::MAX_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a VHDX holds at most 64 TiB; this disk is {size} bytes"),
            ));
        }
        let mut ids = [[0u8; 16]; 3];
        for id in &mut ids {
            getrandom::fill(id).map_err(|e| {
                io::Error::other(format!("no random numbers for a new disk ID: {e}"))
            })?;
            // Version 4 (random) GUIDs, as the specification's GUIDs are.
            id[7] = (id[7] & 0x0F) | 0x40;
            id[8] = (id[8] & 0x3F) | 0x80;
        }
        Ok(Self {
            file: SyncingFile::new(file, writeback::STEP)?,
            size,
            placed: vec![None; create::blocks(size) as usize],
            next: create::first_block_offset(size),
            ids,
        })
    }
}

impl ImageSink for VhdxSink {
    fn unit_size(&self) -> u64 {
        RAW_UNIT
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        let Self {
            file, placed, next, ..
        } = self;
        super::write_placed(file, run, create::BLOCK_SIZE, |_, b| {
            let Some(slot) = placed.get_mut(b) else {
                return Err(io::Error::other(format!(
                    "block {b} is past the disk's end"
                )));
            };
            Ok(*slot.get_or_insert_with(|| {
                let at = *next;
                *next += create::BLOCK_SIZE;
                at
            }))
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file
            .write_all_at(&create::front(self.size, self.ids), 0)?;
        self.file.write_all_at(
            &create::metadata(self.size, self.ids[2]),
            create::METADATA_OFFSET,
        )?;
        self.file.write_all_at(
            &create::encode_bat(self.size, &self.placed),
            create::BAT_OFFSET,
        )?;
        self.file.finish()?;
        // Every placed block lies wholly inside the file (its tail a hole).
        self.file.file().set_len(self.next)
    }
}
