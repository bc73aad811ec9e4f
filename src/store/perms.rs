//! Who may read the store: its payloads and response excerpts are customer
//! data, so a data directory and store file meshes creates are its user's
//! only (0700 and 0600, like the OAuth token file). Existing ones are left
//! as their owner set them (a shared group may be deliberate), with a
//! warning when other users can read them.

use std::path::Path;

/// Permission bits that let other users in.
#[cfg(unix)]
const OTHERS: u32 = 0o077;

/// Creates `dir` (0700) and an empty `file` in it (0600) when missing, and
/// warns about the ones that existed with access for other users.
pub(super) fn prepare(dir: &Path, file: &Path) -> std::io::Result<()> {
    not_a_file(dir)?;
    let existed = (dir.exists(), file.exists());
    create_private(dir, file)?;
    if existed.0 {
        warn_if_shared(dir, "data directory");
    }
    if existed.1 {
        warn_if_shared(file, "store file");
    }
    Ok(())
}

/// A data directory path that names something else (a file) fails with
/// that said, rather than with `create_dir`'s "File exists".
pub(super) fn not_a_file(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "it is a file, not a directory (--data-dir names the directory meshes keeps its store in)",
        )),
        // A dangling symlink: `create_dir` would say only "File exists".
        Err(_) if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) => {
            let target = std::fs::read_link(dir).unwrap_or_default();
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "it is a symbolic link to {}, which does not exist (create that directory, or \
                     point --data-dir elsewhere)",
                    target.display()
                ),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn create_private(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // An empty file is what redb itself creates before writing its header.
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn create_private(dir: &Path, _file: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(mode) = std::fs::metadata(path).map(|m| m.permissions().mode()) else { return };
    if mode & OTHERS != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the {what} is open to other users and holds event payloads and response excerpts: \
             restrict it to the user meshes runs as (chmod go-rwx)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _what: &str) {}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_meshes_creates_is_private_and_what_exists_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/data");
        let file = dir.join("meshes.redb");
        prepare(&dir, &file).unwrap();
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(mode(&tmp.path().join("a")), 0o700);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        let file = shared.join("meshes.redb");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        prepare(&shared, &file).unwrap();
        assert_eq!((mode(&shared), mode(&file)), (0o750, 0o640));
    }

    #[test]
    fn a_dangling_symlink_as_the_data_directory_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("data");
        std::os::unix::fs::symlink(tmp.path().join("gone"), &link).unwrap();
        let err = prepare(&link, &link.join("meshes.redb")).unwrap_err().to_string();
        let gone = tmp.path().join("gone");
        assert_eq!(
            err,
            format!(
                "it is a symbolic link to {}, which does not exist (create that directory, or \
                 point --data-dir elsewhere)",
                gone.display()
            )
        );
    }
}
