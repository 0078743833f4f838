//! Identity providers, user links and pending authorization states.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::{
    OAUTH_LINKS, OAUTH_PROVIDER_SLUGS, OAUTH_PROVIDERS, OAUTH_STATES, USER_OAUTH_LINKS,
};
use crate::error::{Error, Result};
use crate::model::{OauthLink, OauthProvider, OauthState};

/// A provider by id.
pub fn provider(tx: &impl Tx, id: Uuid) -> Result<Option<OauthProvider>> {
    let Some(t) = tx.table(OAUTH_PROVIDERS)? else {
        return Ok(None);
    };
    t.get(id.as_u128())?
        .map(|v| codec::decode_provider(v.value()))
        .transpose()
}

/// A provider by slug.
pub fn provider_by_slug(tx: &impl Tx, slug: &str) -> Result<Option<OauthProvider>> {
    let Some(t) = tx.table(OAUTH_PROVIDER_SLUGS)? else {
        return Ok(None);
    };
    let Some(id) = t.get(slug)?.map(|v| v.value()) else {
        return Ok(None);
    };
    drop(t);
    provider(tx, Uuid::from_u128(id))
}

/// Every provider.
pub fn providers(tx: &impl Tx) -> Result<Vec<OauthProvider>> {
    let Some(t) = tx.table(OAUTH_PROVIDERS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(codec::decode_provider(row?.1.value())?);
    }
    Ok(out)
}

/// Insert or update a provider, keeping the slug index unique.
pub fn put_provider(
    tx: &WriteTransaction,
    p: &OauthProvider,
    old_slug: Option<&str>,
) -> Result<()> {
    let mut slugs = tx.open_table(OAUTH_PROVIDER_SLUGS)?;
    if let Some(existing) = slugs.get(p.slug.as_str())?.map(|v| v.value())
        && existing != p.id.as_u128()
    {
        return Err(Error::Conflict(format!(
            "slug {:?} is already used",
            p.slug
        )));
    }
    if let Some(old) = old_slug.filter(|o| *o != p.slug) {
        slugs.remove(old)?;
    }
    slugs.insert(p.slug.as_str(), p.id.as_u128())?;
    let bytes = codec::encode_provider(p)?;
    tx.open_table(OAUTH_PROVIDERS)?
        .insert(p.id.as_u128(), bytes.as_slice())?;
    Ok(())
}

/// Delete a provider and every link to it.
pub fn remove_provider(tx: &WriteTransaction, p: &OauthProvider) -> Result<()> {
    tx.open_table(OAUTH_PROVIDERS)?.remove(p.id.as_u128())?;
    tx.open_table(OAUTH_PROVIDER_SLUGS)?
        .remove(p.slug.as_str())?;
    let mut dead = Vec::new();
    {
        let links = tx.open_table(OAUTH_LINKS)?;
        let pid = p.id.as_u128();
        for row in links.range((pid, "")..)? {
            let (k, v) = row?;
            if k.value().0 != pid {
                break;
            }
            dead.push(codec::decode_link(v.value())?);
        }
    }
    for l in dead {
        remove_link(tx, &l)?;
    }
    Ok(())
}

/// The link for (provider, subject).
pub fn link(tx: &impl Tx, provider_id: Uuid, subject: &str) -> Result<Option<OauthLink>> {
    let Some(t) = tx.table(OAUTH_LINKS)? else {
        return Ok(None);
    };
    t.get((provider_id.as_u128(), subject))?
        .map(|v| codec::decode_link(v.value()))
        .transpose()
}

/// Store a link.
pub fn put_link(tx: &WriteTransaction, l: &OauthLink) -> Result<()> {
    let bytes = codec::encode_link(l)?;
    tx.open_table(OAUTH_LINKS)?.insert(
        (l.provider_id.as_u128(), l.subject.as_str()),
        bytes.as_slice(),
    )?;
    tx.open_table(USER_OAUTH_LINKS)?.insert(
        (l.user_id.as_u128(), l.provider_id.as_u128()),
        l.subject.as_str(),
    )?;
    Ok(())
}

/// Remove a link.
pub fn remove_link(tx: &WriteTransaction, l: &OauthLink) -> Result<()> {
    tx.open_table(OAUTH_LINKS)?
        .remove((l.provider_id.as_u128(), l.subject.as_str()))?;
    tx.open_table(USER_OAUTH_LINKS)?
        .remove((l.user_id.as_u128(), l.provider_id.as_u128()))?;
    Ok(())
}

/// Remove every link between `user_id` and `provider_id`: the indexed one and any row of the
/// provider's that names the user without being indexed (a second subject that an earlier
/// release let overwrite the index). Returns how many rows went.
pub fn remove_links_to(tx: &WriteTransaction, user_id: Uuid, provider_id: Uuid) -> Result<usize> {
    let p = provider_id.as_u128();
    let mut stale = Vec::new();
    {
        let t = tx.open_table(OAUTH_LINKS)?;
        for row in t.range((p, "")..)? {
            let (k, v) = row?;
            let (kp, subject) = k.value();
            if kp != p {
                break;
            }
            if codec::decode_link(v.value())?.user_id == user_id {
                stale.push(subject.to_owned());
            }
        }
    }
    let mut links = tx.open_table(OAUTH_LINKS)?;
    for s in &stale {
        links.remove((p, s.as_str()))?;
    }
    tx.open_table(USER_OAUTH_LINKS)?
        .remove((user_id.as_u128(), p))?;
    Ok(stale.len())
}

/// A row of the users' link index: user, provider, subject.
pub type IndexRow = (Uuid, Uuid, String);

/// Every link row, and every row of the users' index.
pub fn link_tables(tx: &impl Tx) -> Result<(Vec<OauthLink>, Vec<IndexRow>)> {
    let mut links = Vec::new();
    if let Some(t) = tx.table(OAUTH_LINKS)? {
        for row in t.iter()? {
            links.push(codec::decode_link(row?.1.value())?);
        }
    }
    let mut index = Vec::new();
    if let Some(t) = tx.table(USER_OAUTH_LINKS)? {
        for row in t.iter()? {
            let (k, v) = row?;
            let (u, p) = k.value();
            index.push((Uuid::from_u128(u), Uuid::from_u128(p), v.value().to_owned()));
        }
    }
    Ok((links, index))
}

/// Remove one link row (not the index), and one index row.
pub fn remove_link_rows(
    tx: &WriteTransaction,
    row: Option<(Uuid, &str)>,
    index: Option<(Uuid, Uuid)>,
) -> Result<()> {
    if let Some((p, s)) = row {
        tx.open_table(OAUTH_LINKS)?.remove((p.as_u128(), s))?;
    }
    if let Some((u, p)) = index {
        tx.open_table(USER_OAUTH_LINKS)?
            .remove((u.as_u128(), p.as_u128()))?;
    }
    Ok(())
}

/// A user's links.
pub fn links_of(tx: &impl Tx, user_id: Uuid) -> Result<Vec<OauthLink>> {
    let Some(t) = tx.table(USER_OAUTH_LINKS)? else {
        return Ok(Vec::new());
    };
    let u = user_id.as_u128();
    let mut keys = Vec::new();
    for row in t.range((u, 0)..=(u, u128::MAX))? {
        let (k, v) = row?;
        keys.push((Uuid::from_u128(k.value().1), v.value().to_owned()));
    }
    drop(t);
    let mut out = Vec::new();
    for (p, s) in keys {
        if let Some(l) = link(tx, p, &s)? {
            out.push(l);
        }
    }
    Ok(out)
}

/// Save a pending authorization.
pub fn put_state(tx: &WriteTransaction, state: &str, s: &OauthState) -> Result<()> {
    let bytes = codec::encode_state(s)?;
    tx.open_table(OAUTH_STATES)?
        .insert(state, bytes.as_slice())?;
    Ok(())
}

/// Whether a pending authorization exists (a read, so that a callback with a made-up state
/// costs no write transaction).
pub fn has_state(tx: &impl Tx, state: &str) -> Result<bool> {
    let Some(t) = tx.table(OAUTH_STATES)? else {
        return Ok(false);
    };
    Ok(t.get(state)?.is_some())
}

/// Remove and return a pending authorization: single use, atomic within the transaction.
pub fn take_state(tx: &WriteTransaction, state: &str) -> Result<Option<OauthState>> {
    let mut t = tx.open_table(OAUTH_STATES)?;
    let v = t.remove(state)?;
    v.map(|v| codec::decode_state(v.value())).transpose()
}

/// Delete expired states; returns how many.
pub fn prune_states(tx: &WriteTransaction, now: i64) -> Result<usize> {
    let mut t = tx.open_table(OAUTH_STATES)?;
    let mut n = 0;
    t.retain(|_, v| {
        let keep = codec::decode_state(v).is_ok_and(|s| s.expires_at > now);
        if !keep {
            n += 1;
        }
        keep
    })?;
    Ok(n)
}
