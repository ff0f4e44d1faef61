//! Resolving a file name written inside an image (a qcow2 backing file, a VMDK
//! extent) to a host path.
//!
//! Such names are untrusted: `RW 1 FLAT "/etc/shadow" 0` or a backing file of
//! `../../home/u/.ssh/id_rsa` would otherwise make vmscrub read arbitrary host
//! files and copy them into a "cleaned" image. Every container reader resolves
//! names through this one function so the rule is the same everywhere.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a name was not resolved.
#[derive(Debug)]
pub enum ConfineError {
    /// The name breaks the policy (the message says which rule).
    Refused(String),
    /// The file could not be found or inspected.
    Io { path: PathBuf, source: io::Error },
}

impl std::fmt::Display for ConfineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfineError::Refused(r) => f.write_str(r),
            ConfineError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ConfineError {}

/// Resolves `name` relative to `dir`. Unless `allow_outside`, absolute names,
/// `..` components (also with `\` separators) and symlinks that lead outside
/// `dir` are refused. In every mode the result must be a regular file: a FIFO
/// would block the open forever, and a device is not a disk image.
pub fn resolve_named_file(
    dir: &Path,
    name: &str,
    allow_outside: bool,
) -> Result<PathBuf, ConfineError> {
    let refuse = |r: &str| Err(ConfineError::Refused(r.to_string()));
    if name.is_empty() || name.contains('\0') {
        return refuse("the name is empty or contains NUL");
    }
    let rel = Path::new(name);
    if !allow_outside {
        if rel.is_absolute() || name.starts_with('\\') || name.get(1..3) == Some(":\\") {
            return refuse("absolute paths named by an image are not followed");
        }
        if rel.components().any(|c| matches!(c, Component::ParentDir))
            || name.split('\\').any(|p| p == "..")
        {
            return refuse("`..` in a path named by an image is not followed");
        }
    }
    let joined = dir.join(rel);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfineError::Io { path, source }
    };
    let real = joined.canonicalize().map_err(io_err(&joined))?;
    if !allow_outside {
        let base = dir.canonicalize().map_err(io_err(dir))?;
        if !real.starts_with(&base) {
            return Err(ConfineError::Refused(format!(
                "a symlink leads outside the image's directory {}: it resolves to {}",
                base.display(),
                real.display()
            )));
        }
    }
    let meta = std::fs::metadata(&real).map_err(io_err(&real))?;
    if !meta.file_type().is_file() {
        return Err(ConfineError::Refused(format!(
            "{} is not a regular file",
            real.display()
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement_rules() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("images");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.img"), b"x").unwrap();
        std::fs::write(dir.join("sub/b.img"), b"x").unwrap();
        std::fs::write(outer.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink("a.img", dir.join("inner-link")).unwrap();

        assert!(resolve_named_file(&dir, "a.img", false).is_ok());
        assert!(resolve_named_file(&dir, "sub/b.img", false).is_ok());
        assert!(resolve_named_file(&dir, "inner-link", false).is_ok());
        for bad in [
            "../secret",
            "/etc/passwd",
            "sub/../../secret",
            "..\\secret",
            "C:\\x",
            "link",
            "",
            "sub",
            "a\0b",
        ] {
            assert!(
                matches!(
                    resolve_named_file(&dir, bad, false),
                    Err(ConfineError::Refused(_))
                ),
                "{bad:?} was not refused"
            );
        }
        assert!(resolve_named_file(&dir, "../secret", true).is_ok());
        assert!(resolve_named_file(&dir, "link", true).is_ok());
        assert!(matches!(
            resolve_named_file(&dir, "sub", true),
            Err(ConfineError::Refused(_))
        ));
        assert!(matches!(
            resolve_named_file(&dir, "missing", false),
            Err(ConfineError::Io { .. })
        ));
    }
}
