//! Validators of datastore and namespace commands.

use ironcore_types::records::DatastoreConfig;
use ironcore_types::{DatastoreName, Namespace};

use super::{Changes, Staged, refuse};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::CreateDatastore`](crate::MetaCommand::CreateDatastore): a new name, at least
/// one copy, an absolute path.
pub(crate) fn create_datastore(
    view: &MetaView,
    ch: &mut Changes<'_>,
    d: &DatastoreConfig,
) -> Staged {
    if view.datastore(&d.name)?.is_some() {
        return refuse(format!("datastore {} already exists", d.name));
    }
    if d.copies == 0 {
        return refuse("copies must be at least 1");
    }
    if !d.path.starts_with('/') {
        return refuse(format!("datastore path '{}' must be absolute", d.path));
    }
    if let Err(why) = super::sites::check_data_site(view, &d.site)? {
        return Ok(Err(why));
    }
    if let Err(why) = super::sites::check_mirrors(view, d)? {
        return Ok(Err(why));
    }
    ch.put("datastore", &keys::datastore(&d.name), d)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveDatastore`](crate::MetaCommand::RemoveDatastore): only without snapshots.
pub(crate) fn remove_datastore(
    view: &MetaView,
    ch: &mut Changes<'_>,
    name: &DatastoreName,
) -> Staged {
    if view.datastore(name)?.is_none() {
        return refuse(format!("datastore {name} does not exist"));
    }
    if !view.snapshots(name)?.is_empty() {
        return refuse(format!(
            "datastore {name} still holds snapshots; forget or prune them first"
        ));
    }
    ch.delete(&keys::datastore(name));
    Ok(Ok(()))
}

/// [`MetaCommand::CreateNamespace`](crate::MetaCommand::CreateNamespace): a new namespace whose
/// parent exists.
pub(crate) fn create_namespace(
    view: &MetaView,
    ch: &mut Changes<'_>,
    datastore: &DatastoreName,
    ns: &Namespace,
) -> Staged {
    if view.datastore(datastore)?.is_none() {
        return refuse(format!("datastore {datastore} does not exist"));
    }
    if ns.is_root() || view.namespace_exists(datastore, ns)? {
        return refuse(format!("namespace '{ns}' already exists in {datastore}"));
    }
    let parent = ns.parent().unwrap_or_else(ironcore_types::Namespace::root);
    if !view.namespace_exists(datastore, &parent)? {
        return refuse(format!(
            "parent namespace '{parent}' does not exist in {datastore}; create it first"
        ));
    }
    ch.put("namespace", &keys::namespace(datastore, ns), ns)?;
    Ok(Ok(()))
}

/// [`MetaCommand::SetQuarantine`](crate::MetaCommand::SetQuarantine).
pub(crate) fn set_quarantine(
    view: &MetaView,
    ch: &mut Changes<'_>,
    datastore: &DatastoreName,
    quarantined: bool,
) -> Staged {
    let Some(mut d) = view.datastore(datastore)? else {
        return refuse(format!("datastore {datastore} does not exist"));
    };
    d.quarantined = quarantined;
    ch.put("datastore", &keys::datastore(datastore), &d)?;
    Ok(Ok(()))
}
