//! Validators of access commands: users and their passwords, API tokens, ACL entries.

use ironcore_types::AuthId;
use ironcore_types::records::{AclEntry, TokenRecord, UserRecord};

use super::{Changes, Staged, refuse};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::CreateUser`](crate::MetaCommand::CreateUser): a new user, not a token id.
/// Its tickets carry a generation no earlier user of the same name had (the command's audit
/// sequence number), so a removed user's tickets stay refused.
pub(crate) fn create_user(view: &MetaView, ch: &mut Changes<'_>, u: &UserRecord) -> Staged {
    if u.userid.is_token() {
        return refuse(format!("{} names a token, not a user", u.userid));
    }
    if view.user(&u.userid)?.is_some() {
        return refuse(format!("user {} already exists", u.userid));
    }
    ch.put("user", &keys::user(&u.userid), u)?;
    ch.put(
        "user ticket generation",
        &keys::user_tickets(&u.userid),
        &view.next_audit_seq()?,
    )?;
    Ok(Ok(()))
}

/// [`MetaCommand::UpdateUser`](crate::MetaCommand::UpdateUser): disabling also starts a new
/// ticket generation, so no ticket issued before works again.
pub(crate) fn update_user(
    view: &MetaView,
    ch: &mut Changes<'_>,
    userid: &AuthId,
    enabled: Option<bool>,
    comment: &Option<String>,
) -> Staged {
    if userid.is_token() {
        return refuse(format!(
            "{userid} names a token: use `ironcore-backup token update`"
        ));
    }
    let Some(mut u) = view.user(userid)? else {
        return refuse(format!("user {userid} does not exist"));
    };
    if let Some(enabled) = enabled {
        if !enabled {
            ch.put(
                "user ticket generation",
                &keys::user_tickets(userid),
                &view.next_audit_seq()?,
            )?;
        }
        u.enabled = enabled;
    }
    if let Some(c) = comment {
        u.comment = c.clone();
    }
    ch.put("user", &keys::user(userid), &u)?;
    Ok(Ok(()))
}

/// [`MetaCommand::UpdateToken`](crate::MetaCommand::UpdateToken).
pub(crate) fn update_token(
    view: &MetaView,
    ch: &mut Changes<'_>,
    tokenid: &AuthId,
    enabled: Option<bool>,
    expires: Option<i64>,
    comment: &Option<String>,
) -> Staged {
    let Some(mut t) = view.token(tokenid)? else {
        return refuse(format!("token {tokenid} does not exist"));
    };
    match enabled {
        Some(false) => ch.put("token disabled mark", &keys::token_off(tokenid), &1i64)?,
        Some(true) => ch.delete(&keys::token_off(tokenid)),
        None => {}
    }
    if let Some(e) = expires {
        if e < 0 {
            return refuse(format!(
                "expiry {e} is not valid: give epoch seconds, or 0 for never"
            ));
        }
        t.expires = e;
    }
    if let Some(c) = comment {
        t.comment = c.clone();
    }
    ch.put("token", &keys::token(tokenid), &t)?;
    Ok(Ok(()))
}

/// [`MetaCommand::SetPassword`](crate::MetaCommand::SetPassword).
pub(crate) fn set_password(
    view: &MetaView,
    ch: &mut Changes<'_>,
    userid: &AuthId,
    password_hash: &Option<String>,
) -> Staged {
    let Some(mut u) = view.user(userid)? else {
        return refuse(format!("user {userid} does not exist"));
    };
    u.password_hash = password_hash.clone();
    ch.put("user", &keys::user(userid), &u)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveUser`](crate::MetaCommand::RemoveUser), with its tokens and ACL entries.
pub(crate) fn remove_user(view: &MetaView, ch: &mut Changes<'_>, userid: &AuthId) -> Staged {
    if view.user(userid)?.is_none() {
        return refuse(format!("user {userid} does not exist"));
    }
    // A user created again under this name gets a new ticket generation: old tickets stay dead.
    ch.delete(&keys::user(userid));
    ch.delete(&keys::user_tickets(userid));
    for t in view.tokens()? {
        if t.tokenid.user() == *userid {
            ch.delete(&keys::token(&t.tokenid));
            ch.delete(&keys::token_off(&t.tokenid));
        }
    }
    for a in view.acls()? {
        if a.auth_id.user() == *userid {
            ch.delete(&keys::acl(&a.path, &a.auth_id));
        }
    }
    Ok(Ok(()))
}

/// [`MetaCommand::CreateToken`](crate::MetaCommand::CreateToken): a new token of an existing user.
pub(crate) fn create_token(view: &MetaView, ch: &mut Changes<'_>, t: &TokenRecord) -> Staged {
    if !t.tokenid.is_token() {
        return refuse(format!("{} is not a token id (USER@REALM!NAME)", t.tokenid));
    }
    if view.user(&t.tokenid.user())?.is_none() {
        return refuse(format!("user {} does not exist", t.tokenid.user()));
    }
    if view.token(&t.tokenid)?.is_some() {
        return refuse(format!("token {} already exists", t.tokenid));
    }
    ch.put("token", &keys::token(&t.tokenid), t)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveToken`](crate::MetaCommand::RemoveToken), with its ACL entries.
pub(crate) fn remove_token(view: &MetaView, ch: &mut Changes<'_>, tokenid: &AuthId) -> Staged {
    if view.token(tokenid)?.is_none() {
        return refuse(format!("token {tokenid} does not exist"));
    }
    ch.delete(&keys::token(tokenid));
    ch.delete(&keys::token_off(tokenid));
    for a in view.acls()? {
        if a.auth_id == *tokenid {
            ch.delete(&keys::acl(&a.path, &a.auth_id));
        }
    }
    Ok(Ok(()))
}

/// [`MetaCommand::SetAcl`](crate::MetaCommand::SetAcl): a valid path, an existing user or token,
/// `Admin` on `/` only.
pub(crate) fn set_acl(view: &MetaView, ch: &mut Changes<'_>, a: &AclEntry) -> Staged {
    if let Err(e) = check_acl_path(view, &a.path)? {
        return refuse(e);
    }
    let exists = if a.auth_id.is_token() {
        view.token(&a.auth_id)?.is_some()
    } else {
        view.user(&a.auth_id)?.is_some()
    };
    if !exists {
        return refuse(format!("{} does not exist", a.auth_id));
    }
    if a.role == ironcore_types::Role::Admin && a.path != "/" {
        return refuse("the Admin role is granted on / only");
    }
    ch.put("acl entry", &keys::acl(&a.path, &a.auth_id), a)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveAcl`](crate::MetaCommand::RemoveAcl): an existing grant.
pub(crate) fn remove_acl(
    view: &MetaView,
    ch: &mut Changes<'_>,
    path: &str,
    auth_id: &AuthId,
) -> Staged {
    if view
        .get::<AclEntry>("acl entry", &keys::acl(path, auth_id))?
        .is_none()
    {
        return refuse(format!("{auth_id} has no grant on {path}"));
    }
    ch.delete(&keys::acl(path, auth_id));
    Ok(Ok(()))
}

/// ACL paths: `/`, `/datastore`, `/datastore/{store}` or `/datastore/{store}/{ns…}`.
fn check_acl_path(view: &MetaView, path: &str) -> Staged {
    if path == "/" || path == "/datastore" {
        return Ok(Ok(()));
    }
    let Some(rest) = path.strip_prefix("/datastore/") else {
        return Ok(Err(format!(
            "ACL path '{path}' is not valid: use /, /datastore or /datastore/STORE[/NAMESPACE...]"
        )));
    };
    let store = rest.split('/').next().unwrap_or_default();
    let Ok(name) = store.parse() else {
        return Ok(Err(format!("ACL path '{path}' names no valid datastore")));
    };
    if view.datastore(&name)?.is_none() {
        return Ok(Err(format!(
            "datastore {store} of ACL path '{path}' does not exist"
        )));
    }
    Ok(Ok(()))
}
