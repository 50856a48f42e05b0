//! Validators of the cluster's own commands: bootstrap, join tokens, nodes and the epoch.

use ironcore_types::records::{
    AclEntry, ClusterInfo, JoinTokenRecord, NodeRecord, NodeRole, SiteRecord, SiteRole,
    TokenRecord, UserRecord,
};

use super::{Changes, Staged, refuse, sites};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::Bootstrap`](crate::MetaCommand::Bootstrap): once, with the first user's token;
/// the first node's site becomes the primary site.
pub(crate) fn bootstrap(
    ch: &mut Changes<'_>,
    bootstrapped: bool,
    at: i64,
    info: &ClusterInfo,
    node: &NodeRecord,
    admin: &UserRecord,
    token: &TokenRecord,
) -> Staged {
    if bootstrapped {
        return refuse("the cluster is already bootstrapped");
    }
    if token.tokenid.user() != admin.userid {
        return refuse("the first token must belong to the first user");
    }
    ch.put("cluster info", keys::CLUSTER, info)?;
    ch.put("node", &keys::node(node.id), node)?;
    // The first node's site is the primary site.
    let site = SiteRecord {
        name: node.site.clone(),
        role: SiteRole::Primary,
        changed: at,
        bwlimit: 0,
    };
    ch.put("site", &keys::site(&node.site), &site)?;
    ch.put("user", &keys::user(&admin.userid), admin)?;
    ch.put("token", &keys::token(&token.tokenid), token)?;
    // The first user and its token both get Admin on `/` (a token's rights are its
    // own grants intersected with its user's).
    for id in [&admin.userid, &token.tokenid] {
        let acl = AclEntry {
            path: "/".into(),
            auth_id: id.clone(),
            role: ironcore_types::Role::Admin,
        };
        ch.put("acl entry", &keys::acl("/", id), &acl)?;
    }
    Ok(Ok(()))
}

/// [`MetaCommand::CreateJoinToken`](crate::MetaCommand::CreateJoinToken).
pub(crate) fn create_join_token(
    view: &MetaView,
    ch: &mut Changes<'_>,
    t: &JoinTokenRecord,
) -> Staged {
    if view.join_token(&t.secret_hash)?.is_some() {
        return refuse("a join token with this secret exists");
    }
    ch.put("join token", &keys::join_token(&t.secret_hash), t)?;
    Ok(Ok(()))
}

/// [`MetaCommand::Join`](crate::MetaCommand::Join): a valid, unused, unexpired token at `at`,
/// and a node that is not a member yet.
pub(crate) fn join(
    view: &MetaView,
    ch: &mut Changes<'_>,
    at: i64,
    secret_hash: &str,
    node: &NodeRecord,
) -> Staged {
    let Some(mut token) = view.join_token(secret_hash)? else {
        return refuse(
            "join token not valid: create one with `ironcore-backup cluster join-token`",
        );
    };
    if let Some(by) = &token.used_by {
        return refuse(format!(
            "join token already used (by node {by}); create a new one with `ironcore-backup cluster join-token`"
        ));
    }
    if token.expires < at {
        return refuse(
            "join token expired; create a new one with `ironcore-backup cluster join-token`",
        );
    }
    let nodes = view.nodes()?;
    if nodes.iter().any(|n| n.id == node.id || n.name == node.name) {
        return refuse(format!(
            "a node named {} or with id {} is already a member",
            node.name, node.id
        ));
    }
    if let Err(why) = sites::check_member_site(view, node)? {
        return Ok(Err(why));
    }
    token.used_by = Some(node.name.clone());
    ch.put("join token", &keys::join_token(secret_hash), &token)?;
    ch.put("node", &keys::node(node.id), node)?;
    Ok(Ok(()))
}

/// [`MetaCommand::SetNodeRole`](crate::MetaCommand::SetNodeRole).
pub(crate) fn set_node_role(
    view: &MetaView,
    ch: &mut Changes<'_>,
    id: u64,
    role: NodeRole,
) -> Staged {
    let Some(mut n) = view.node(id)? else {
        return refuse(format!("node {id} is not a member"));
    };
    n.role = role;
    if let Err(why) = sites::check_member_site(view, &n)? {
        return Ok(Err(why));
    }
    ch.put("node", &keys::node(id), &n)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveNode`](crate::MetaCommand::RemoveNode): never the last voter.
pub(crate) fn remove_node(view: &MetaView, ch: &mut Changes<'_>, id: u64) -> Staged {
    let nodes = view.nodes()?;
    if !nodes.iter().any(|n| n.id == id) {
        return refuse(format!("node {id} is not a member"));
    }
    let voters = nodes
        .iter()
        .filter(|n| n.id != id && n.role != NodeRole::Learner)
        .count();
    if voters == 0 {
        return refuse("the last voter cannot be removed");
    }
    ch.delete(&keys::node(id));
    Ok(Ok(()))
}

/// [`MetaCommand::BumpEpoch`](crate::MetaCommand::BumpEpoch).
pub(crate) fn bump_epoch(view: &MetaView, ch: &mut Changes<'_>) -> Staged {
    let Some(mut info) = view.cluster()? else {
        return refuse("the cluster is not bootstrapped yet");
    };
    info.epoch += 1;
    ch.put("cluster info", keys::CLUSTER, &info)?;
    Ok(Ok(()))
}
