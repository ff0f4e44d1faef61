//! Backing chains: resolving the names images give, and opening a whole chain
//! through an opener the caller supplies.
//!
//! The names come from the images, which may be hostile: an absolute path to a
//! device node, `../../etc/shadow`, a qemu protocol string. This module only
//! computes paths; every open goes through the caller's `open_file`, which is where
//! the policy lives (refuse absolute names, require the same directory, …).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Result};
use crate::header::{Header, Info};
use crate::image::{OpenOptions, Qcow2};

/// A qcow2 image over a type-erased container file, as [`open_chain`] returns.
pub type DynQcow2 = Qcow2<Box<dyn ReadAt>>;

/// A chain deeper than this is refused by [`open_chain`] callers that pass it.
pub const DEFAULT_MAX_DEPTH: usize = 16;

/// Resolves a backing file name as qemu does for plain file names: an absolute name
/// as it is, a relative one against the directory of the image that names it.
/// Purely lexical: nothing is opened or canonicalized.
pub fn resolve_backing_path(image: &Path, name: &Path) -> PathBuf {
    if name.is_absolute() {
        return name.to_path_buf();
    }
    image.parent().unwrap_or(Path::new("")).join(name)
}

/// How one link of a chain is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFormat {
    Qcow2(Info),
    /// A raw image (named `raw`, or unnamed and without the qcow2 magic).
    Raw {
        size: u64,
    },
}

/// One image of a backing chain, top first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub path: PathBuf,
    pub format: LinkFormat,
}

struct Opened {
    path: PathBuf,
    file: Box<dyn ReadAt>,
    header: Option<Header>,
}

/// Opens the qcow2 image at `top` and every backing image below it, each through
/// `open_file` (the caller's policy: it may refuse a path with an error), and
/// returns the top image, reading through the whole chain, plus a description of
/// the chain (top first).
///
/// Backing formats: `qcow2` and `raw`; with no format recorded, the image is
/// probed by its magic, as qemu does (a raw backing file that starts with the qcow2
/// magic would be misread — record the format to avoid that). Other formats are
/// refused. Chains deeper than `max_depth` links below the top, and names that
/// repeat an earlier path, are refused.
pub fn open_chain<O>(
    top: &Path,
    mut open_file: O,
    options: &OpenOptions,
    max_depth: usize,
) -> Result<(DynQcow2, Vec<ChainLink>)>
where
    O: FnMut(&Path) -> io::Result<Box<dyn ReadAt>>,
{
    let chain_err = |path: &Path, why: String| Error::Chain {
        path: path.display().to_string(),
        why,
    };
    let mut opened: Vec<Opened> = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some((top.to_path_buf(), Some("qcow2".to_owned())));
    while let Some((path, format)) = next.take() {
        if opened.len() > max_depth {
            return Err(chain_err(
                &path,
                format!("the backing chain is deeper than {max_depth} images"),
            ));
        }
        if !seen.insert(path.clone()) {
            return Err(chain_err(
                &path,
                "the backing chain loops back to this image".into(),
            ));
        }
        let file = open_file(&path).map_err(|e| chain_err(&path, format!("cannot open: {e}")))?;
        let is_qcow2 = match format.as_deref() {
            Some("qcow2") => true,
            Some("raw") => false,
            None => crate::is_qcow2(&file),
            Some(other) => {
                return Err(chain_err(
                    &path,
                    format!("backing format {other:?} is not supported (qcow2 or raw)"),
                ));
            }
        };
        let header = if is_qcow2 {
            let wrap = |e: Error| {
                if opened.is_empty() {
                    e
                } else {
                    Error::InBacking {
                        path: path.display().to_string(),
                        source: Box::new(e),
                    }
                }
            };
            let h = Header::read(&file).map_err(wrap)?;
            h.check_supported().map_err(wrap)?;
            if let Some(b) = &h.backing_file {
                next = Some((resolve_backing_path(&path, b.path()), b.format.clone()));
            }
            Some(h)
        } else {
            None
        };
        opened.push(Opened { path, file, header });
    }

    let links = opened
        .iter()
        .map(|o| ChainLink {
            path: o.path.clone(),
            format: match &o.header {
                Some(h) => LinkFormat::Qcow2(h.info()),
                None => LinkFormat::Raw {
                    size: o.file.size(),
                },
            },
        })
        .collect();

    let mut below: Option<Arc<dyn ReadAt>> = None;
    while opened.len() > 1 {
        let Some(o) = opened.pop() else { break };
        below = Some(match o.header {
            None => Arc::from(o.file),
            Some(h) => {
                let path = o.path.display().to_string();
                let q = Qcow2::with_header(o.file, h, below.take(), options).map_err(|e| {
                    Error::InBacking {
                        path,
                        source: Box::new(e),
                    }
                })?;
                Arc::new(q)
            }
        });
    }
    let Some(top) = opened.pop() else {
        return Err(chain_err(top, "nothing was opened".into()));
    };
    let Some(header) = top.header else {
        return Err(chain_err(&top.path, "the top image is not qcow2".into()));
    };
    let image = Qcow2::with_header(top.file, header, below, options)?;
    Ok((image, links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_resolve_next_to_the_image() {
        assert_eq!(
            resolve_backing_path(Path::new("/a/b/top.qcow2"), Path::new("base.qcow2")),
            Path::new("/a/b/base.qcow2")
        );
        assert_eq!(
            resolve_backing_path(Path::new("/a/b/top.qcow2"), Path::new("../c/base")),
            Path::new("/a/b/../c/base")
        );
        assert_eq!(
            resolve_backing_path(Path::new("top.qcow2"), Path::new("base")),
            Path::new("base")
        );
        assert_eq!(
            resolve_backing_path(Path::new("/a/top"), Path::new("/etc/shadow")),
            Path::new("/etc/shadow")
        );
    }
}
