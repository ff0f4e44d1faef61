//! Writing output files safely: a temporary name beside the target, `fsync`, then
//! rename. An interrupted run (Ctrl-C, disk full, a read error halfway) leaves no
//! partial output behind, and an existing file is never replaced without `--force`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

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
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .with_context(|| format!("{} is not a file name", target.display()))?
            .to_string_lossy()
            .into_owned();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".vmscrub-tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
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

/// Receives the output pass: data at increasing offsets; everything not written
/// reads as zeros. Implemented by the raw, qcow2 and VMDK writers.
pub trait ImageSink {
    fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Completes the image (tables, footers, final size). Called once, after the
    /// last `write_data`.
    fn finish(&mut self) -> io::Result<()>;
}

/// A raw image: data written in place, gaps left as holes, length set at the end.
pub struct RawSink<'a> {
    file: &'a File,
    size: u64,
}

impl<'a> RawSink<'a> {
    pub fn new(file: &'a File, size: u64) -> Self {
        Self { file, size }
    }
}

impl ImageSink for RawSink<'_> {
    fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(data, offset)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.set_len(self.size)
    }
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
        assert!(
            format!("{err:#}").contains("cannot create a file in /nonexistent-dir"),
            "{err:#}"
        );
    }

    #[test]
    fn raw_sink_leaves_holes() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("r")).unwrap();
        let mut s = RawSink::new(&f, 10 << 20);
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
}
