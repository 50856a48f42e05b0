//! The restore planner: which entries of a tree archive a restore creates, how, and in what
//! order. Pure: it reads the entry list and the options and touches no file.
//!
//! An archive is untrusted input (a datastore can be written by others, a snapshot can be
//! crafted). The planner skips, with a warning naming it, every entry that could lead a
//! restore outside its target or that it was not asked to create:
//!
//! - names that are absolute, empty, or have `.`, `..` or empty components or a NUL byte;
//! - a name seen before in the archive;
//! - an entry whose parent is not a directory this restore creates (say, under a symlink);
//! - a hard link to a name that is unsafe, or that this restore has not restored before the
//!   link (a partial restore writes the content of a file it did not select instead);
//! - device nodes, unless asked for with [`RestoreOptions::device_nodes`] and running as root.
//!
//! Symlinks come last, after every other entry, so no entry is ever created through one; the
//! restore resolves every name beneath the target without following symlinks besides.

use std::collections::{HashMap, HashSet};

use crate::tree_format::{Entry, EntryKind};
use crate::tree_restore::RestoreOptions;
use crate::{ClientError, Result};

/// How one entry is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A directory (the target itself for the root entry, whose path is empty).
    Dir,
    /// A regular file with `size` bytes of the payload from `offset`: a file entry, or a hard
    /// link whose first name a partial restore does not restore.
    File {
        /// Where the content starts in the payload.
        offset: u64,
        /// Its length.
        size: u64,
    },
    /// A FIFO or a device node.
    Special,
    /// A symbolic link, created after every other entry.
    Symlink,
    /// Another name of the entry at index `first`, planned before this one.
    Link {
        /// Index of the first name in the entry list.
        first: usize,
    },
}

/// One entry to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the entry in the entry list.
    pub index: usize,
    /// How it is created.
    pub action: Action,
}

/// The entries a restore creates, in the order it creates them.
#[derive(Clone, Debug, Default)]
pub struct RestorePlan {
    ancestors: Vec<Vec<u8>>,
    steps: Vec<Step>,
    warnings: Vec<String>,
}

impl RestorePlan {
    /// Plans the restore of `entries` (a whole decoded entry list) with `options`; `is_root`
    /// says whether the restore runs as root. Fails only when [`RestoreOptions::only`] names
    /// nothing in the list (or an unsafe name); every refused entry is a warning.
    pub fn new(entries: &[Entry], options: &RestoreOptions, is_root: bool) -> Result<Self> {
        let only = options
            .only
            .as_deref()
            .map(|p| p.trim_matches('/').as_bytes());
        let selected: Vec<usize> = (0..entries.len())
            .filter(|i| only.is_none_or(|p| within(&entries[*i].path, p)))
            .collect();
        // (An unsafe name is in no snapshot this restore would restore.)
        let unsafe_only = only.is_some_and(|p| !p.is_empty() && check_name(p).is_err());
        if (only.is_some() && selected.is_empty()) || unsafe_only {
            return Err(not_in_snapshot(only));
        }
        let ancestors: Vec<&[u8]> = only.map(proper_prefixes).unwrap_or_default();
        let mut planner = Planner {
            entries,
            options,
            is_root,
            partial: only.is_some(),
            selected: selected
                .iter()
                .map(|i| entries[*i].path.as_slice())
                .collect(),
            dirs: ancestors.iter().copied().chain([&b""[..]]).collect(),
            seen: HashSet::new(),
            leaves: HashMap::new(),
            by_path: entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.path.as_slice(), i))
                .collect(),
        };
        let mut plan = RestorePlan {
            ancestors: ancestors.iter().map(|a| a.to_vec()).collect(),
            ..RestorePlan::default()
        };
        let mut late = Vec::new();
        for index in selected {
            match planner.action(index) {
                Ok(action) => {
                    let step = Step { index, action };
                    if planner.is_late(action) {
                        late.push(step);
                    } else {
                        plan.steps.push(step);
                    }
                }
                Err(why) => plan.warnings.push(skipped(&entries[index].path, &why)),
            }
        }
        plan.steps.extend(late);
        Ok(plan)
    }

    /// Directories to create before the steps, parents first: those above the file or subtree
    /// a partial restore selects. They are not entries, so they keep default metadata.
    pub fn ancestors(&self) -> &[Vec<u8>] {
        &self.ancestors
    }

    /// The entries to create, in order: everything but symlinks in archive order (so parents
    /// before children), then symlinks and the hard links to them.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// One line for each entry skipped, naming it and saying why.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// What the planner knows while it walks the entry list.
struct Planner<'e> {
    entries: &'e [Entry],
    options: &'e RestoreOptions,
    is_root: bool,
    partial: bool,
    /// Names of the selected entries.
    selected: HashSet<&'e [u8]>,
    /// Directories that will exist: the target, the ancestors of a partial restore, and the
    /// directory entries planned so far.
    dirs: HashSet<&'e [u8]>,
    /// Names of the selected entries looked at so far.
    seen: HashSet<&'e [u8]>,
    /// Planned entries a hard link may name: files, FIFOs, devices and symlinks.
    leaves: HashMap<&'e [u8], usize>,
    /// Every entry of the list by name (the last one of a name).
    by_path: HashMap<&'e [u8], usize>,
}

impl<'e> Planner<'e> {
    /// How to create entry `index`, or why not.
    fn action(&mut self, index: usize) -> Result<Action, String> {
        let e = &self.entries[index];
        let path = e.path.as_slice();
        if path.is_empty() {
            if !matches!(e.kind, EntryKind::Dir) {
                return Err("the root of a tree must be a directory".into());
            }
        } else {
            check_name(path)?;
        }
        if !self.seen.insert(path) {
            return Err("the archive names it twice".into());
        }
        if let Some(parent) = parent(path)
            && !self.dirs.contains(parent)
        {
            return Err(format!(
                "its parent '{}' is not a directory this restore creates",
                show(parent)
            ));
        }
        let action = match &e.kind {
            EntryKind::Dir => {
                self.dirs.insert(path);
                return Ok(Action::Dir);
            }
            EntryKind::File { offset, size } => Action::File {
                offset: *offset,
                size: *size,
            },
            EntryKind::Symlink { .. } => Action::Symlink,
            EntryKind::Fifo => Action::Special,
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                if !self.options.device_nodes {
                    return Err("device nodes are restored only when asked \
                                (restore option device_nodes)"
                        .into());
                }
                if !self.is_root {
                    return Err("device nodes can only be created by root".into());
                }
                Action::Special
            }
            EntryKind::HardLink { target } => return self.link(target),
        };
        self.leaves.insert(path, index);
        Ok(action)
    }

    /// How to create a hard link to `target`, or why not.
    fn link(&self, target: &[u8]) -> Result<Action, String> {
        check_name(target).map_err(|why| format!("it links to '{}': {why}", show(target)))?;
        if let Some(first) = self.leaves.get(target) {
            return Ok(Action::Link { first: *first });
        }
        // A partial restore that does not select the first name writes its content instead.
        if self.partial
            && !self.selected.contains(target)
            && let Some(first) = self.by_path.get(target)
            && let EntryKind::File { offset, size } = self.entries[*first].kind
        {
            return Ok(Action::File { offset, size });
        }
        Err(format!(
            "it links to '{}', which this restore has not restored before it",
            show(target)
        ))
    }

    /// Whether a step waits until everything but symlinks exists.
    fn is_late(&self, action: Action) -> bool {
        match action {
            Action::Symlink => true,
            Action::Link { first } => matches!(self.entries[first].kind, EntryKind::Symlink { .. }),
            _ => false,
        }
    }
}

/// Whether `path` is `p` or lies under it.
fn within(path: &[u8], p: &[u8]) -> bool {
    path == p || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
}

/// The directory part of a non-empty name (`b""` for a name in the root); `None` for the root.
fn parent(path: &[u8]) -> Option<&[u8]> {
    if path.is_empty() {
        return None;
    }
    Some(
        path.iter()
            .rposition(|b| *b == b'/')
            .map_or(&b""[..], |i| &path[..i]),
    )
}

/// `a`, `a/b` for `a/b/c`: the directories above a name, parents first.
fn proper_prefixes(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = (0..path.len())
        .filter(|i| path[*i] == b'/')
        .map(|i| &path[..i])
        .collect();
    out.retain(|p| !p.is_empty());
    out
}

/// Checks that a name stays beneath the directory it is resolved in: relative, not empty, no
/// `.`, `..` or empty components, no NUL.
pub(crate) fn check_name(path: &[u8]) -> Result<(), String> {
    if path.is_empty() {
        return Err("the name is empty".into());
    }
    if path.starts_with(b"/") {
        return Err("the name is absolute".into());
    }
    if path.contains(&0) {
        return Err("the name holds a NUL byte".into());
    }
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" => return Err("the name has an empty component".into()),
            b"." | b".." => return Err("the name has a '.' or '..' component".into()),
            _ => {}
        }
    }
    Ok(())
}

/// A name for messages: lossy UTF-8 with control characters escaped.
pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).escape_debug().to_string()
}

/// The warning for a skipped entry.
pub(crate) fn skipped(path: &[u8], why: &str) -> String {
    format!("skipped '{}': {why}", show(path))
}

fn not_in_snapshot(only: Option<&[u8]>) -> ClientError {
    ClientError::NotInSnapshot(String::from_utf8_lossy(only.unwrap_or_default()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_sec: 0,
            mtime_nsec: 0,
        }
    }

    fn file(path: &str, offset: u64) -> Entry {
        entry(path, EntryKind::File { offset, size: 1 })
    }

    fn link(path: &str, target: &str) -> Entry {
        let target = target.as_bytes().to_vec();
        entry(path, EntryKind::HardLink { target })
    }

    fn plan(entries: &[Entry], only: Option<&str>) -> RestorePlan {
        let options = RestoreOptions {
            only: only.map(str::to_string),
            ..RestoreOptions::default()
        };
        RestorePlan::new(entries, &options, false).unwrap()
    }

    fn actions(p: &RestorePlan) -> Vec<(usize, Action)> {
        p.steps().iter().map(|s| (s.index, s.action)).collect()
    }

    #[test]
    fn escaping_names_are_refused() {
        for p in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "a/",
            "a\0b",
        ] {
            assert!(check_name(p.as_bytes()).is_err(), "{p:?} accepted");
        }
        for p in ["a", "a/b", "..a", "a/.b", "a..b/c"] {
            assert!(check_name(p.as_bytes()).is_ok(), "{p:?} refused");
        }
    }

    #[test]
    fn symlinks_come_last_with_the_links_to_them_and_their_children_are_refused() {
        let sym = EntryKind::Symlink {
            target: b"/elsewhere".to_vec(),
        };
        let p = plan(
            &[
                entry("", EntryKind::Dir),
                entry("d", sym),
                file("d/x", 0),
                link("e", "d"),
                entry("f", EntryKind::Dir),
                file("f/y", 1),
            ],
            None,
        );
        let want = [
            (0, Action::Dir),
            (4, Action::Dir),
            (5, Action::File { offset: 1, size: 1 }),
            (1, Action::Symlink),
            (3, Action::Link { first: 1 }),
        ];
        assert_eq!(actions(&p), want);
        assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
        assert!(p.warnings()[0].starts_with("skipped 'd/x': its parent 'd'"));
    }

    #[test]
    fn a_partial_restore_makes_its_ancestors_and_copies_links_it_does_not_select() {
        let entries = [
            entry("", EntryKind::Dir),
            entry("a", EntryKind::Dir),
            file("a/first", 7),
            entry("b", EntryKind::Dir),
            entry("b/c", EntryKind::Dir),
            link("b/c/second", "a/first"),
            link("b/c/ghost", "a/nothing"),
        ];
        let p = plan(&entries, Some("/b/c/"));
        assert_eq!(p.ancestors(), [b"b".to_vec()]);
        let copy = Action::File { offset: 7, size: 1 };
        assert_eq!(actions(&p), [(4, Action::Dir), (5, copy)]);
        assert!(p.warnings()[0].starts_with("skipped 'b/c/ghost'"));
        let options = RestoreOptions {
            only: Some("nope".into()),
            ..RestoreOptions::default()
        };
        assert!(RestorePlan::new(&entries, &options, false).is_err());
    }

    #[test]
    fn devices_need_the_option_and_root_and_names_appear_once() {
        let dev = EntryKind::CharDevice { rdev: 0 };
        let entries = [
            entry("", EntryKind::Dir),
            entry("null", dev),
            file("a", 0),
            file("a", 1),
            entry("", EntryKind::Dir),
        ];
        for (asked, root, created) in [
            (false, true, false),
            (true, false, false),
            (true, true, true),
        ] {
            let options = RestoreOptions {
                device_nodes: asked,
                ..RestoreOptions::default()
            };
            let p = RestorePlan::new(&entries, &options, root).unwrap();
            let has_dev = p.steps().iter().any(|s| s.index == 1);
            assert_eq!(has_dev, created, "asked {asked}, root {root}");
            assert_eq!(p.warnings().len(), if created { 2 } else { 3 });
        }
    }
}
