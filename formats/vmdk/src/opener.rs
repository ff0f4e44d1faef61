//! How extent files named in a descriptor are found.
//!
//! The descriptor is untrusted text: `RW 1 FLAT "/etc/shadow" 0` or
//! `"../../home/u/.ssh/id_rsa"` would otherwise make vmscrub read (and then copy
//! into a "cleaned" image) arbitrary host files. So the reader never opens paths
//! itself; it asks an [`ExtentOpener`], and the ready-made [`DirExtentOpener`]
//! confines names to the descriptor's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmscrub_blockdev::{ConfineError, FileDisk, ReadAt, resolve_named_file};

use crate::error::{Result, VmdkError};

/// Opens the extent file a descriptor names. Implementations decide what a name
/// means (a file next to the descriptor, an entry in an archive, a test buffer).
pub trait ExtentOpener {
    fn open(&self, name: &str) -> Result<Arc<dyn ReadAt>>;
}

/// Resolves extent names relative to one directory (normally the descriptor's).
///
/// Unless built with [`DirExtentOpener::allow_outside`], it refuses absolute
/// names, `..` components, and names whose symlinks lead outside the directory;
/// in every mode it refuses anything that is not a regular file (a FIFO would
/// block the open forever, a device is not an extent).
#[derive(Debug, Clone)]
pub struct DirExtentOpener {
    dir: PathBuf,
    allow_outside: bool,
}

impl DirExtentOpener {
    /// Confined to `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            allow_outside: false,
        }
    }

    /// For descriptors the user vouches for: absolute and `..` names are followed.
    pub fn allow_outside(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            allow_outside: true,
        }
    }

    /// The opener for the extents of the descriptor at `descriptor`.
    pub fn for_descriptor(descriptor: &Path) -> Self {
        let dir = match descriptor.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::new(dir)
    }

    /// Where `name` resolves to, after the confinement checks
    /// ([`vmscrub_blockdev::resolve_named_file`], shared by every container reader).
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        resolve_named_file(&self.dir, name, self.allow_outside).map_err(|e| match e {
            ConfineError::Refused(reason) => VmdkError::ExtentPathRefused {
                name: name.to_string(),
                reason,
            },
            ConfineError::Io { path, source } => VmdkError::io(
                format!("extent file {name:?}: cannot resolve {}", path.display()),
                source,
            ),
        })
    }
}

impl ExtentOpener for DirExtentOpener {
    fn open(&self, name: &str) -> Result<Arc<dyn ReadAt>> {
        let path = self.resolve(name)?;
        let disk = FileDisk::open(&path)
            .map_err(|e| VmdkError::io(format!("cannot open extent file {}", path.display()), e))?;
        Ok(Arc::new(disk))
    }
}

/// An opener for disks that must not have extent files (tests, single-file images).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExtentFiles;

impl ExtentOpener for NoExtentFiles {
    fn open(&self, name: &str) -> Result<Arc<dyn ReadAt>> {
        Err(VmdkError::ExtentPathRefused {
            name: name.to_string(),
            reason: "this disk was opened without extent files".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_names_to_the_directory() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("img");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("ok.vmdk"), b"x").unwrap();
        std::fs::write(dir.join("sub/deep.vmdk"), b"x").unwrap();
        std::fs::write(outer.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret"), dir.join("escape.vmdk")).unwrap();
        std::os::unix::fs::symlink("ok.vmdk", dir.join("inside.vmdk")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("subdir-link")).unwrap();
        nix_mkfifo(&dir.join("fifo.vmdk"));

        let o = DirExtentOpener::new(&dir);
        assert!(o.open("ok.vmdk").is_ok());
        assert!(o.open("sub/deep.vmdk").is_ok());
        assert!(o.open("./ok.vmdk").is_ok());
        assert!(o.open("inside.vmdk").is_ok());
        assert!(o.open("subdir-link/deep.vmdk").is_ok());
        for (name, needle) in [
            ("../secret", "`..`"),
            ("sub/../../secret", "`..`"),
            ("..\\secret", "`..`"),
            ("/etc/passwd", "absolute"),
            ("\\\\server\\share", "absolute"),
            ("C:\\x.vmdk", "absolute"),
            ("escape.vmdk", "symlink"),
            ("fifo.vmdk", "regular file"),
            ("sub", "regular file"),
            ("", "empty"),
        ] {
            let e = o.open(name).err().unwrap();
            assert!(
                matches!(e, VmdkError::ExtentPathRefused { .. }),
                "{name}: {e}"
            );
            assert!(e.to_string().contains(needle), "{name}: {e}");
        }
        assert!(matches!(
            o.open("missing.vmdk").err().unwrap(),
            VmdkError::Io { .. }
        ));

        let lax = DirExtentOpener::allow_outside(&dir);
        assert!(lax.open("../secret").is_ok());
        assert!(lax.open("escape.vmdk").is_ok());
        assert!(
            lax.open(outer.path().join("secret").to_str().unwrap())
                .is_ok()
        );
        assert!(lax.open("fifo.vmdk").is_err());
    }

    fn nix_mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}
