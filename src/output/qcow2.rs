//! qcow2 output: the [`ImageSink`] around `vmscrub_qcow2::Writer`.
//!
//! Compression runs in the pass's worker threads (one [`ClusterCompressor`]
//! each); the writing thread only appends what they made, in order. A cluster
//! that does not shrink is stored as is, an all-zero one is left unallocated.

use std::fs::File;
use std::io;
use std::sync::Arc;

use vmscrub_qcow2::{
    ClusterCompressor, CompressionType, Version, WriteError, Writer, WriterOptions,
};

use super::writeback::{STEP, SyncingFile};
use super::{EncoderFactory, ImageSink, Run, Unit, UnitEncoder, ZeroCheck, finished};

/// How qcow2 clusters are compressed (`--compress[=zlib|zstd]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Qcow2Compression {
    /// Raw deflate, readable by every qemu.
    Zlib,
    /// zstd: faster, needs compat 1.1 and qemu 5.1 or later to read.
    Zstd,
}

impl Qcow2Compression {
    fn kind(self) -> CompressionType {
        match self {
            Qcow2Compression::Zlib => CompressionType::Zlib,
            Qcow2Compression::Zstd => CompressionType::Zstd,
        }
    }
}

/// The qcow2 version, by qemu's `compat` names (`--compat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Qcow2Compat {
    /// Version 2: for very old readers (qemu before 1.1); zlib only.
    #[value(name = "0.10", alias = "v2")]
    V0_10,
    /// Version 3, qemu's default.
    #[default]
    #[value(name = "1.1", alias = "v3")]
    V1_1,
}

impl Qcow2Compat {
    pub fn version(self) -> Version {
        match self {
            Qcow2Compat::V0_10 => Version::V2,
            Qcow2Compat::V1_1 => Version::V3,
        }
    }
}

/// What a qcow2 output looks like. The defaults are qemu-img's: version 3,
/// 64 KiB clusters, uncompressed. Nothing is inherited from a qcow2 input (as
/// with `qemu-img convert`): the output's layout is the caller's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Options {
    /// `None`: clusters are stored as they are.
    pub compression: Option<Qcow2Compression>,
    /// A power of two, 512 B .. 2 MiB.
    pub cluster_size: u64,
    pub compat: Qcow2Compat,
}

impl Default for Qcow2Options {
    fn default() -> Self {
        Qcow2Options {
            compression: None,
            cluster_size: 1 << vmscrub_qcow2::DEFAULT_CLUSTER_BITS,
            compat: Qcow2Compat::V1_1,
        }
    }
}

impl Qcow2Options {
    /// The writer's options; fails on combinations it cannot write (zstd in
    /// version 2, a bad cluster size).
    pub fn writer_options(&self) -> Result<WriterOptions, WriteError> {
        let mut o = WriterOptions::default();
        o.set_cluster_size(self.cluster_size)?;
        o.version = self.compat.version();
        o.compression = self
            .compression
            .map_or(CompressionType::Zlib, Qcow2Compression::kind);
        o.check()?;
        Ok(o)
    }

    /// "qcow2 (compat 1.1, 64 KiB clusters, zstd-compressed)".
    pub fn describe(&self) -> String {
        let cs = self.cluster_size;
        let size = if cs >= 1 << 20 {
            format!("{} MiB", cs >> 20)
        } else if cs >= 1 << 10 {
            format!("{} KiB", cs >> 10)
        } else {
            format!("{cs} B")
        };
        let compression = match self.compression {
            None => String::new(),
            Some(c) => format!(", {}-compressed", c.kind().name()),
        };
        format!(
            "qcow2 (compat {}, {size} clusters{compression})",
            self.compat.version().compat()
        )
    }
}

/// Compresses clusters on a worker thread.
struct Qcow2Encoder {
    compressor: Result<ClusterCompressor, String>,
}

impl UnitEncoder for Qcow2Encoder {
    fn encode(&mut self, _index: u64, data: &[u8]) -> io::Result<Unit> {
        if vmscrub_blockdev::is_zero(data) {
            return Ok(Unit::Zero);
        }
        let c = self
            .compressor
            .as_mut()
            .map_err(|e| io::Error::other(e.clone()))?;
        Ok(match c.compress(data).map_err(io::Error::from)? {
            Some(z) => Unit::Encoded(z.to_vec()),
            None => Unit::Plain,
        })
    }
}

/// A qcow2 image written front to back, flushed to disk as it grows.
pub struct Qcow2Sink {
    writer: Option<Writer<io::BufWriter<SyncingFile>>>,
    cluster_size: u64,
    compression: Option<CompressionType>,
}

impl Qcow2Sink {
    /// Starts the image in `file` (empty); writes through a clone of it.
    pub fn new(file: &File, size: u64, opts: &Qcow2Options) -> io::Result<Self> {
        let wopts = opts.writer_options()?;
        let out = SyncingFile::new(file.try_clone()?, STEP)?;
        let writer = Writer::new(io::BufWriter::with_capacity(1 << 20, out), size, &wopts)?;
        Ok(Qcow2Sink {
            cluster_size: writer.cluster_size(),
            writer: Some(writer),
            compression: opts.compression.map(Qcow2Compression::kind),
        })
    }
}

impl ImageSink for Qcow2Sink {
    fn unit_size(&self) -> u64 {
        self.cluster_size
    }

    fn encoder_factory(&self) -> EncoderFactory {
        match self.compression {
            None => Arc::new(|| Box::new(ZeroCheck)),
            Some(kind) => {
                let cs = self.cluster_size as usize;
                Arc::new(move || {
                    Box::new(Qcow2Encoder {
                        compressor: ClusterCompressor::new(kind, cs, None)
                            .map_err(|e| e.to_string()),
                    })
                })
            }
        }
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        let w = self.writer.as_mut().ok_or_else(finished)?;
        let unit = self.cluster_size;
        let first = run.offset / unit;
        let mut i = 0;
        while i < run.units.len() {
            match &run.units[i] {
                Unit::Zero => i += 1,
                Unit::Encoded(z) => {
                    w.write_compressed(first + i as u64, z)?;
                    i += 1;
                }
                Unit::Plain => {
                    // Neighbouring plain clusters go out in one write.
                    let mut j = i + 1;
                    while j < run.units.len() && run.units[j] == Unit::Plain {
                        j += 1;
                    }
                    let start = (i as u64 * unit) as usize;
                    let end = ((j as u64 * unit) as usize).min(run.data.len());
                    let data = run.data.get(start..end).unwrap_or_default();
                    if data.is_empty() {
                        // The unit list outran the data: not ours to guess.
                        return Err(io::Error::other(format!(
                            "run at {:#x}: unit {i} has no data",
                            run.offset
                        )));
                    }
                    w.write_data(first + i as u64, data)?;
                    i = j;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let w = self.writer.take().ok_or_else(finished)?;
        let (buf, _) = w.finish()?;
        buf.into_inner().map_err(|e| e.into_error())?.finish()
    }
}
