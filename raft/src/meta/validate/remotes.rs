//! Validators of remote and notification target commands.

use ironcore_types::records::{NotificationTarget, NotifyEndpoint, RemoteRecord};

use super::{Changes, Staged, refuse, valid_name};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::CreateRemote`](crate::MetaCommand::CreateRemote): a valid new name and an API
/// token id.
pub(crate) fn create_remote(view: &MetaView, ch: &mut Changes<'_>, r: &RemoteRecord) -> Staged {
    if !valid_name(&r.name) {
        return refuse(format!(
            "remote name '{}' must be 1 to 32 of a-z, 0-9, - and _",
            r.name
        ));
    }
    if !r.auth_id.is_token() {
        return refuse(format!(
            "{} is not an API token (user@realm!name) of the remote",
            r.auth_id
        ));
    }
    if view.remote(&r.name)?.is_some() {
        return refuse(format!("remote {} already exists", r.name));
    }
    ch.put("remote", &keys::remote(&r.name), r)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveRemote`](crate::MetaCommand::RemoveRemote).
pub(crate) fn remove_remote(view: &MetaView, ch: &mut Changes<'_>, name: &str) -> Staged {
    if view.remote(name)?.is_none() {
        return refuse(format!("remote {name} does not exist"));
    }
    ch.delete(&keys::remote(name));
    Ok(Ok(()))
}

/// [`MetaCommand::CreateNotificationTarget`](crate::MetaCommand::CreateNotificationTarget): a
/// valid new name and a well-formed webhook URL or SMTP relay, sender and recipients.
pub(crate) fn create_notification_target(
    view: &MetaView,
    ch: &mut Changes<'_>,
    t: &NotificationTarget,
) -> Staged {
    if !valid_name(&t.name) {
        return refuse(format!(
            "notification target name '{}' must be 1 to 32 of a-z, 0-9, - and _",
            t.name
        ));
    }
    match &t.endpoint {
        NotifyEndpoint::Webhook { url } => {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                return refuse(format!(
                    "webhook URL '{url}' must start with http:// or https://"
                ));
            }
        }
        NotifyEndpoint::Smtp { server, from, to } => {
            if server
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return refuse(format!("SMTP server '{server}' must be HOST:PORT"));
            }
            let bad = |a: &String| {
                !a.contains('@') || a.contains(|c: char| c.is_whitespace() || "<>\r\n".contains(c))
            };
            if to.is_empty() {
                return refuse("an SMTP target needs at least one recipient");
            }
            if let Some(a) = std::iter::once(from).chain(to).find(|a| bad(a)) {
                return refuse(format!("'{a}' is not a mail address"));
            }
        }
    }
    if view.notification_target(&t.name)?.is_some() {
        return refuse(format!("notification target {} already exists", t.name));
    }
    ch.put(
        "notification target",
        &keys::notification_target(&t.name),
        t,
    )?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveNotificationTarget`](crate::MetaCommand::RemoveNotificationTarget).
pub(crate) fn remove_notification_target(
    view: &MetaView,
    ch: &mut Changes<'_>,
    name: &str,
) -> Staged {
    if view.notification_target(name)?.is_none() {
        return refuse(format!("notification target {name} does not exist"));
    }
    ch.delete(&keys::notification_target(name));
    Ok(Ok(()))
}
