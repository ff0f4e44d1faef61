//! Writing output images: safely, in one pass, on all cores.
//!
//! **Files**: a temporary name beside the target, `fsync`, then rename
//! ([`PendingFile`]). An interrupted run (Ctrl-C, disk full, a read error halfway)
//! leaves no partial output behind, and an existing file is never replaced without
//! `--force`. A two-file output (a monolithicFlat VMDK's descriptor and extent) is
//! committed as a unit by [`OutputImage::commit`].
//!
//! **The pass** ([`write_image`]): the source's allocated ranges, widened to the
//! sink's unit (grain, cluster, 4 KiB block) and cut into 1 MiB runs, are read and
//! encoded (zero check, compression) by `vmscrub-parmap` workers — reading a
//! compressed input and compressing the output are both CPU-bound — and handed to
//! the sink in order on one thread, which appends them. Unallocated ranges are
//! never read nor written: they become holes or unallocated grains/clusters.
//!
//! **Formats** ([`OutputFormat`], [`create_output`]): raw, VMDK (streamOptimized,
//! monolithicSparse, monolithicFlat), qcow2 (version 2 or 3, any cluster
//! size, optionally zlib- or zstd-compressed; [`qcow2`]), VHD (fixed,
//! dynamic; [`vhd`]) and VHDX (dynamic; [`vhdx`]).
//!
//! **Options** ([`OutputArgs`]): the command-line options choosing all that,
//! shared by every verb that writes an image.

mod args;
mod qcow2;
mod vhd;
mod vhdx;
mod writeback;
use writeback::SyncingFile;

pub use args::{FormatArg, OutputArgs, ResolvedOutput, UsageError, parse_cluster_size};
pub use qcow2::{Qcow2Compat, Qcow2Compression, Qcow2Options, Qcow2Sink};
pub use vhd::{VhdDynamicSink, VhdFixedSink, VhdSubformat};
pub use vhdx::VhdxSink;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use vmscrub_blockdev::ReadAt;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs a Ctrl-C / SIGTERM handler that asks long loops to stop, so they
/// unwind and remove their temporary files instead of dying mid-write.
pub fn install_interrupt_handler() {
    // A second call fails harmlessly (the handler is process-wide).
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user really wants out.
            std::process::exit(130);
        }
    });
}

/// What the Ctrl-C handler does, for fault injection in tests (`VMSCRUB_FAULT`,
/// debug builds): a signal cannot be timed to land inside a millisecond phase.
pub fn simulate_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Fails with "interrupted" once Ctrl-C was pressed; long loops call this.
pub fn check_interrupted() -> io::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "interrupted by signal",
        ))
    } else {
        Ok(())
    }
}

/// The same file (device and inode), however it is named: an output must never
/// be the input.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Creates the temporary file `target` will be renamed from, in its directory.
/// Errors name `target` and its directory, never the temporary name: the user
/// did not choose that name and cannot act on it ("no such directory" is what
/// they need to hear).
pub fn temp_beside(
    target: &Path,
    builder: &tempfile::Builder<'_, '_>,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => bail!(
            "cannot create {}: {} is not a directory",
            target.display(),
            dir.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "cannot create {}: the directory {} does not exist",
            target.display(),
            dir.display()
        ),
        _ => {}
    }
    builder.tempfile_in(&dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create a file in {} (for {}): {}",
            dir.display(),
            target.display(),
            without_path(&e)
        )
    })
}

/// The OS error under tempfile's wrapper, which appends the temporary path.
fn without_path(e: &io::Error) -> io::Error {
    let inner = e
        .get_ref()
        .and_then(|r| r.source())
        .and_then(|s| s.downcast_ref::<io::Error>());
    match inner.or(Some(e)).and_then(io::Error::raw_os_error) {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::from(e.kind()),
    }
}

/// A file being written under a temporary name in the target's directory.
/// Dropping it without [`PendingFile::commit`] deletes it.
pub struct PendingFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    force: bool,
}

impl PendingFile {
    /// Refuses an existing `target` unless `force`; checks that the directory is
    /// writable by creating the temporary file there.
    pub fn create(target: &Path, force: bool) -> anyhow::Result<Self> {
        if !force && target.symlink_metadata().is_ok() {
            bail!(
                "{} already exists (use --force to replace it)",
                target.display()
            );
        }
        let name = target
            .file_name()
            .with_context(|| format!("{} is not a file name", target.display()))?
            .to_string_lossy()
            .into_owned();
        // 0666 less the umask, like any file a tool creates (qemu-img, cp), rather
        // than tempfile's private 0600: the output is meant to be used.
        use std::os::unix::fs::PermissionsExt;
        let temp = temp_beside(
            target,
            tempfile::Builder::new()
                .permissions(std::fs::Permissions::from_mode(0o666))
                .prefix(&format!(".{name}."))
                .suffix(".vmscrub-tmp"),
        )?;
        Ok(Self {
            temp,
            target: target.to_path_buf(),
            force,
        })
    }

    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data to stable storage, renames into place and syncs the
    /// directory, so a crash afterwards cannot lose or half-write the output.
    pub fn commit(self) -> anyhow::Result<()> {
        self.temp
            .as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {}", self.temp.path().display()))?;
        let target = self.target.clone();
        let persisted = if self.force {
            self.temp.persist(&target).map_err(|e| e.error)
        } else {
            self.temp.persist_noclobber(&target).map_err(|e| e.error)
        };
        persisted.with_context(|| {
            format!("cannot move the output into place at {}", target.display())
        })?;
        if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Not all filesystems let a directory be opened and synced; the rename is
            // already done, so a failure here is not worth failing the run for.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ sinks

/// What a worker made of one unit (grain, cluster, block) of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// All zeros: leave a hole / unallocated entry.
    Zero,
    /// Store the run's bytes for this unit as they are.
    Plain,
    /// Store these bytes instead (a compressed grain record, a compressed cluster).
    Encoded(Vec<u8>),
}

/// A piece of the virtual disk read and prepared by a worker: `data` holds the
/// bytes at `offset` (a multiple of the sink's unit size), and `units[i]` says
/// what to do with the `i`-th unit-sized piece of it (the last may be short).
#[derive(Debug)]
pub struct Run {
    pub offset: u64,
    pub data: Vec<u8>,
    pub units: Vec<Unit>,
}

impl Run {
    /// The bytes of unit `i`.
    pub fn unit_data(&self, i: usize, unit: u64) -> &[u8] {
        unit_slice(&self.data, i, unit)
    }
}

fn unit_slice(data: &[u8], i: usize, unit: u64) -> &[u8] {
    let start = (i as u64 * unit).min(data.len() as u64) as usize;
    let end = (start as u64 + unit).min(data.len() as u64) as usize;
    &data[start..end]
}

/// The CPU-heavy half of a sink, run on worker threads: decides per unit whether
/// it is zero, stored as is, or encoded (compressed). One per thread, so it may
/// keep scratch state (a compressor).
pub trait UnitEncoder: Send {
    /// `index` is the unit's number in the disk (offset / unit size).
    fn encode(&mut self, index: u64, data: &[u8]) -> io::Result<Unit>;
}

/// Makes one [`UnitEncoder`] per worker thread. Detached from the sink, so the
/// workers can make encoders while the writing thread holds the sink.
pub type EncoderFactory = Arc<dyn Fn() -> Box<dyn UnitEncoder> + Send + Sync>;

/// The encoder of sinks that store data as is: zero units become holes.
pub struct ZeroCheck;

impl UnitEncoder for ZeroCheck {
    fn encode(&mut self, _index: u64, data: &[u8]) -> io::Result<Unit> {
        Ok(if vmscrub_blockdev::is_zero(data) {
            Unit::Zero
        } else {
            Unit::Plain
        })
    }
}

/// Receives the output pass (see [`write_image`]): runs at increasing offsets,
/// aligned to [`unit_size`](Self::unit_size); everything never written reads as
/// zeros. Implemented by the raw and VMDK sinks here and by the qcow2 writer.
///
/// The split into an encoder (parallel, `&self`-free) and `write_run` (sequential,
/// on one thread) is what lets compression use every core while the file is
/// still written front to back.
pub trait ImageSink {
    /// The unit the sink allocates in (VMDK grain, qcow2 cluster, 4 KiB for raw):
    /// runs are cut at its multiples, so every unit arrives whole.
    fn unit_size(&self) -> u64;

    /// The per-thread encoders. The default only tells zero units from data.
    fn encoder_factory(&self) -> EncoderFactory {
        Arc::new(|| Box::new(ZeroCheck))
    }

    /// Writes one run. The sink may take what it keeps out of `run` (encoded
    /// units with `std::mem::take`); the driver reuses `run.data` afterwards.
    fn write_run(&mut self, run: &mut Run) -> io::Result<()>;

    /// Completes the image (tables, footers, final size). Called once, after the
    /// last `write_run`; the files are then flushed and committed by the caller.
    fn finish(&mut self) -> io::Result<()>;
}

/// Writes the `Plain` units of `run` in place in `file`, coalescing neighbours
/// into one write; zero units stay holes.
fn write_plain_units(file: &mut SyncingFile, run: &Run, unit: u64) -> io::Result<()> {
    for span in plain_spans(run, unit) {
        file.write_all_at(&run.data[span.clone()], run.offset + span.start as u64)?;
    }
    Ok(())
}

/// Writes the `Plain` units of `run` into a file that stores the disk in
/// blocks of `block_size` bytes wherever `place` puts each one (a dynamic VHD's
/// or VHDX's block allocation): `place(file, block)` returns the file offset
/// of the block's data, placing it first if it is new.
fn write_placed(
    file: &mut SyncingFile,
    run: &Run,
    block_size: u64,
    mut place: impl FnMut(&mut SyncingFile, usize) -> io::Result<u64>,
) -> io::Result<()> {
    for span in plain_spans(run, RAW_UNIT) {
        let mut offset = run.offset + span.start as u64;
        let mut data = &run.data[span];
        while !data.is_empty() {
            let within = offset % block_size;
            let n = (block_size - within).min(data.len() as u64) as usize;
            let at = place(file, (offset / block_size) as usize)? + within;
            file.write_all_at(&data[..n], at)?;
            offset += n as u64;
            data = &data[n..];
        }
    }
    Ok(())
}

/// The byte ranges of `run.data` its `Plain` units cover, neighbours joined.
fn plain_spans(run: &Run, unit: u64) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < run.units.len() {
        if run.units[i] != Unit::Plain {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < run.units.len() && run.units[j] == Unit::Plain {
            j += 1;
        }
        let start = (i as u64 * unit) as usize;
        let end = ((j as u64 * unit) as usize).min(run.data.len());
        spans.push(start..end);
        i = j;
    }
    spans
}

/// A raw image: data written in place, zero units left as holes, length set at
/// the end.
pub struct RawSink {
    file: SyncingFile,
    size: u64,
}

/// Hole granularity of raw and flat outputs: a filesystem block.
pub const RAW_UNIT: u64 = 4096;

impl RawSink {
    /// `file` is written through its own handle (a clone is fine), and flushed
    /// to disk in the background as it grows ([`writeback`]).
    pub fn new(file: File, size: u64) -> io::Result<Self> {
        Ok(Self {
            file: SyncingFile::new(file, writeback::STEP)?,
            size,
        })
    }

    /// Writes `data` at `offset` as is (for callers outside the pass).
    pub fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}

impl ImageSink for RawSink {
    fn unit_size(&self) -> u64 {
        RAW_UNIT
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        write_plain_units(&mut self.file, run, RAW_UNIT)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.finish()?;
        self.file.file().set_len(self.size)
    }
}

/// A streamOptimized VMDK: grains compressed by the workers, appended in order.
pub struct VmdkStreamSink {
    writer: Option<vmscrub_vmdk::StreamWriter<io::BufWriter<SyncingFile>>>,
    level: u32,
}

struct GrainEncoder(vmscrub_vmdk::GrainCompressor);

impl UnitEncoder for GrainEncoder {
    fn encode(&mut self, index: u64, data: &[u8]) -> io::Result<Unit> {
        Ok(match self.0.compress(index, data)?.record {
            Some(r) => Unit::Encoded(r),
            None => Unit::Zero,
        })
    }
}

fn finished() -> io::Error {
    io::Error::other("the image was already finished")
}

/// Flushes a finished writer's buffer, so a late write error (disk full on the
/// last tables) is reported instead of lost when the buffer drops, and stops
/// its background flushing (reporting a flush that failed).
fn flush_buffered(buf: io::BufWriter<SyncingFile>) -> io::Result<()> {
    buf.into_inner().map_err(|e| e.into_error())?.finish()
}

impl ImageSink for VmdkStreamSink {
    fn unit_size(&self) -> u64 {
        vmscrub_vmdk::grain::GRAIN_BYTES
    }

    fn encoder_factory(&self) -> EncoderFactory {
        let level = self.level;
        Arc::new(move || Box::new(GrainEncoder(vmscrub_vmdk::GrainCompressor::new(level))))
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        let w = self.writer.as_mut().ok_or_else(finished)?;
        let unit = vmscrub_vmdk::grain::GRAIN_BYTES;
        let first = run.offset / unit;
        let data = &run.data;
        for (i, u) in run.units.iter_mut().enumerate() {
            match u {
                Unit::Zero => {}
                Unit::Encoded(rec) => w.write_compressed(vmscrub_vmdk::EncodedGrain {
                    index: first + i as u64,
                    record: Some(std::mem::take(rec)),
                })?,
                Unit::Plain => {
                    w.write_data(run.offset + i as u64 * unit, unit_slice(data, i, unit))?
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let w = self.writer.take().ok_or_else(finished)?;
        let (buf, _) = w.finish()?;
        flush_buffered(buf)
    }
}

/// A monolithicSparse VMDK: uncompressed grains, zero grains unallocated.
pub struct VmdkSparseSink {
    writer: Option<vmscrub_vmdk::SparseWriter<io::BufWriter<SyncingFile>>>,
}

impl ImageSink for VmdkSparseSink {
    fn unit_size(&self) -> u64 {
        vmscrub_vmdk::grain::GRAIN_BYTES
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        let w = self.writer.as_mut().ok_or_else(finished)?;
        let unit = vmscrub_vmdk::grain::GRAIN_BYTES;
        let first = run.offset / unit;
        for (i, u) in run.units.iter().enumerate() {
            if *u != Unit::Zero {
                w.write_grain(first + i as u64, run.unit_data(i, unit))?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let w = self.writer.take().ok_or_else(finished)?;
        let (buf, _) = w.finish()?;
        flush_buffered(buf)
    }
}

/// A monolithicFlat VMDK: the extent written like a raw image, the descriptor
/// written at the end.
pub struct VmdkFlatSink {
    extent: SyncingFile,
    descriptor: File,
    size: u64,
    text: String,
}

impl ImageSink for VmdkFlatSink {
    fn unit_size(&self) -> u64 {
        RAW_UNIT
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        write_plain_units(&mut self.extent, run, RAW_UNIT)
    }

    fn finish(&mut self) -> io::Result<()> {
        use std::io::Write;
        self.extent.finish()?;
        self.extent
            .file()
            .set_len(self.size.next_multiple_of(vmscrub_vmdk::header::SECTOR))?;
        (&self.descriptor).write_all(self.text.as_bytes())
    }
}

// ---------------------------------------------------------- output formats

/// VMDK variants vmscrub writes (`--subformat` names them: [`args::SubformatArg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmdkSubformat {
    StreamOptimized,
    MonolithicSparse,
    MonolithicFlat,
}

impl VmdkSubformat {
    pub fn as_str(self) -> &'static str {
        match self {
            VmdkSubformat::StreamOptimized => "streamOptimized",
            VmdkSubformat::MonolithicSparse => "monolithicSparse",
            VmdkSubformat::MonolithicFlat => "monolithicFlat",
        }
    }
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    Raw,
    Vmdk {
        subformat: VmdkSubformat,
        /// The new disk's descriptor values (adapter, versions, fresh IDs).
        disk: vmscrub_vmdk::DiskOptions,
    },
    Qcow2(Qcow2Options),
    Vhd {
        subformat: VhdSubformat,
        /// The virtual size to write (a fixed disk's may be the input's rounded
        /// up to a whole MiB).
        size: u64,
    },
    /// Dynamic VHDX, the disk's size rounded up to whole sectors.
    Vhdx {
        size: u64,
    },
}

impl OutputFormat {
    pub fn describe(&self) -> String {
        match self {
            OutputFormat::Raw => "raw".into(),
            OutputFormat::Vhd { subformat, .. } => format!("vhd ({})", subformat.as_str()),
            OutputFormat::Vhdx { .. } => "vhdx (dynamic)".into(),
            OutputFormat::Vmdk { subformat, .. } => format!("vmdk ({})", subformat.as_str()),
            OutputFormat::Qcow2(o) => o.describe(),
        }
    }
}

/// An output image being written: its pending file(s) and the sink writing them.
/// Dropping it without [`commit`](Self::commit) removes every file.
pub struct OutputImage {
    /// In commit order: a flat VMDK's extent before its descriptor.
    files: Vec<PendingFile>,
    sink: Box<dyn ImageSink>,
    finished: bool,
    /// A background flush started by [`OutputImage::sync_in_background`].
    syncing: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl OutputImage {
    pub fn sink(&mut self) -> &mut dyn ImageSink {
        self.sink.as_mut()
    }

    /// The final paths, in the order they are committed.
    pub fn targets(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .map(|f| f.target().to_path_buf())
            .collect()
    }

    /// Completes the image (tables, footers) under its temporary name(s), so it
    /// can be read back ([`reopen`](Self::reopen)) before it is committed.
    /// Idempotent.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if !self.finished {
            self.sink
                .finish()
                .context("cannot complete the output image")?;
            self.finished = true;
        }
        Ok(())
    }

    /// The finished output's virtual disk, read back from its temporary file(s)
    /// through vmscrub's own readers (sniffed by content, like any input). A
    /// monolithicFlat VMDK is read through its extent, which is the raw disk
    /// (the descriptor names the extent's final name, which does not exist yet).
    pub fn reopen(&self) -> anyhow::Result<Arc<dyn ReadAt>> {
        anyhow::ensure!(self.finished, "the output is not finished");
        match self.files.as_slice() {
            [extent, _descriptor] => Ok(Arc::new(
                vmscrub_blockdev::FileDisk::open(extent.temp_path())
                    .context("cannot reopen the output")?,
            )),
            [one] => Ok(
                crate::image::open(one.temp_path(), &crate::image::OpenOptions::default())
                    .context("cannot reopen the output")?
                    .disk,
            ),
            _ => bail!("the output has no file"),
        }
    }

    /// Starts flushing the finished output to stable storage on another thread,
    /// so the flush (often the longest part of writing an image) overlaps with
    /// whatever the caller does next — verification reads the output back from
    /// the page cache meanwhile. [`commit`](Self::commit) waits for it.
    pub fn sync_in_background(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.finished, "the output is not finished");
        if self.syncing.is_some() {
            return Ok(());
        }
        let files = self
            .files
            .iter()
            .map(|f| f.file().try_clone())
            .collect::<io::Result<Vec<File>>>()
            .context("cannot reopen the output to flush it")?;
        self.syncing = Some(std::thread::spawn(move || {
            files.iter().try_for_each(File::sync_all)
        }));
        Ok(())
    }

    /// Finishes the sink, then commits every file: all are flushed to disk first,
    /// then renamed into place one by one; if a rename fails, the ones already
    /// renamed are removed again, so the user gets both files or neither.
    pub fn commit(mut self) -> anyhow::Result<()> {
        self.finish()?;
        if let Some(h) = self.syncing.take() {
            h.join()
                .map_err(|_| anyhow::anyhow!("the flush thread panicked"))?
                .context("cannot flush the output")?;
        }
        drop(self.sink);
        for f in &self.files {
            f.file()
                .sync_all()
                .with_context(|| format!("cannot flush {}", f.temp_path().display()))?;
        }
        let mut placed: Vec<PathBuf> = Vec::new();
        for f in self.files {
            let target = f.target().to_path_buf();
            if let Err(e) = f.commit() {
                for p in &placed {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
            placed.push(target);
        }
        Ok(())
    }
}

/// Writes through a clone of the pending file's handle, so the sink owns what it
/// writes with and the pending file keeps the name.
fn handle(p: &PendingFile) -> anyhow::Result<File> {
    p.file()
        .try_clone()
        .with_context(|| format!("cannot reopen {}", p.temp_path().display()))
}

/// [`handle`], flushed to disk in the background as it is written.
fn syncing(p: &PendingFile) -> anyhow::Result<SyncingFile> {
    SyncingFile::new(handle(p)?, writeback::STEP)
        .with_context(|| format!("cannot start writing {}", p.temp_path().display()))
}

fn file_name(target: &Path) -> anyhow::Result<String> {
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} is not a usable file name", target.display()))
}

/// Creates the output file(s) for a disk of `size` bytes at `target` (temporary
/// names beside it; nothing appears under the real names before
/// [`OutputImage::commit`]) and the sink that writes them.
pub fn create_output(
    target: &Path,
    format: &OutputFormat,
    size: u64,
    force: bool,
) -> anyhow::Result<OutputImage> {
    match format {
        OutputFormat::Raw => {
            let p = PendingFile::create(target, force)?;
            let sink = RawSink::new(handle(&p)?, size).context("cannot start the output")?;
            Ok(OutputImage {
                files: vec![p],
                sink: Box::new(sink),
                finished: false,
                syncing: None,
            })
        }
        OutputFormat::Vmdk { subformat, disk } => {
            let name = file_name(target)?;
            match subformat {
                VmdkSubformat::StreamOptimized => {
                    let p = PendingFile::create(target, force)?;
                    let w = vmscrub_vmdk::StreamWriter::new(
                        io::BufWriter::with_capacity(1 << 20, syncing(&p)?),
                        size,
                        &name,
                        disk,
                    )
                    .context("cannot start the VMDK stream")?;
                    Ok(OutputImage {
                        files: vec![p],
                        sink: Box::new(VmdkStreamSink {
                            writer: Some(w),
                            level: vmscrub_vmdk::grain::DEFAULT_LEVEL,
                        }),
                        finished: false,
                        syncing: None,
                    })
                }
                VmdkSubformat::MonolithicSparse => {
                    let p = PendingFile::create(target, force)?;
                    let w = vmscrub_vmdk::SparseWriter::new(
                        io::BufWriter::with_capacity(1 << 20, syncing(&p)?),
                        size,
                        &name,
                        disk,
                    )
                    .context("cannot start the VMDK")?;
                    Ok(OutputImage {
                        files: vec![p],
                        sink: Box::new(VmdkSparseSink { writer: Some(w) }),
                        finished: false,
                        syncing: None,
                    })
                }
                VmdkSubformat::MonolithicFlat => {
                    let extent_name = vmscrub_vmdk::flat_extent_name(&name);
                    let extent_target = target.with_file_name(&extent_name);
                    let text = vmscrub_vmdk::flat_descriptor(size, &extent_name, disk)
                        .context("cannot describe the VMDK")?;
                    // Check both names before creating either.
                    if !force && extent_target.symlink_metadata().is_ok() {
                        anyhow::bail!(
                            "{} already exists (use --force to replace it)",
                            extent_target.display()
                        );
                    }
                    let desc = PendingFile::create(target, force)?;
                    let extent = PendingFile::create(&extent_target, force)?;
                    let sink = VmdkFlatSink {
                        extent: syncing(&extent)?,
                        descriptor: handle(&desc)?,
                        size,
                        text,
                    };
                    Ok(OutputImage {
                        files: vec![extent, desc],
                        sink: Box::new(sink),
                        finished: false,
                        syncing: None,
                    })
                }
            }
        }
        OutputFormat::Vhd { subformat, size } => {
            let p = PendingFile::create(target, force)?;
            let sink: Box<dyn ImageSink> = match subformat {
                VhdSubformat::Fixed => Box::new(VhdFixedSink::new(handle(&p)?, *size)?),
                VhdSubformat::Dynamic => Box::new(VhdDynamicSink::new(handle(&p)?, *size)?),
            };
            Ok(OutputImage {
                files: vec![p],
                sink,
                finished: false,
                syncing: None,
            })
        }
        OutputFormat::Vhdx { size } => {
            let p = PendingFile::create(target, force)?;
            let sink = VhdxSink::new(handle(&p)?, *size)?;
            Ok(OutputImage {
                files: vec![p],
                sink: Box::new(sink),
                finished: false,
                syncing: None,
            })
        }
        OutputFormat::Qcow2(opts) => {
            let p = PendingFile::create(target, force)?;
            let sink =
                Qcow2Sink::new(p.file(), size, opts).context("cannot start the qcow2 image")?;
            Ok(OutputImage {
                files: vec![p],
                sink: Box::new(sink),
                finished: false,
                syncing: None,
            })
        }
    }
}

// ------------------------------------------------------------ the pass

/// Bytes read and prepared per work item: large enough to amortize the hand-off,
/// small enough that `2 × threads` of them in flight stay a few MiB.
pub const RUN_BYTES: u64 = 1 << 20;

/// How the pass runs and reports.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub threads: usize,
    /// Show the progress bar (it is also hidden when stderr is not a terminal).
    pub progress: bool,
    /// Label before the bar.
    pub label: String,
}

impl Default for PassOptions {
    fn default() -> Self {
        Self {
            threads: vmscrub_parmap::available_threads(),
            progress: true,
            label: "writing".into(),
        }
    }
}

/// What the pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub virtual_size: u64,
    /// Bytes read from the source (allocated ranges, widened to units).
    pub bytes_read: u64,
    /// Units stored (plain or encoded) and units left as holes.
    pub units_stored: u64,
    pub units_zero: u64,
    pub elapsed: std::time::Duration,
}

/// The ranges the pass reads: the source's allocated ranges widened to whole
/// units, merged, and cut into runs of at most [`RUN_BYTES`] aligned to it.
pub fn plan_runs(
    allocated: &vmscrub_blockdev::RangeSet,
    size: u64,
    unit: u64,
) -> impl Iterator<Item = std::ops::Range<u64>> {
    let unit = unit.max(1);
    let run = RUN_BYTES.next_multiple_of(unit);
    let widened: vmscrub_blockdev::RangeSet = allocated
        .iter()
        .map(|r| {
            let start = r.start / unit * unit;
            let end = r.end.saturating_add(unit - 1) / unit * unit;
            start.min(size)..end.min(size)
        })
        .collect();
    widened
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(move |r| {
            let mut pos = r.start;
            std::iter::from_fn(move || {
                if pos >= r.end {
                    return None;
                }
                let end = ((pos / run + 1) * run).min(r.end);
                let piece = pos..end;
                pos = end;
                Some(piece)
            })
        })
}

/// The output pass: reads every allocated range of `source` (the overlay in a
/// scrub, the opened image in a convert) on `opts.threads` workers, encodes it
/// with the sink's encoder there, and hands the runs to `sink` in order on this
/// thread. Ranges the source does not allocate are never read or written. Checks
/// for Ctrl-C between runs; on any error nothing more is written and the error
/// is returned (the caller drops the pending files). Does not call
/// [`ImageSink::finish`].
pub fn write_image(
    source: &dyn ReadAt,
    sink: &mut dyn ImageSink,
    opts: &PassOptions,
) -> io::Result<PassStats> {
    let t0 = std::time::Instant::now();
    let size = source.size();
    let unit = sink.unit_size();
    let allocated = source.allocated_ranges()?;
    let factory = sink.encoder_factory();
    let parmap = vmscrub_parmap::Options::with_threads(opts.threads);
    // Run buffers go back to the workers once written.
    let pool_max = parmap.max_in_flight + parmap.threads;
    let pool: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let bar = progress_bar(size, opts);
    let mut stats = PassStats {
        virtual_size: size,
        ..PassStats::default()
    };
    vmscrub_parmap::map_ordered_with(
        &parmap,
        || factory(),
        plan_runs(&allocated, size, unit),
        |enc: &mut Box<dyn UnitEncoder>, r: std::ops::Range<u64>| -> io::Result<Run> {
            check_interrupted()?;
            // A recycled buffer: it is overwritten whole by the read, so no zeroing
            // (fresh 1 MiB buffers cost a page fault per 4 KiB).
            let mut data = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_default();
            data.resize((r.end - r.start) as usize, 0);
            source.read_exact_at(&mut data, r.start)?;
            let first = r.start / unit;
            let units = data
                .chunks(unit as usize)
                .enumerate()
                .map(|(i, c)| enc.encode(first + i as u64, c))
                .collect::<io::Result<Vec<Unit>>>()?;
            Ok(Run {
                offset: r.start,
                data,
                units,
            })
        },
        |mut run: Run| {
            check_interrupted()?;
            let end = run.offset + run.data.len() as u64;
            stats.bytes_read += run.data.len() as u64;
            let zero = run.units.iter().filter(|u| **u == Unit::Zero).count() as u64;
            stats.units_zero += zero;
            stats.units_stored += run.units.len() as u64 - zero;
            sink.write_run(&mut run)?;
            if let Ok(mut p) = pool.lock()
                && p.len() < pool_max
            {
                p.push(std::mem::take(&mut run.data));
            }
            if let Some(b) = &bar {
                b.set_position(end);
            }
            Ok(())
        },
    )?;
    if let Some(b) = &bar {
        b.set_position(size);
        b.finish_and_clear();
    }
    stats.elapsed = t0.elapsed();
    Ok(stats)
}

/// An `indicatif` bar on stderr in bytes of virtual disk, or `None` when asked to
/// be quiet or stderr is not a terminal (CI logs stay clean).
fn progress_bar(size: u64, opts: &PassOptions) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !opts.progress || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(opts.label.clone());
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        {
            let mut p = PendingFile::create(&target, false).unwrap();
            p.file_mut().write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_renames_and_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        let mut p = PendingFile::create(&target, false).unwrap();
        p.file_mut().write_all(b"one").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        let err = PendingFile::create(&target, false).err().unwrap();
        assert!(err.to_string().contains("--force"), "{err}");
        let mut p = PendingFile::create(&target, true).unwrap();
        p.file_mut().write_all(b"two").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let err = PendingFile::create(Path::new("/nonexistent-dir/x.img"), false)
            .err()
            .unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("cannot create /nonexistent-dir/x.img")
                && msg.contains("the directory /nonexistent-dir does not exist"),
            "{msg}"
        );
        // The temporary name is ours, not the user's: never shown.
        assert!(!msg.contains("vmscrub-tmp"), "{msg}");
    }

    #[test]
    fn raw_sink_leaves_holes() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("r")).unwrap();
        let mut s = RawSink::new(f.try_clone().unwrap(), 10 << 20).unwrap();
        s.write_data(5 << 20, b"abc").unwrap();
        s.finish().unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), 10 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "file is not sparse: {} blocks",
            meta.blocks()
        );
    }

    use vmscrub_blockdev::{MemDisk, RangeSet, WriteAt};

    /// Deterministic xorshift, so failures reproduce.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn runs_cover_every_allocated_byte_aligned_and_bounded() {
        let mut r = rng(42);
        for _ in 0..200 {
            let size = 1 + r() % (8 << 20);
            let unit = [512u64, 4096, 65536, 2 << 20][(r() % 4) as usize];
            let mut alloc = RangeSet::new();
            for _ in 0..(r() % 12) {
                let a = r() % size;
                let b = (a + 1 + r() % (3 << 20)).min(size);
                alloc.insert(a..b);
            }
            let runs: Vec<_> = plan_runs(&alloc, size, unit).collect();
            let run_max = RUN_BYTES.next_multiple_of(unit);
            for w in runs.windows(2) {
                assert!(w[0].end <= w[1].start, "{runs:?}");
            }
            let covered: RangeSet = runs.iter().cloned().collect();
            for x in alloc.iter() {
                assert!(covered.covers(x.clone()), "{x:?} not covered by {runs:?}");
            }
            for x in &runs {
                assert!(x.start < x.end && x.end <= size);
                assert_eq!(x.start % unit, 0, "unaligned start {x:?}");
                assert!(x.end % unit == 0 || x.end == size, "unaligned end {x:?}");
                assert_eq!(
                    x.start / run_max,
                    (x.end - 1) / run_max,
                    "crosses a run {x:?}"
                );
                // Nothing is read that no allocated byte asked for.
                let widened = x.start..x.end;
                assert!(alloc.intersects(widened.clone()), "useless run {x:?}");
            }
        }
    }

    /// The pass through an overlay with random edits gives exactly the overlay's
    /// bytes, zeroed ranges become holes, and the base is never read there.
    #[test]
    fn pass_matches_the_overlay_and_leaves_holes() {
        let mut r = rng(7);
        let size = 6 * 1024 * 1024 + 1234;
        let init: Vec<u8> = (0..size)
            .map(|i| {
                if (i / 300_000) % 2 == 0 {
                    0
                } else {
                    (i % 251) as u8 + 1
                }
            })
            .collect();
        // A base that, like a real container, allocates only where it has data:
        // edits into its unallocated ranges must reach the output too.
        struct Sparse(MemDisk, RangeSet);
        impl ReadAt for Sparse {
            fn size(&self) -> u64 {
                self.0.size()
            }
            fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
                self.0.read_exact_at(buf, offset)
            }
            fn allocated_ranges(&self) -> io::Result<RangeSet> {
                Ok(self.1.clone())
            }
        }
        let alloc: RangeSet = (0..size as u64)
            .step_by(300_000)
            .filter(|i| (i / 300_000) % 2 == 1)
            .map(|i| i..(i + 300_000).min(size as u64))
            .collect();
        let base = Sparse(MemDisk::new(init), alloc);
        let o = crate::overlay::Overlay::new(&base);
        for _ in 0..50 {
            let a = r() % size as u64;
            let len = (r() % 200_000).min(size as u64 - a);
            if r().is_multiple_of(2) {
                o.zero_range(a..a + len).unwrap();
            } else {
                let d: Vec<u8> = (0..len).map(|_| r() as u8).collect();
                o.write_all_at(&d, a).unwrap();
            }
        }
        o.zero_range(1 << 20..3 << 20).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        let mut out = create_output(&target, &OutputFormat::Raw, size as u64, false).unwrap();
        let opts = PassOptions {
            threads: 3,
            progress: false,
            label: String::new(),
        };
        let stats = write_image(&o, out.sink(), &opts).unwrap();
        out.commit().unwrap();
        let got = std::fs::read(&target).unwrap();
        let mut want = vec![0u8; size];
        o.read_exact_at(&mut want, 0).unwrap();
        assert!(got == want, "output differs from the overlay");
        assert!(stats.units_zero > 0 && stats.units_stored > 0);
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&target).unwrap();
        assert!(
            m.blocks() * 512 <= (size as u64) - (2 << 20),
            "zeroed 2 MiB was written"
        );
        // Only the temp name was ever used beside the output.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A source that fails halfway: the pass returns the error and dropping the
    /// output leaves the directory empty.
    #[test]
    fn a_read_error_leaves_nothing() {
        struct Failing(MemDisk);
        impl ReadAt for Failing {
            fn size(&self) -> u64 {
                self.0.size()
            }
            fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
                if offset >= 3 << 20 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad grain at 3 MiB",
                    ));
                }
                self.0.read_exact_at(buf, offset)
            }
        }
        let src = Failing(MemDisk::new(vec![1u8; 8 << 20]));
        let dir = tempfile::tempdir().unwrap();
        for format in [
            OutputFormat::Raw,
            OutputFormat::Vmdk {
                subformat: VmdkSubformat::StreamOptimized,
                disk: Default::default(),
            },
            OutputFormat::Vmdk {
                subformat: VmdkSubformat::MonolithicFlat,
                disk: Default::default(),
            },
            OutputFormat::Qcow2(Qcow2Options {
                compression: Some(Qcow2Compression::Zstd),
                ..Default::default()
            }),
        ] {
            let mut out =
                create_output(&dir.path().join("o.vmdk"), &format, 8 << 20, false).unwrap();
            let e = write_image(
                &src,
                out.sink(),
                &PassOptions {
                    threads: 2,
                    progress: false,
                    label: String::new(),
                },
            )
            .unwrap_err();
            assert!(e.to_string().contains("bad grain"), "{e}");
            drop(out);
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "{format:?}"
            );
        }
    }

    /// A flat VMDK is two files: both land or neither does.
    #[test]
    fn flat_output_commits_both_files_or_neither() {
        let dir = tempfile::tempdir().unwrap();
        let flat = OutputFormat::Vmdk {
            subformat: VmdkSubformat::MonolithicFlat,
            disk: Default::default(),
        };
        let target = dir.path().join("d.vmdk");
        let src = MemDisk::new(vec![5u8; 1 << 20]);
        let quiet = PassOptions {
            threads: 1,
            progress: false,
            label: String::new(),
        };
        // An existing extent name is refused up front, before anything is created.
        std::fs::write(dir.path().join("d-flat.vmdk"), b"keep").unwrap();
        let e = create_output(&target, &flat, 1 << 20, false).err().unwrap();
        assert!(e.to_string().contains("d-flat.vmdk"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::remove_file(dir.path().join("d-flat.vmdk")).unwrap();
        // The descriptor's name is taken while writing: the extent, already renamed
        // into place, is removed again.
        let mut out = create_output(&target, &flat, 1 << 20, false).unwrap();
        write_image(&src, out.sink(), &quiet).unwrap();
        std::fs::write(&target, b"someone else").unwrap();
        assert!(out.commit().is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("d.vmdk")]);
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else");
        // The normal case: both files, the descriptor naming the extent.
        std::fs::remove_file(&target).unwrap();
        let mut out = create_output(&target, &flat, 1 << 20, false).unwrap();
        write_image(&src, out.sink(), &quiet).unwrap();
        out.commit().unwrap();
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(text.contains("RW 2048 FLAT \"d-flat.vmdk\" 0"), "{text}");
        assert_eq!(
            std::fs::read(dir.path().join("d-flat.vmdk")).unwrap(),
            vec![5u8; 1 << 20]
        );
    }

    /// A qcow2 output was "not built yet" here; now: through the whole pass on
    /// several threads, compressed or not, it reads back as the source through
    /// our reader, zero ranges unallocated, and nothing but the output is left.
    #[test]
    fn qcow2_output_reads_back_and_leaves_only_itself() {
        let mut r = rng(11);
        let size = 3 * 1024 * 1024 + 4096 + 77;
        let mut data = vec![0u8; size];
        for (i, c) in data.chunks_mut(4096).enumerate() {
            match i % 5 {
                0 | 1 => {}
                2 => c.iter_mut().for_each(|b| *b = r() as u8),
                _ => c
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, b)| *b = (k / 64) as u8 ^ i as u8),
            }
        }
        let src = MemDisk::new(data.clone());
        let quiet = PassOptions {
            threads: 3,
            progress: false,
            label: String::new(),
        };
        for compression in [
            None,
            Some(Qcow2Compression::Zlib),
            Some(Qcow2Compression::Zstd),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("x.qcow2");
            let format = OutputFormat::Qcow2(Qcow2Options {
                compression,
                cluster_size: 4096,
                compat: Qcow2Compat::V1_1,
            });
            // Dropped unfinished: nothing left.
            let mut out = create_output(&target, &format, size as u64, false).unwrap();
            write_image(&src, out.sink(), &quiet).unwrap();
            drop(out);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let mut out = create_output(&target, &format, size as u64, false).unwrap();
            let stats = write_image(&src, out.sink(), &quiet).unwrap();
            out.commit().unwrap();
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("x.qcow2")]);
            let img = vmscrub_qcow2::Qcow2::open(
                vmscrub_blockdev::FileDisk::open(&target).unwrap(),
                None,
                &Default::default(),
            )
            .unwrap();
            let mut got = vec![0u8; size];
            img.read_exact_at(&mut got, 0).unwrap();
            assert!(got == data, "{compression:?}: differs");
            // 770 clusters, the last one 77 bytes; i % 5 in {0, 1} are zero.
            assert_eq!(stats.units_zero, 308, "{compression:?}");
            let allocated: u64 = img
                .allocated_ranges()
                .unwrap()
                .iter()
                .map(|r| r.end - r.start)
                .sum();
            // The last cluster maps 77 bytes, rounded up to a whole sector.
            assert_eq!(
                allocated,
                stats.units_stored * 4096 - (4096 - 512),
                "{compression:?}"
            );
            let file = std::fs::metadata(&target).unwrap().len();
            if compression.is_some() {
                assert!(file < size as u64 / 2, "{compression:?}: {file} bytes");
            }
        }
    }
}
