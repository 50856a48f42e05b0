//! Pruning one group: the pure planner (PBS semantics, explicit timezone) over the group's
//! snapshots in Raft, then one `ForgetSnapshot` per snapshot to remove. Used by the API and by
//! prune jobs; the caller checks rights.

use ironcore_chunkstore::prune::{
    KeepOptions, PruneCandidate, PruneMark, parse_timezone, plan_prune,
};
use ironcore_raft::MetaCommand;
use ironcore_types::{AuthId, BackupGroup, DatastoreName, Namespace, SnapshotRef};

use crate::Result;
use crate::maintenance::Upkeep;

/// What became of one snapshot.
#[derive(Clone, Debug)]
pub struct PruneDecision {
    /// The snapshot.
    pub snapshot: SnapshotRef,
    /// Keep (and why) or remove.
    pub mark: PruneMark,
    /// Whether it was removed (never in a dry run).
    pub removed: bool,
}

/// Prunes `group` of `store`/`ns` as `actor` with `keep` (buckets in `timezone`).
#[allow(clippy::too_many_arguments)]
pub async fn prune_group(
    up: &Upkeep,
    actor: &AuthId,
    store: &DatastoreName,
    ns: &Namespace,
    group: &BackupGroup,
    keep: &KeepOptions,
    timezone: &str,
    dry_run: bool,
) -> Result<Vec<PruneDecision>> {
    // No keep option keeps everything (PBS): the plan below marks every snapshot kept.
    let tz = parse_timezone(timezone)?;
    let snapshots = up.meta().group_snapshots(store, ns, group)?;
    let candidates: Vec<PruneCandidate> = snapshots
        .iter()
        .map(|s| PruneCandidate {
            time: s.snapshot.time,
            protected: s.protected,
        })
        .collect();
    let mut out = Vec::new();
    for d in plan_prune(&candidates, keep, tz)? {
        let snapshot = SnapshotRef {
            ns: ns.clone(),
            group: group.clone(),
            time: d.time,
        };
        let remove = d.mark == PruneMark::Remove && !dry_run;
        if remove {
            up.propose(
                actor,
                MetaCommand::ForgetSnapshot {
                    datastore: store.clone(),
                    snapshot: snapshot.clone(),
                },
            )
            .await?;
        }
        out.push(PruneDecision {
            snapshot,
            mark: d.mark,
            removed: remove,
        });
    }
    Ok(out)
}
