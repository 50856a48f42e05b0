//! A node's files are its own: whatever the umask it was started with, everything it creates is
//! readable by its user only (the Raft log and state machine hold the cluster's ticket key, the
//! token hashes and every manifest), and it refuses to start on a data directory or key file
//! that other users can read, naming the path and the fix.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::{NodeError, Result};

/// Makes every file and directory this process creates from now on private (mode 0600 / 0700):
/// called first thing in `main`, before any thread or file exists.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (the node's data directory) with mode 0700 if it is missing; refuses it when
/// it exists and other users may enter or read it.
pub fn private_dir(dir: &Path, what: &str) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(NodeError::io(format!(
                "creating the {what} {}",
                dir.display()
            )))?;
        return Ok(());
    }
    let mode = std::fs::metadata(dir)
        .map_err(NodeError::io(format!(
            "reading the {what} {}",
            dir.display()
        )))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(NodeError::Insecure(format!(
            "the {what} {} can be read by other users (mode {:o}): it holds the cluster's secrets; run `chmod -R go-rwx {}` and start the node again",
            dir.display(),
            mode & 0o777,
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_others_can_read_is_refused_with_the_fix() {
        let base = tempfile::tempdir().unwrap();
        let fresh = base.path().join("a/b");
        private_dir(&fresh, "data directory").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = private_dir(&fresh, "data directory")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mode 755") && e.contains("chmod -R go-rwx"),
            "{e}"
        );
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o700)).unwrap();
        private_dir(&fresh, "data directory").unwrap();
    }
}
