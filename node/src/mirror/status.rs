//! How far each mirror site of a datastore is behind: a pure function of the datastore, its
//! snapshots (with the sites each is complete at) and the time.

use ironcore_types::SiteId;
use ironcore_types::records::{DatastoreConfig, SnapshotEntry};
use serde::Serialize;

/// One mirror site of one datastore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteLag {
    /// The datastore.
    pub datastore: String,
    /// The mirror site.
    pub site: SiteId,
    /// The newest snapshot complete there (`ns/group/time`).
    pub last_complete: Option<String>,
    /// Snapshots committed but not yet complete there.
    pub pending_snapshots: usize,
    /// Their logical size (what their archives hold; the chunks to move are at most this).
    pub pending_bytes: u64,
    /// Seconds since the oldest pending snapshot was taken (0 when none is pending).
    pub lag_seconds: i64,
}

/// The lag of every mirror site of `config`, given its `snapshots`, at `now` (epoch seconds).
pub fn lag(config: &DatastoreConfig, snapshots: &[SnapshotEntry], now: i64) -> Vec<SiteLag> {
    config
        .mirrors
        .iter()
        .map(|m| {
            let (done, pending): (Vec<&SnapshotEntry>, Vec<&SnapshotEntry>) = snapshots
                .iter()
                .partition(|s| s.complete_at.contains(&m.site));
            SiteLag {
                datastore: config.name.to_string(),
                site: m.site.clone(),
                last_complete: done
                    .iter()
                    .max_by_key(|s| s.snapshot.time)
                    .map(|s| s.snapshot.to_string()),
                pending_snapshots: pending.len(),
                pending_bytes: pending.iter().map(|s| s.size).sum(),
                lag_seconds: pending
                    .iter()
                    .map(|s| s.snapshot.time)
                    .min()
                    .map_or(0, |oldest| (now - oldest).max(0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ironcore_types::records::{SiteCopies, VerifyStatus};
    use ironcore_types::{BackupGroup, BackupType, Namespace, SnapshotRef};

    use super::*;

    fn entry(time: i64, size: u64, complete_at: &[&str]) -> SnapshotEntry {
        SnapshotEntry {
            datastore: "store1".parse().unwrap(),
            snapshot: SnapshotRef {
                ns: Namespace::root(),
                group: BackupGroup::new(BackupType::Host, "a").unwrap(),
                time,
            },
            manifest: Vec::new(),
            size,
            key_fingerprint: None,
            protected: false,
            verify: VerifyStatus::None,
            verified_at: None,
            owner: "root@pam".parse().unwrap(),
            nodes: Vec::new(),
            complete_at: complete_at.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn lag_counts_what_a_site_still_lacks_from_the_oldest_pending_snapshot() {
        let config = DatastoreConfig {
            name: "store1".parse().unwrap(),
            site: "primary".parse().unwrap(),
            path: "/srv/store1".into(),
            copies: 2,
            comment: String::new(),
            created: 0,
            quarantined: false,
            mirrors: vec![
                SiteCopies {
                    site: "backup".parse().unwrap(),
                    copies: 1,
                },
                SiteCopies {
                    site: "far".parse().unwrap(),
                    copies: 1,
                },
            ],
            mirror: Default::default(),
        };
        let snaps = [
            entry(100, 10, &["backup", "far"]),
            entry(200, 20, &["backup"]),
            entry(300, 30, &[]),
        ];
        let l = lag(&config, &snaps, 1_000);
        assert_eq!(l[0].site.as_str(), "backup");
        assert_eq!(l[0].pending_snapshots, 1);
        assert_eq!(l[0].pending_bytes, 30);
        assert_eq!(l[0].lag_seconds, 700);
        assert!(l[0].last_complete.as_deref().unwrap().contains("host/a"));
        assert_eq!((l[1].pending_snapshots, l[1].pending_bytes), (2, 50));
        assert_eq!(l[1].lag_seconds, 800);
        let caught_up = lag(&config, &snaps[..1], 1_000);
        assert_eq!(caught_up[0].lag_seconds, 0);
        assert_eq!(caught_up[0].pending_snapshots, 0);
        // A clock behind the snapshot's time never reports a negative lag.
        assert_eq!(lag(&config, &snaps, 50)[1].lag_seconds, 0);
    }
}
