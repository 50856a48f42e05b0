//! Validators of the sites: their roles, and who may stand in them.

use ironcore_types::records::{DatastoreConfig, NodeRecord, NodeRole, SiteRecord, SiteRole};
use ironcore_types::{DatastoreName, SiteId, SnapshotRef};

use super::{Changes, Staged, refuse};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::SetSite`](crate::MetaCommand::SetSite): at most one primary site; a witness
/// site holds no datastore and only witness nodes, and a data site no witness node.
pub(crate) fn set_site(view: &MetaView, ch: &mut Changes<'_>, site: &SiteRecord) -> Staged {
    if site.role == SiteRole::Primary
        && let Some(other) = view
            .sites()?
            .into_iter()
            .find(|s| s.role == SiteRole::Primary && s.name != site.name)
    {
        return refuse(format!(
            "site {} is the primary site; make it a backup site first (`ironcore-backup cluster site set {} --role backup`)",
            other.name, other.name
        ));
    }
    let nodes: Vec<NodeRecord> = view
        .nodes()?
        .into_iter()
        .filter(|n| n.site == site.name)
        .collect();
    let names = |keep: &dyn Fn(&NodeRecord) -> bool| {
        nodes
            .iter()
            .filter(|n| keep(n))
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if site.role == SiteRole::Witness {
        let stores: Vec<String> = view
            .datastores()?
            .into_iter()
            .filter(|d| d.site == site.name)
            .map(|d| d.name.to_string())
            .collect();
        if !stores.is_empty() {
            return refuse(format!(
                "site {} holds datastore(s) {}; a witness site holds no data",
                site.name,
                stores.join(", ")
            ));
        }
        let storage = names(&|n| n.role != NodeRole::Witness);
        if !storage.is_empty() {
            return refuse(format!(
                "site {} has storage nodes ({storage}); a witness site's nodes hold no data: remove them first",
                site.name
            ));
        }
    } else {
        let witnesses = names(&|n| n.role == NodeRole::Witness);
        if !witnesses.is_empty() {
            return refuse(format!(
                "site {} has witness nodes ({witnesses}); only a witness site has them",
                site.name
            ));
        }
    }
    ch.put("site", &keys::site(&site.name), site)?;
    Ok(Ok(()))
}

/// Whether `node` may stand in its site: once the cluster records sites, only in a recorded
/// one, as a witness exactly when the site is one. (A cluster bootstrapped before sites were
/// recorded has none, and its log replays as it did.)
pub(crate) fn check_member_site(view: &MetaView, node: &NodeRecord) -> Staged {
    let sites = view.sites()?;
    if sites.is_empty() {
        return Ok(Ok(()));
    }
    let Some(site) = sites.iter().find(|s| s.name == node.site) else {
        return refuse(format!(
            "site '{}' is not known to this cluster (known: {}); add it first with `ironcore-backup cluster site set {} --role backup|witness`, or fix `site` in the node's configuration",
            node.site,
            known(&sites),
            node.site
        ));
    };
    match (
        site.role == SiteRole::Witness,
        node.role == NodeRole::Witness,
    ) {
        (true, false) => refuse(format!(
            "site {} is a witness site: its nodes join as witnesses (they vote and hold no data)",
            site.name
        )),
        (false, true) => refuse(format!(
            "node {} is a witness but site {} is a {} site",
            node.name, site.name, site.role
        )),
        _ => Ok(Ok(())),
    }
}

/// Whether a datastore may live at `site`: not at a witness site.
pub(crate) fn check_data_site(view: &MetaView, site: &SiteId) -> Staged {
    match view.site(site)? {
        Some(s) if s.role == SiteRole::Witness => refuse(format!(
            "site {site} is a witness site and holds no data; give a primary or backup site"
        )),
        _ => Ok(Ok(())),
    }
}

/// `primary (primary), dr (backup)`.
fn known(sites: &[SiteRecord]) -> String {
    sites
        .iter()
        .map(|s| format!("{} ({})", s.name, s.role))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The mirror sites of a new datastore: recorded data sites other than its own, each once,
/// each with at least one copy.
pub(crate) fn check_mirrors(view: &MetaView, d: &DatastoreConfig) -> Staged {
    let mut seen = vec![&d.site];
    for m in &d.mirrors {
        if seen.contains(&&m.site) {
            return refuse(format!(
                "site {} is named twice in the copies of datastore {}",
                m.site, d.name
            ));
        }
        seen.push(&m.site);
        if m.copies == 0 {
            return refuse(format!("copies at site {} must be at least 1", m.site));
        }
        match view.site(&m.site)? {
            None => {
                return refuse(format!(
                    "site '{}' is not known to this cluster (known: {}); add it first with `ironcore-backup cluster site set {} --role backup`",
                    m.site,
                    known(&view.sites()?),
                    m.site
                ));
            }
            Some(s) if s.role == SiteRole::Witness => {
                return refuse(format!(
                    "site {} is a witness site and holds no data; give a primary or backup site",
                    m.site
                ));
            }
            Some(_) => {}
        }
    }
    Ok(Ok(()))
}

/// [`MetaCommand::MarkComplete`](crate::MetaCommand::MarkComplete): a snapshot that exists, a
/// mirror site of its datastore; marking it again changes nothing.
pub(crate) fn mark_complete(
    view: &MetaView,
    ch: &mut Changes<'_>,
    ds: &DatastoreName,
    snapshot: &SnapshotRef,
    site: &SiteId,
) -> Staged {
    let Some(config) = view.datastore(ds)? else {
        return refuse(format!("datastore {ds} does not exist"));
    };
    if !config.mirrors.iter().any(|m| &m.site == site) {
        return refuse(format!(
            "site {site} is not a mirror site of datastore {ds}"
        ));
    }
    let Some(mut entry) = view.snapshot(ds, snapshot)? else {
        return refuse(format!("snapshot {ds}:{snapshot} does not exist"));
    };
    if !entry.complete_at.contains(site) {
        entry.complete_at.push(site.clone());
        ch.put(
            "snapshot",
            &crate::meta::keys::snapshot(ds, snapshot),
            &entry,
        )?;
    }
    Ok(Ok(()))
}
