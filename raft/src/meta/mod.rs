//! Typed cluster metadata: the records of `ironcore_types::records`, the commands that change
//! them ([`MetaCommand`]), how they are validated and applied, and a read handle
//! ([`MetaView`]).

mod apply;
mod command;
mod keys;
mod validate;
mod view;

pub(crate) use apply::apply;
pub use command::{MetaCommand, MetaRequest};
pub use validate::snapshots::quarantined_message;
pub use view::MetaView;

#[cfg(test)]
mod tests {
    use ironcore_types::records::*;
    use ironcore_types::{AuthId, BackupGroup, BackupType, Namespace, SnapshotRef};

    use super::*;
    use crate::{Command, CommandResult, RocksStateMachine};

    fn run(
        sm: &RocksStateMachine,
        actor: &str,
        at: i64,
        command: MetaCommand,
    ) -> Result<(), String> {
        let cmd = Command::Meta(Box::new(MetaRequest {
            actor: actor.parse().unwrap(),
            at,
            command,
        }));
        let mut batch = rocksdb::WriteBatch::default();
        let r = sm.apply_command(&cmd, &mut batch).unwrap();
        sm.rocks.write_unsynced(batch).unwrap();
        match r {
            CommandResult::Meta(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn node(id: u64, name: &str) -> NodeRecord {
        NodeRecord {
            id,
            name: name.into(),
            site: "primary".parse().unwrap(),
            role: NodeRole::Voter,
            address: "127.0.0.1:1".into(),
            api_address: "127.0.0.1:2".into(),
            fingerprints: vec![],
            joined: 0,
        }
    }

    fn bootstrap(sm: &RocksStateMachine) {
        let admin: AuthId = "root@pam".parse().unwrap();
        run(
            sm,
            "root@pam",
            1,
            MetaCommand::Bootstrap {
                info: ClusterInfo {
                    cluster_id: "00".into(),
                    epoch: 1,
                    created: 1,
                    ticket_key: String::new(),
                },
                node: node(1, "n1"),
                admin: UserRecord {
                    userid: admin.clone(),
                    password_hash: None,
                    enabled: true,
                    comment: String::new(),
                },
                token: TokenRecord {
                    tokenid: admin.with_token("admin").unwrap(),
                    secret_hash: "x".into(),
                    expires: 0,
                    comment: String::new(),
                },
            },
        )
        .unwrap();
    }

    /// Snapshot `host/web01` at `time` of `ds`, owned by `owner`.
    fn host_web01(ds: &ironcore_types::DatastoreName, owner: &str, time: i64) -> SnapshotEntry {
        SnapshotEntry {
            datastore: ds.clone(),
            snapshot: SnapshotRef {
                ns: Namespace::root(),
                group: BackupGroup::new(BackupType::Host, "web01").unwrap(),
                time,
            },
            manifest: vec![1, 2, 3],
            size: 3,
            key_fingerprint: None,
            protected: false,
            verify: VerifyStatus::None,
            verified_at: None,
            owner: owner.parse().unwrap(),
            complete_at: Vec::new(),
            nodes: vec!["n1".into()],
        }
    }

    /// A bootstrapped state machine in `dir` with datastore `store1`.
    fn with_store(dir: &std::path::Path) -> (RocksStateMachine, ironcore_types::DatastoreName) {
        let sm = RocksStateMachine::open(dir).unwrap();
        bootstrap(&sm);
        let ds: ironcore_types::DatastoreName = "store1".parse().unwrap();
        run(
            &sm,
            "root@pam",
            2,
            MetaCommand::CreateDatastore(DatastoreConfig {
                name: ds.clone(),
                site: "primary".parse().unwrap(),
                path: "/srv/store1".into(),
                copies: 2,
                comment: String::new(),
                created: 2,
                quarantined: false,
                mirrors: Vec::new(),
                mirror: Default::default(),
            }),
        )
        .unwrap();
        (sm, ds)
    }

    #[test]
    fn disabling_a_user_moves_its_ticket_floor_and_tokens_can_be_disabled_and_redated() {
        let dir = tempfile::tempdir().unwrap();
        let sm = RocksStateMachine::open(dir.path()).unwrap();
        bootstrap(&sm);
        let view = sm.view();
        let dave: AuthId = "dave@ibs".parse().unwrap();
        let user = UserRecord {
            userid: dave.clone(),
            password_hash: None,
            enabled: true,
            comment: String::new(),
        };
        run(&sm, "root@pam", 100, MetaCommand::CreateUser(user.clone())).unwrap();
        let created = view.ticket_generation(&dave).unwrap();
        assert!(created > 0);
        let update = |at, enabled| {
            run(
                &sm,
                "root@pam",
                at,
                MetaCommand::UpdateUser {
                    userid: dave.clone(),
                    enabled: Some(enabled),
                    comment: None,
                },
            )
        };
        // All in the same second: generations, not times, tell tickets apart.
        update(100, false).unwrap();
        let disabled = view.ticket_generation(&dave).unwrap();
        assert!(disabled > created);
        assert!(!view.user(&dave).unwrap().unwrap().enabled);
        update(100, true).unwrap();
        assert_eq!(
            view.ticket_generation(&dave).unwrap(),
            disabled,
            "enabling keeps it"
        );
        let t = dave.with_token("t").unwrap();
        let token = TokenRecord {
            tokenid: t.clone(),
            secret_hash: "x".into(),
            expires: 0,
            comment: String::new(),
        };
        run(&sm, "root@pam", 301, MetaCommand::CreateToken(token)).unwrap();
        let set = |enabled, expires| {
            run(
                &sm,
                "root@pam",
                302,
                MetaCommand::UpdateToken {
                    tokenid: t.clone(),
                    enabled,
                    expires,
                    comment: None,
                },
            )
        };
        set(Some(false), None).unwrap();
        assert!(view.token_disabled(&t).unwrap());
        set(None, Some(5)).unwrap();
        assert!(
            view.token_disabled(&t).unwrap(),
            "re-dating keeps it disabled"
        );
        assert_eq!(view.token(&t).unwrap().unwrap().expires, 5);
        assert!(set(None, Some(-1)).unwrap_err().contains("not valid"));
        set(Some(true), None).unwrap();
        assert!(!view.token_disabled(&t).unwrap());
        run(
            &sm,
            "root@pam",
            100,
            MetaCommand::RemoveUser {
                userid: dave.clone(),
            },
        )
        .unwrap();
        assert!(view.token(&t).unwrap().is_none());
        run(&sm, "root@pam", 100, MetaCommand::CreateUser(user)).unwrap();
        assert!(
            view.ticket_generation(&dave).unwrap() > disabled,
            "a new user, new tickets"
        );
    }

    #[test]
    fn join_token_works_once_and_not_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let sm = RocksStateMachine::open(dir.path()).unwrap();
        bootstrap(&sm);
        let token = JoinTokenRecord {
            secret_hash: "h".into(),
            expires: 100,
            used_by: None,
            created_by: "root@pam".parse().unwrap(),
        };
        run(
            &sm,
            "root@pam",
            2,
            MetaCommand::CreateJoinToken(token.clone()),
        )
        .unwrap();
        let join = |id, name: &str, at| {
            run(
                &sm,
                "root@pam",
                at,
                MetaCommand::Join {
                    secret_hash: "h".into(),
                    node: node(id, name),
                },
            )
        };
        join(2, "n2", 3).unwrap();
        let again = join(3, "n3", 4).unwrap_err();
        assert!(again.contains("already used (by node n2)"), "{again}");
        run(
            &sm,
            "root@pam",
            5,
            MetaCommand::CreateJoinToken(JoinTokenRecord {
                secret_hash: "old".into(),
                ..token
            }),
        )
        .unwrap();
        let late = run(
            &sm,
            "root@pam",
            200,
            MetaCommand::Join {
                secret_hash: "old".into(),
                node: node(3, "n3"),
            },
        )
        .unwrap_err();
        assert!(late.contains("expired"), "{late}");
        let view = sm.view();
        assert_eq!(view.nodes().unwrap().len(), 2);
        let audit = view.audit().unwrap();
        assert_eq!(audit.len(), 6);
        assert!(
            audit[3]
                .result
                .starts_with("refused: join token already used")
        );
    }

    #[test]
    fn refused_snapshot_commit_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (sm, ds) = with_store(dir.path());
        let entry = |owner: &str, time| host_web01(&ds, owner, time);
        let commit = |owner, time| {
            run(
                &sm,
                owner,
                3,
                MetaCommand::CommitSnapshot {
                    entry: entry(owner, time),
                    admin_override: false,
                },
            )
        };
        commit("alice@ironcore!backup", 10).unwrap();
        let other = commit("bob@ironcore!backup", 20).unwrap_err();
        assert!(other.starts_with("permission denied"), "{other}");
        let dup = commit("alice@ironcore!backup", 10).unwrap_err();
        assert!(dup.contains("already exists"), "{dup}");
        assert_eq!(sm.view().snapshots(&ds).unwrap().len(), 1);
        let mut ns_entry = entry("alice@ironcore!backup", 30);
        ns_entry.snapshot.ns = Namespace::root().child("missing").unwrap();
        let missing = run(
            &sm,
            "alice@ironcore!backup",
            4,
            MetaCommand::CommitSnapshot {
                entry: ns_entry,
                admin_override: false,
            },
        )
        .unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        assert_eq!(sm.view().snapshots(&ds).unwrap().len(), 1);
    }

    #[test]
    fn a_backup_commits_only_while_its_task_runs_and_leases_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let (sm, ds) = with_store(dir.path());
        let owner = "alice@ironcore!backup";
        let entry = |time| host_web01(&ds, owner, time);
        let task = |upid: &str| TaskRecord {
            upid: upid.into(),
            node: "n1".into(),
            kind: "backup".into(),
            worker_id: "store1:host/web01".into(),
            auth_id: owner.parse().unwrap(),
            start: 3,
            end: None,
            state: TaskState::Running,
        };
        let commit = |time, upid: &str| {
            run(
                &sm,
                owner,
                10,
                MetaCommand::CommitBackup {
                    entry: entry(time),
                    admin_override: false,
                    upid: upid.into(),
                },
            )
        };
        // A running task commits, and ends OK in the same step.
        run(&sm, owner, 3, MetaCommand::RecordTask(task("UPID:a"))).unwrap();
        commit(100, "UPID:a").unwrap();
        let ended = sm.view().task("UPID:a").unwrap().unwrap();
        assert_eq!((ended.state, ended.end), (TaskState::Ok, Some(10)));
        // The node's own end record afterwards changes nothing and is not refused.
        let mut again = task("UPID:a");
        again.state = TaskState::Ok;
        again.end = Some(11);
        run(&sm, owner, 11, MetaCommand::RecordTask(again)).unwrap();
        assert_eq!(sm.view().task("UPID:a").unwrap().unwrap().end, Some(10));

        // A task fenced off (ended by another node) commits nothing.
        run(&sm, owner, 3, MetaCommand::RecordTask(task("UPID:b"))).unwrap();
        let mut fenced = task("UPID:b");
        fenced.state = TaskState::Error("lease expired".into());
        run(&sm, "root@pam", 12, MetaCommand::RecordTask(fenced)).unwrap();
        let refused = commit(200, "UPID:b").unwrap_err();
        assert!(refused.contains("no longer running"), "{refused}");
        let unknown = commit(300, "UPID:zzz").unwrap_err();
        assert!(unknown.contains("not recorded"), "{unknown}");
        assert_eq!(sm.view().snapshots(&ds).unwrap().len(), 1);

        // Leases: members only; a late renewal never shortens one.
        let renew = |node: &str, until| {
            run(
                &sm,
                "root@pam",
                20,
                MetaCommand::RenewLease {
                    node: node.into(),
                    until,
                },
            )
        };
        renew("n1", 500).unwrap();
        renew("n1", 400).unwrap();
        assert_eq!(sm.view().lease("n1").unwrap(), Some(500));
        let stranger = renew("n9", 500).unwrap_err();
        assert!(stranger.contains("not a member"), "{stranger}");
        assert_eq!(sm.view().lease("n9").unwrap(), None);
        // Neither renewals nor task records fill the audit log.
        assert!(
            sm.view()
                .audit()
                .unwrap()
                .iter()
                .all(|a| !a.what.contains("lease") && !a.what.starts_with("record task"))
        );
    }
}
