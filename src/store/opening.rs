//! What opening the store file says when the file is not right: a file
//! whose creation never finished is set aside, and a damaged one (redb's
//! error, or a panic out of redb) is named with what to do about it.

use std::path::{Path, PathBuf};

/// redb's magic number is the first 9 bytes, and written last.
const MAGIC_LEN: usize = 9;

/// What to do with a store file that will not open as it is.
pub(super) const DAMAGED_HINT: &str = "restore a copy of the data directory taken while `meshes \
     serve` was stopped (or from an atomic filesystem snapshot), or move the file aside (do not \
     delete it) to start with an empty store";

/// Largest file a creation killed midway leaves (redb's initial layout is
/// ~72 KiB), and most non-zero bytes in it (the header without its magic:
/// ~40). A store that ever held an event is larger or fuller, so a damaged
/// one (a disk that zeroed its first block) is never mistaken for it.
const UNFINISHED_MAX_LEN: u64 = 1 << 20;
const UNFINISHED_MAX_FILLED: usize = 512;

/// Before redb opens `file`: an empty file (killed before redb wrote
/// anything, or emptied by hand) opens as a new store, which is logged.
pub(super) fn note_if_empty(file: &Path) {
    if std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() == 0) {
        tracing::warn!(
            path = %file.display(),
            "the store file is empty (a first start stopped before it wrote anything, or a file \
             emptied by hand): starting with an empty store"
        );
    }
}

/// After redb refused `file` for its magic number (so no other process
/// holds it: redb takes its lock first). redb writes the magic last, so a
/// file killed during the very first start has zeros there and would be
/// refused for ever: such a file never held an acknowledged event, so it is
/// moved aside (never deleted) and `true` says to create the store afresh.
/// Anything larger or fuller than a creation leaves is left for the error.
pub(super) fn set_aside_if_unfinished(file: &Path) -> std::io::Result<bool> {
    let meta = std::fs::metadata(file)?;
    if !meta.is_file() || meta.len() > UNFINISHED_MAX_LEN {
        return Ok(false);
    }
    let bytes = std::fs::read(file)?;
    let filled = bytes.iter().filter(|b| **b != 0).count();
    if bytes.iter().take(MAGIC_LEN).any(|b| *b != 0) || filled > UNFINISHED_MAX_FILLED {
        return Ok(false);
    }
    let aside = free_name(file);
    std::fs::rename(file, &aside)?;
    tracing::warn!(
        path = %file.display(),
        moved_to = %aside.display(),
        bytes = meta.len(),
        "the store file was never finished (its header is zeros: a first start was killed while \
         creating it, so it never held an acknowledged event); moved it aside and creating the \
         store afresh"
    );
    Ok(true)
}

/// Whether redb refused the file for its magic number.
pub(super) fn is_magic_mismatch(e: &redb::DatabaseError) -> bool {
    use redb::{DatabaseError, StorageError};
    matches!(e, DatabaseError::Storage(StorageError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData)
}

/// `<file>.unfinished-<unix ms>`, with a counter if that is taken.
fn free_name(file: &Path) -> PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let base = file.with_file_name(format!("{name}.unfinished-{ms}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// redb's open error, with what to do when it says the file is damaged or
/// held by another process.
pub(super) fn explain(e: &redb::DatabaseError, file: &Path) -> String {
    use redb::{DatabaseError, StorageError};
    match e {
        DatabaseError::DatabaseAlreadyOpen => format!(
            "{e} ({} is open in another process: another `meshes serve` on the same data \
             directory?)",
            file.display()
        ),
        DatabaseError::Storage(StorageError::Corrupted(_)) => {
            format!("{e}: {} may be damaged; {DAMAGED_HINT}", file.display())
        }
        // The magic number check, on a file that is not all zeros there.
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            format!(
                "{e}: {} is not a store file, or its header is damaged; {DAMAGED_HINT}",
                file.display()
            )
        }
        _ => e.to_string(),
    }
}

/// What a panic out of redb while opening or reading `file` means.
pub(super) fn panicked(file: &Path) -> String {
    format!(
        "the store file {} may be damaged (reading it panicked: see the panic record before \
         this line; if it names a place in meshes rather than redb, it is a bug to report, and \
         the file may be fine); {DAMAGED_HINT}",
        file.display()
    )
}
