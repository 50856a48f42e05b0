//! A node takes no peer's word for who asked: work forwarded between nodes carries the caller's
//! credential, and the node that does the work authenticates and authorizes it again. Tried as
//! an attacker who stole one node's key would: a process with node3's identity asks node1 to
//! cancel a task in someone else's name.

use std::sync::Arc;

use ironcore_cluster_tests::{DaemonCluster, ok, wait};
use ironcore_node::auth::Credential;
use ironcore_node::cluster::state::ClusterState;
use ironcore_node::protocol::{self, PeerRequest, PeerResponse};
use ironcore_transport::testing::MemChunks;
use ironcore_transport::{
    BoxFuture, ClusterId, NodeIdentity, Peer, PeerInfo, PinSet, RpcHandler, Transport,
    TransportConfig,
};

/// The rogue process answers nothing.
struct Silent;

impl RpcHandler for Silent {
    fn handle(&self, _: PeerInfo, _: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        Box::pin(async { Err("no service here".to_string()) })
    }
}

/// The QUIC address in a node's configuration file.
fn quic_address(config: &std::path::Path) -> std::net::SocketAddr {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with("listen = ")).unwrap();
    line.trim_start_matches("listen = ")
        .trim_matches('"')
        .parse()
        .unwrap()
}

#[test]
fn a_peer_cannot_cancel_a_task_in_someone_elses_name() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    c.create_datastore(0, "store1", 2);
    // Bob exists, with a token but no rights.
    ok(&c.cli(0, &["user", "create", "bob@ironcore"]).unwrap());
    let created = ok(&c.cli(0, &["token", "create", "bob@ironcore!t"]).unwrap());
    let bob = created.lines().last().unwrap().trim().to_string();
    // The admin's backup runs on node1.
    let (mut client, writer, upid) = c.fifo_backup(0, "store1", "vm/7").unwrap();

    // node1 knows node3's certificate (its membership watcher pins members as they join).
    let node_log = c.nodes[0].dir.join("log").join("node.log");
    wait(
        "node1 to pin node3",
        std::time::Duration::from_secs(30),
        || Ok(std::fs::read_to_string(&node_log)?.contains(r#""members":3"#)),
    )
    .unwrap();
    // node3's key is stolen: its process is gone and a rogue one speaks with its identity.
    c.nodes[2].kill();
    let state = ClusterState::load(&c.nodes[2].dir).unwrap();
    let identity =
        NodeIdentity::load_or_generate(&c.nodes[2].dir.join("identity"), &"node3".parse().unwrap())
            .unwrap();
    let node1 = Peer {
        node: "node1".parse().unwrap(),
        addr: quic_address(&c.nodes[0].config),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ask = |credential: &str| {
        let request = PeerRequest::CancelTask {
            upid: upid.clone(),
            credential: Credential::from_header(credential),
        };
        let mut bytes = vec![ironcore_raft::SERVICE_TAG];
        bytes.extend(protocol::encode(&request).unwrap());
        bytes
    };
    let answers = runtime.block_on(async {
        let pins = PinSet::new();
        pins.pin(&node1.node, c.nodes[0].fingerprint.parse().unwrap());
        let rogue = Transport::bind(
            TransportConfig::new(
                "node3".parse().unwrap(),
                ClusterId(state.cluster_id_bytes().unwrap()),
                state.epoch,
            ),
            "127.0.0.1:0".parse().unwrap(),
            identity,
            pins,
            Arc::new(Silent),
            Arc::new(MemChunks::default()),
        )
        .await
        .unwrap();
        let mut answers = Vec::new();
        for credential in [
            // A name alone (what the request used to carry) proves nothing.
            "IBSAPIToken root@pam!admin:forged".to_string(),
            // A real token of a user who may not cancel the admin's task.
            format!("IBSAPIToken {bob}"),
        ] {
            let answer = rogue.call_raw(&node1, &ask(&credential)).await.unwrap();
            answers.push(protocol::decode::<PeerResponse>(&answer).unwrap());
        }
        answers
    });
    let refused = |a: &PeerResponse, why: &str| match a {
        PeerResponse::Text(Err(e)) => assert!(e.contains(why), "{e}"),
        other => panic!("the forged cancel was obeyed: {other:?}"),
    };
    refused(&answers[0], "authentication required");
    refused(&answers[1], "permission denied");
    let runs = |c: &DaemonCluster| -> anyhow::Result<bool> {
        let running = c.cli_json(0, &["task", "list", "--state", "running"])?;
        Ok(running
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t["upid"] == upid.as_str())))
    };
    assert!(runs(&c).unwrap(), "the forged cancel ended the task");

    // Through the API, the owner cancels it as before (node2 forwards it with its credential).
    ok(&c.cli(1, &["task", "cancel", &upid]).unwrap());
    wait(
        "the task to end",
        std::time::Duration::from_secs(20),
        || Ok(!runs(&c)?),
    )
    .unwrap();
    drop(writer);
    let _ = client.wait();
}
