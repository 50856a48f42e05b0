//! Raft's membership follows the member records, even when the leader dies between the two:
//! a leader is made to abort (`IRONCORE_FAILPOINTS`) right after it recorded a demotion and
//! before it changed Raft's membership; once the cluster can, the leader of the day carries
//! the change out. (Before, Raft changed first and the record second: a crash between left a
//! record that said "voter" for a node Raft had demoted, and no one to notice.)

use std::time::Duration;

use ironcore_cluster_tests::{DaemonCluster, index_of, wait};
use serde_json::Value;

fn member<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

#[test]
fn a_demotion_recorded_by_a_leader_that_then_dies_is_carried_out_by_the_next() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    let status = c.cli_json(0, &["cluster", "status"]).unwrap();
    let leader = index_of(&c, &status, status["leader"].as_u64().unwrap());
    let (x, y) = match leader {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let (lname, xname) = (c.nodes[leader].name.clone(), c.nodes[x].name.clone());

    // The leader restarts armed to abort between a membership record and Raft's change, and
    // takes the lead back.
    c.nodes[leader].kill();
    c.spawn_with_env(
        leader,
        &[("IRONCORE_FAILPOINTS", "membership-after-record")],
    )
    .unwrap();
    wait(
        "the armed node to lead again",
        Duration::from_secs(60),
        || {
            let out = c.cli(y, &["cluster", "transfer", &lname])?;
            if !out.status.success() {
                return Ok(false);
            }
            let s = c.cli_json(y, &["cluster", "status"])?;
            Ok(s["leader"] == member(&s, &lname)["id"])
        },
    )
    .unwrap();

    // Demote x through the leader: it records "x is a learner" and aborts.
    let out = c.cli(leader, &["cluster", "demote", &xname]).unwrap();
    assert!(!out.status.success(), "the armed leader answered");
    wait("the armed leader to abort", Duration::from_secs(10), || {
        Ok(c.nodes[leader].exited().is_some())
    })
    .unwrap();

    // The record was committed before the abort: the survivors see x recorded as a learner
    // while Raft still counts it as a voter (a demotion with one voter of three dead cannot
    // commit: the new voter set would have no quorum).
    wait("x recorded as a learner", Duration::from_secs(30), || {
        let s = c.cli_json(y, &["cluster", "status"])?;
        Ok(member(&s, &xname)["role"] == "learner")
    })
    .unwrap();

    // The dead leader comes back (disarmed); whoever leads carries the demotion out, and every
    // node agrees: 2 voters, x a learner in its record and in Raft.
    c.spawn(leader).unwrap();
    wait(
        "the cluster to agree everywhere",
        Duration::from_secs(60),
        || {
            let s = c.cli_json(leader, &["cluster", "status"])?;
            let voters: Vec<&str> = s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["voter"] == true)
                .filter_map(|n| n["name"].as_str())
                .collect();
            Ok(voters.len() == 2
                && !voters.contains(&xname.as_str())
                && member(&s, &xname)["role"] == "learner")
        },
    )
    .unwrap();
}
