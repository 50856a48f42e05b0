//! The tree entry decoder followed by the restore planner: whatever an archive holds, every
//! entry the plan creates has a name that stays beneath the target, appears once, sits in a
//! directory created before it, and a hard link names an entry created before it; device nodes
//! only when asked and root.
#![no_main]

use std::collections::HashSet;

use ironcore_client::restore_plan::Action;
use ironcore_client::{Entry, EntryKind, RestoreOptions, RestorePlan, decode_entries};
use libfuzzer_sys::fuzz_target;

/// Independent of the planner's own check: relative, components neither empty nor `.` or `..`,
/// no NUL.
fn beneath(path: &[u8]) -> bool {
    !path.contains(&0)
        && path
            .split(|b| *b == b'/')
            .all(|c| !matches!(c, b"" | b"." | b".."))
}

fn parent(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|b| *b == b'/')
        .map_or(&[], |i| &path[..i])
}

fn check(entries: &[Entry], options: &RestoreOptions, is_root: bool) {
    let Ok(plan) = RestorePlan::new(entries, options, is_root) else {
        assert!(options.only.is_some(), "a whole-tree plan cannot fail");
        return;
    };
    let mut dirs: HashSet<&[u8]> = plan.ancestors().iter().map(Vec::as_slice).collect();
    dirs.insert(b"");
    assert!(plan.ancestors().iter().all(|a| beneath(a)));
    let mut names = HashSet::new();
    let mut made = HashSet::new();
    for step in plan.steps() {
        let e = &entries[step.index];
        let path = e.path.as_slice();
        assert!(names.insert(path), "{path:?} created twice");
        if path.is_empty() {
            assert_eq!(step.action, Action::Dir, "the root is the target");
        } else {
            assert!(beneath(path), "{path:?} planned");
            assert!(
                dirs.contains(parent(path)),
                "{path:?} outside a created directory"
            );
        }
        match (step.action, &e.kind) {
            (Action::Dir, EntryKind::Dir) => {
                dirs.insert(path);
            }
            (Action::File { .. }, EntryKind::File { .. })
            | (Action::Symlink, EntryKind::Symlink { .. }) => {}
            (Action::File { .. }, EntryKind::HardLink { .. }) => assert!(options.only.is_some()),
            (Action::Special, EntryKind::Fifo) => {}
            (Action::Special, EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }) => {
                assert!(options.device_nodes && is_root);
            }
            (Action::Link { first }, EntryKind::HardLink { target }) => {
                assert!(
                    made.contains(&first),
                    "{path:?} links to an entry not made before it"
                );
                assert_eq!(&entries[first].path, target);
                assert!(!matches!(
                    entries[first].kind,
                    EntryKind::Dir | EntryKind::HardLink { .. }
                ));
            }
            (action, kind) => panic!("{path:?}: {kind:?} planned as {action:?}"),
        }
        made.insert(step.index);
    }
    if options.only.is_none() {
        assert_eq!(plan.steps().len() + plan.warnings().len(), entries.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = decode_entries(data) else {
        return;
    };
    // The whole tree, and the subtree of the last entry, with and without devices and root.
    let last = entries
        .last()
        .map(|e| String::from_utf8_lossy(&e.path).into_owned());
    for only in [None, last] {
        for (device_nodes, is_root) in [(false, false), (true, false), (true, true)] {
            let options = RestoreOptions {
                only: only.clone(),
                device_nodes,
            };
            check(&entries, &options, is_root);
        }
    }
});
