//! ext3/4 journal recovery, in memory, shared by every verb.
//!
//! An image taken from a running or crashed system may hold committed
//! transactions its journal has not yet written to their places: the guest's
//! next mount (or `e2fsck`) replays them first. vmscrub shows and cleans that
//! state, not the stale one on disk, so `ls`, `cat`, `scan`, `inspect` and
//! `scrub` all see the same tree:
//!
//! - [`recover`] replays into a writable device (the scrub's overlay, written to
//!   the output, where the journal is then reset to empty);
//! - [`replayed_view`] replays into a private in-memory [`Overlay`] over one
//!   volume, for the read verbs. The input is never written.
//!
//! Both go through the same replay (the ext4 editor's, which verifies the log's
//! checksums and refuses a damaged log rather than replaying part of it).

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, WriteAt};

use crate::overlay::Overlay;

/// Whether the ext2/3/4 filesystem on `dev` has a journal to replay: the
/// `needs_recovery` flag, or a log that is not empty (e2fsck replays it
/// "anyway"). `false` when the filesystem cannot be opened: the caller's own
/// open then names why.
pub fn pending<D: ReadAt>(dev: D) -> bool {
    let Ok(fs) = vmscrub_ext4::Ext4::open(dev) else {
        return false;
    };
    fs.needs_recovery()
        || fs
            .journal()
            .ok()
            .flatten()
            .is_some_and(|j| j.superblock.start != 0)
}

/// Replays, through `dev`, the committed transactions of a journal that needs
/// recovery, and resets the journal to empty. Returns a note for the user;
/// `Ok(None)` when there was nothing to replay. An error says why the journal
/// cannot be replayed (`dev` is then left as it was: the editor writes only at
/// commit).
pub fn recover<D: WriteAt + Clone>(dev: D) -> anyhow::Result<Option<String>> {
    use vmscrub_ext4::{Editor, EditorOptions};
    if !pending(dev.clone()) {
        return Ok(None);
    }
    let ed = Editor::open(dev, EditorOptions::default())?;
    let stats = ed.replay_stats();
    ed.commit()?;
    Ok(Some(match stats {
        Some(r) => format!(
            "the journal needed recovery: {} committed transaction(s) replayed ({} block(s), {} revoked), \
             then the journal was reset to empty",
            r.transactions, r.blocks_replayed, r.blocks_revoked
        ),
        None => "the journal needed recovery; it was reset to empty".to_string(),
    }))
}

/// What a read verb should read a volume through.
pub enum View<D> {
    /// Nothing to replay: the volume as it is.
    AsIs(D),
    /// The journal replayed in memory, and the note saying so.
    Replayed(Arc<Overlay<D>>, String),
    /// The journal needs recovery but cannot be replayed: the volume as it is,
    /// and the warning naming why.
    Unreplayable(D, String),
}

/// The state of the volume on `dev` after its journal's replay, held in an
/// in-memory overlay (bounded by the log's size); `dev` itself is only read.
pub fn replayed_view<D: ReadAt + Clone>(dev: D) -> View<D> {
    if !pending(dev.clone()) {
        return View::AsIs(dev);
    }
    let overlay = Arc::new(Overlay::new(dev.clone()));
    match recover(overlay.clone()) {
        Ok(Some(note)) => View::Replayed(
            overlay,
            format!("{note} (in memory; the image is unchanged)"),
        ),
        Ok(None) => View::AsIs(dev),
        Err(e) => View::Unreplayable(
            dev,
            format!(
                "the journal needs recovery (the image was taken from a running or crashed \
                 system) and cannot be replayed: {e:#}; this shows the on-disk state, so the \
                 most recent changes may be missing (`scrub` refuses it: replay it with e2fsck \
                 on a copy first)"
            ),
        ),
    }
}
