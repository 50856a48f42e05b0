//! Comparing two directory trees entry by entry: kind, content, permission bits, owner,
//! modification time (to the nanosecond), link targets and hard-link sharing. Used to prove a
//! restore identical to its source.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Compares the trees at `a` and `b`. Returns how many entries were compared, or the first
/// difference found.
pub fn compare_trees(a: &Path, b: &Path) -> Result<usize, String> {
    let mut links_a: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut links_b: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    let mut count = 0;
    while let Some(rel) = stack.pop() {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let ma = fs::symlink_metadata(&pa).map_err(|e| format!("{}: {e}", pa.display()))?;
        let mb = fs::symlink_metadata(&pb).map_err(|e| format!("{} missing: {e}", pb.display()))?;
        count += 1;
        let differ = |what: &str| format!("{what} of '{}' differs", rel.display());
        if ma.file_type() != mb.file_type() {
            return Err(differ("type"));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            return Err(differ("owner"));
        }
        if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            return Err(differ("modification time"));
        }
        if !ma.file_type().is_symlink() && ma.mode() != mb.mode() {
            return Err(differ("mode"));
        }
        if ma.is_dir() {
            let names = |p: &Path| -> Result<Vec<_>, String> {
                let mut v: Vec<_> = fs::read_dir(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect();
                v.sort();
                Ok(v)
            };
            let na = names(&pa)?;
            if na != names(&pb)? {
                return Err(differ("listing"));
            }
            stack.extend(na.into_iter().map(|n| rel.join(n)));
        } else if ma.file_type().is_symlink() {
            if fs::read_link(&pa).ok() != fs::read_link(&pb).ok() {
                return Err(differ("link target"));
            }
        } else if ma.is_file() {
            if ma.nlink() > 1 || mb.nlink() > 1 {
                let fa = links_a
                    .entry((ma.dev(), ma.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone();
                let fb = links_b
                    .entry((mb.dev(), mb.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone();
                if fa != fb || ma.nlink() != mb.nlink() {
                    return Err(differ("hard-link sharing"));
                }
            }
            if ma.len() != mb.len() || !same_content(&pa, &pb)? {
                return Err(differ("content"));
            }
        }
    }
    Ok(count)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, String> {
    let open = |p: &Path| fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("{}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("{}: {e}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
