//! The restore target as a directory file descriptor, and names resolved beneath it.
//!
//! A restore never joins a name from an archive to the target's path: it opens the directory
//! holding each name with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the
//! target's descriptor, and creates or changes the last component with an `*at` call on that
//! directory. A symlink anywhere on the way, or a name that climbs out, fails the lookup.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, fstat, openat, openat2};
use rustix::io::{Errno, Result};

/// How every name is resolved: beneath the target, through no symlink of any kind.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// A restore target whose names are resolved beneath it without following symlinks.
#[derive(Debug)]
pub(crate) struct Beneath {
    root: OwnedFd,
    /// The directory of the last name looked up: entries come in walk order, so the next name
    /// is most often in the same directory.
    last: Option<(Vec<u8>, OwnedFd)>,
}

impl Beneath {
    /// Opens the target directory. Its own path is the user's and is resolved as usual.
    pub(crate) fn open(target: &Path) -> Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(target, flags, Mode::empty())?;
        Ok(Self { root, last: None })
    }

    /// Opens the directory `rel` beneath the target (the target itself when `rel` is empty)
    /// with `flags`, to which `O_DIRECTORY` and `O_CLOEXEC` are added.
    pub(crate) fn open_dir(&self, rel: &[u8], flags: OFlags) -> Result<OwnedFd> {
        open_beneath(self.root.as_fd(), rel, flags)
    }

    /// The directory holding the non-empty name `rel`, opened `O_PATH`, and the name's last
    /// component.
    pub(crate) fn parent<'p>(&mut self, rel: &'p [u8]) -> Result<(BorrowedFd<'_>, &'p [u8])> {
        let Some(i) = rel.iter().rposition(|b| *b == b'/') else {
            return Ok((self.root.as_fd(), rel));
        };
        let (dir, name) = (&rel[..i], &rel[i + 1..]);
        let last = match self.last.take() {
            Some((p, fd)) if p == dir => (p, fd),
            _ => (
                dir.to_vec(),
                open_beneath(self.root.as_fd(), dir, OFlags::PATH)?,
            ),
        };
        let fd: &OwnedFd = &self.last.insert(last).1;
        Ok((fd.as_fd(), name))
    }
}

/// Opens the directory `rel` beneath `root` with `openat2`, or component by component where
/// the kernel lacks it (before Linux 5.6, or a seccomp filter that refuses it).
fn open_beneath(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> Result<OwnedFd> {
    let flags = flags | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if rel.is_empty() {
        return openat(root, c".", flags, Mode::empty());
    }
    // No O_NOFOLLOW: with O_PATH it would open a trailing symlink itself, where
    // RESOLVE_NO_SYMLINKS refuses it.
    // RESOLVE_BENEATH answers EAGAIN when a rename elsewhere raced the lookup: try again.
    for _ in 0..8 {
        match openat2(root, rel, flags, Mode::empty(), RESOLVE) {
            Err(Errno::AGAIN) => continue,
            Err(Errno::NOSYS) => return walk(root, rel, flags | OFlags::NOFOLLOW),
            r => return r,
        }
    }
    Err(Errno::AGAIN)
}

/// Opens the directory `rel` beneath `root` one component at a time, each with `O_NOFOLLOW`
/// and checked to be a directory: what `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` does
/// in one call. `.`, `..` and empty components are refused.
fn walk(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> Result<OwnedFd> {
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut parts = rel.split(|b| *b == b'/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        if matches!(part, b"" | b"." | b"..") {
            return Err(Errno::INVAL);
        }
        let at = dir.as_ref().map_or(root, AsFd::as_fd);
        let f = if parts.peek().is_none() {
            flags | OFlags::NOFOLLOW
        } else {
            step
        };
        let fd = openat(at, part, f, Mode::empty())?;
        // O_PATH | O_NOFOLLOW opens a symlink itself: make sure this is a directory.
        if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::Directory {
            return Err(Errno::NOTDIR);
        }
        dir = Some(fd);
    }
    dir.ok_or(Errno::INVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A target with a directory `a/b` and a symlink `a/up` to the directory above the target.
    fn scene() -> (tempfile::TempDir, Beneath) {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        fs::create_dir_all(t.join("a/b")).unwrap();
        std::os::unix::fs::symlink(dir.path(), t.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", t.join("a/b-link")).unwrap();
        let b = Beneath::open(&t).unwrap();
        (dir, b)
    }

    #[test]
    fn directories_resolve_beneath_the_target_and_never_through_a_symlink() {
        let (_dir, mut b) = scene();
        for lookup in [open_beneath, walk] {
            let root = b.root.as_fd();
            assert!(lookup(root, b"a/b", OFlags::PATH).is_ok());
            for bad in [
                &b"a/up"[..],
                b"a/up/t",
                b"a/b-link",
                b"a/../..",
                b"a/nothing",
            ] {
                assert!(lookup(root, bad, OFlags::PATH).is_err(), "{bad:?} opened");
            }
        }
        assert!(b.parent(b"a/up/t/x").is_err());
        let (_, name) = b.parent(b"a/b/x").unwrap();
        assert_eq!(name, b"x");
    }
}
