//! `compare`: two directory trees entry by entry, on this machine (no node involved).

use std::path::Path;

use anyhow::Result;

/// Runs `compare`: fails with the first difference between `a` and `b`.
pub fn run(a: &Path, b: &Path) -> Result<()> {
    let n =
        ironcore_client::compare_trees(a, b).map_err(|d| anyhow::anyhow!("trees differ: {d}"))?;
    println!("identical: {n} entries compared (content, mode, owner, mtime, links)");
    Ok(())
}
