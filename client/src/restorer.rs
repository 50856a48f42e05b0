//! Carrying out a [`RestorePlan`]: every entry created and its metadata set through directory
//! descriptors beneath the target ([`Beneath`]), never through a path joined to it.
//!
//! Files get their owner, mode and time through their own descriptor once written; FIFOs,
//! device nodes and symlinks right after they are made, with `*at` calls that do not follow a
//! symlink; directories last, children before parents, so that writing into a directory does
//! not undo its time. An entry that cannot be made because of what the archive asks (a name
//! that exists, a symlink on the way) is skipped with a warning; an error of the target itself
//! (full, read-only, not permitted) ends the restore.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ironcore_chunkstore::ArchiveReader;
use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT, Uid, chmodat, chownat,
    fchmod, fchown, futimens, linkat, mkdirat, mknodat, openat, symlinkat, utimensat,
};
use rustix::io::Errno;

use crate::beneath::Beneath;
use crate::restore_payload::{PayloadCursor, Sink, copy_range};
use crate::restore_plan::{Action, RestorePlan, show, skipped};
use crate::tree_format::{Entry, EntryKind};
use crate::tree_restore::{RestoreReport, dest_err};
use crate::{ClientError, Result};

/// Why an entry was not created.
enum Failure {
    /// The entry is skipped with this reason; the restore goes on.
    Skip(String),
    /// The restore ends.
    Fatal(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Fatal(e)
    }
}

/// One restore under way.
pub(crate) struct Restorer<'a> {
    /// The whole entry list the plan indexes.
    pub(crate) entries: &'a [Entry],
    /// The target's path, for messages only.
    pub(crate) target: &'a Path,
    /// The target's directory descriptor.
    pub(crate) fs: Beneath,
    /// The payload archive, read by range.
    pub(crate) payload: ArchiveReader,
    /// The payload read in order (a whole-tree restore).
    pub(crate) cursor: Option<PayloadCursor>,
    /// Called with bytes of content written so far and in all.
    pub(crate) progress: &'a mut dyn FnMut(u64, u64),
    /// Whether owners are set.
    pub(crate) is_root: bool,
}

impl Restorer<'_> {
    /// Creates what `plan` says, then sets the directories' metadata.
    pub(crate) fn run(mut self, plan: &RestorePlan) -> Result<RestoreReport> {
        let mut report = RestoreReport {
            warnings: plan.warnings().to_vec(),
            ..RestoreReport::default()
        };
        for a in plan.ancestors() {
            let made = self.fs.parent(a).and_then(|(dir, name)| {
                mkdirat(dir, name, Mode::from_bits_truncate(0o755))
                    .or_else(|e| if e == Errno::EXIST { Ok(()) } else { Err(e) })
            });
            made.map_err(|e| dest_err(&self.shown(a))(e.into()))?;
        }
        let total = plan.steps().iter().fold(0u64, |t, s| match s.action {
            Action::File { size, .. } => t.saturating_add(size),
            _ => t,
        });
        let mut done = 0;
        let entries = self.entries;
        let mut created = vec![false; entries.len()];
        for step in plan.steps() {
            let e = &entries[step.index];
            let made = match step.action {
                Action::Dir if e.path.is_empty() => Ok(()), // the target itself
                Action::Dir => self.dir(e),
                Action::File { offset, size } => {
                    let made = self.file(e, offset, size, (&mut done, total), &mut report.warnings);
                    if made.is_ok() {
                        report.bytes += size;
                    }
                    made
                }
                Action::Special => self.special(e, &mut report.warnings),
                Action::Symlink => self.symlink(e, &mut report.warnings),
                Action::Link { first } if !created[first] => Err(Failure::Skip(format!(
                    "its first name '{}' was not restored",
                    show(&entries[first].path)
                ))),
                Action::Link { first } => self.link(e, &entries[first]),
            };
            match made {
                Ok(()) => created[step.index] = true,
                Err(Failure::Skip(why)) => {
                    report.warnings.push(skipped(&e.path, &why));
                    continue;
                }
                Err(Failure::Fatal(err)) => return Err(err),
            }
            match e.kind {
                EntryKind::Dir => report.dirs += 1,
                EntryKind::File { .. } => report.files += 1,
                _ => report.others += 1,
            }
        }
        for step in plan.steps().iter().rev() {
            if step.action == Action::Dir && created[step.index] {
                self.dir_metadata(&entries[step.index], &mut report.warnings);
            }
        }
        Ok(report)
    }

    /// The target path of `rel`, for messages.
    fn shown(&self, rel: &[u8]) -> PathBuf {
        self.target.join(OsStr::from_bytes(rel))
    }

    fn dir(&mut self, e: &Entry) -> Result<(), Failure> {
        let (dir, name) = self
            .fs
            .parent(&e.path)
            .map_err(|x| fail(self.target, &e.path, x))?;
        // Private until its metadata is set, after everything in it exists.
        mkdirat(dir, name, Mode::from_bits_truncate(0o700))
            .map_err(|x| fail(self.target, &e.path, x))
    }

    /// Writes a new file with `size` bytes of the payload at `offset`. `done` counts the
    /// content bytes written of `total`.
    fn file(
        &mut self,
        e: &Entry,
        offset: u64,
        size: u64,
        (done, total): (&mut u64, u64),
        warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let (dir, name) = self
            .fs
            .parent(&e.path)
            .map_err(|x| fail(self.target, &e.path, x))?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = openat(
            dir,
            name,
            flags | OFlags::CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|x| fail(self.target, &e.path, x))?;
        let path = self.shown(&e.path);
        let mut sink = Sink::new(File::from(fd));
        let progress = &mut self.progress;
        match self.cursor.as_mut() {
            // Files are laid out in entry order, but a backup that reused unchanged files
            // leaves bytes between them that no entry names: skip those.
            Some(c) if offset >= c.pos => {
                c.take(offset - c.pos, |_| Ok(()))?;
                c.take(size, |b| {
                    *done += b.len() as u64;
                    progress(*done, total);
                    sink.write(b).map_err(dest_err(&path))
                })?;
            }
            _ => {
                copy_range(&mut self.payload, offset, size, &mut sink, &path)?;
                *done = done.saturating_add(size);
                progress(*done, total);
            }
        }
        let file = sink.finish().map_err(dest_err(&path))?;
        set_metadata(file.as_fd(), e, self.is_root, warnings);
        Ok(())
    }

    fn special(&mut self, e: &Entry, warnings: &mut Vec<String>) -> Result<(), Failure> {
        let (ft, dev) = match e.kind {
            EntryKind::CharDevice { rdev } => (FileType::CharacterDevice, rdev),
            EntryKind::BlockDevice { rdev } => (FileType::BlockDevice, rdev),
            _ => (FileType::Fifo, 0),
        };
        let (dir, name) = self
            .fs
            .parent(&e.path)
            .map_err(|x| fail(self.target, &e.path, x))?;
        let mode = Mode::from_bits_truncate(e.mode);
        mknodat(dir, name, ft, mode, dev).map_err(|x| fail(self.target, &e.path, x))?;
        set_metadata_at(dir, name, e, self.is_root, warnings);
        // Linux has no chmod that refuses a symlink; none can be here yet: the node was made
        // just now under a unique name, and symlinks are made after every other entry.
        if let Err(err) = chmodat(dir, name, mode, AtFlags::empty()) {
            warnings.push(format!("could not set mode of '{}': {err}", show(&e.path)));
        }
        Ok(())
    }

    fn symlink(&mut self, e: &Entry, warnings: &mut Vec<String>) -> Result<(), Failure> {
        let EntryKind::Symlink { target } = &e.kind else {
            return Err(Failure::Skip("it is not a symlink".into()));
        };
        let (dir, name) = self
            .fs
            .parent(&e.path)
            .map_err(|x| fail(self.target, &e.path, x))?;
        symlinkat(target.as_slice(), dir, name).map_err(|x| fail(self.target, &e.path, x))?;
        set_metadata_at(dir, name, e, self.is_root, warnings);
        Ok(())
    }

    /// Makes `e` another name of `first`, which this restore created.
    fn link(&mut self, e: &Entry, first: &Entry) -> Result<(), Failure> {
        let (first_dir, first_name) = match first.path.iter().rposition(|b| *b == b'/') {
            Some(i) => (&first.path[..i], &first.path[i + 1..]),
            None => (&b""[..], first.path.as_slice()),
        };
        let first_dir = self
            .fs
            .open_dir(first_dir, OFlags::PATH)
            .map_err(|x| fail(self.target, &first.path, x))?;
        let (dir, name) = self
            .fs
            .parent(&e.path)
            .map_err(|x| fail(self.target, &e.path, x))?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink names the symlink, as it did when backed up.
        linkat(&first_dir, first_name, dir, name, AtFlags::empty())
            .map_err(|x| fail(self.target, &e.path, x))
    }

    fn dir_metadata(&self, e: &Entry, warnings: &mut Vec<String>) {
        match self.fs.open_dir(&e.path, OFlags::RDONLY) {
            Ok(fd) => set_metadata(fd.as_fd(), e, self.is_root, warnings),
            Err(err) => warnings.push(format!(
                "could not set metadata of '{}': {err}",
                show(&e.path)
            )),
        }
    }
}

/// Skips the entry at `rel` (beneath `target`) for an error the archive can cause; ends the
/// restore for others.
fn fail(target: &Path, rel: &[u8], e: Errno) -> Failure {
    match e {
        Errno::EXIST
        | Errno::LOOP
        | Errno::XDEV
        | Errno::NOTDIR
        | Errno::NOENT
        | Errno::NAMETOOLONG
        | Errno::INVAL
        | Errno::MLINK
        | Errno::PERM => Failure::Skip(e.to_string()),
        _ => Failure::Fatal(dest_err(&target.join(OsStr::from_bytes(rel)))(e.into())),
    }
}

/// The modification time of `e`, leaving the access time alone.
fn times(e: &Entry) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: e.mtime_sec,
            tv_nsec: i64::from(e.mtime_nsec),
        },
    }
}

/// Sets owner (as root), mode and time of the open file or directory `fd`, in that order (a
/// change of owner clears setuid and setgid bits).
fn set_metadata(fd: BorrowedFd<'_>, e: &Entry, is_root: bool, warnings: &mut Vec<String>) {
    let name = show(&e.path);
    if is_root && let Err(err) = fchown(fd, Some(uid(e)), Some(gid(e))) {
        warnings.push(format!("could not set owner of '{name}': {err}"));
    }
    if let Err(err) = fchmod(fd, Mode::from_bits_truncate(e.mode)) {
        warnings.push(format!("could not set mode of '{name}': {err}"));
    }
    if let Err(err) = futimens(fd, &times(e)) {
        warnings.push(format!("could not set time of '{name}': {err}"));
    }
}

/// Sets owner (as root) and time of `name` in `dir`, a symlink itself rather than what it
/// points to.
fn set_metadata_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    e: &Entry,
    is_root: bool,
    warnings: &mut Vec<String>,
) {
    let shown = show(&e.path);
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    if is_root && let Err(err) = chownat(dir, name, Some(uid(e)), Some(gid(e)), nofollow) {
        warnings.push(format!("could not set owner of '{shown}': {err}"));
    }
    if let Err(err) = utimensat(dir, name, &times(e), nofollow) {
        warnings.push(format!("could not set time of '{shown}': {err}"));
    }
}

fn uid(e: &Entry) -> Uid {
    Uid::from_raw(e.uid)
}

fn gid(e: &Entry) -> Gid {
    Gid::from_raw(e.gid)
}
