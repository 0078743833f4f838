//! `/admin/*`: user management, all API keys, settings and the audit log.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{Actor, Caller, admin, api_key, audit, deletion, email_flow, invitation, mfa};
use crate::error::{Error, Result};
use crate::model::Role;
use crate::state::AppState;

use super::request::Req;
use super::response::{self, Resp};
use super::router::Admin;
use super::view::{ApiKeyView, EventView, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
    /// The admin vouches for the address unless told otherwise.
    #[serde(default)]
    email_verified: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeSessions {
    #[serde(default)]
    revoke_api_keys: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    email_verified: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingIn {
    key: String,
    value: Value,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSettings {
    settings: Vec<SettingIn>,
}

fn invitation_view(i: &crate::model::Invitation) -> serde_json::Value {
    json!({
        "id": i.id,
        "email": i.email,
        "role": i.role.as_str(),
        "name": i.name,
        "invited_by": i.invited_by,
        "created_at": crate::clock::rfc3339(i.created_at),
        "expires_at": crate::clock::rfc3339(i.expires_at),
    })
}

fn role(s: Option<&str>) -> Result<Option<Role>> {
    s.map(|r| Role::parse(r).ok_or_else(|| Error::invalid("role", "must be \"user\" or \"admin\"")))
        .transpose()
}

/// Dispatch an admin route (the caller is an admin with a session).
pub async fn handle(state: &AppState, route: Admin, req: &mut Req, c: &Caller) -> Result<Resp> {
    let client = req.client.clone();
    match route {
        Admin::CreateUser => {
            let b: CreateUser = req.json().await?;
            let r = role(b.role.as_deref())?.unwrap_or(Role::User);
            let actor = Actor::Admin(c, &client);
            let verified = b.email_verified.unwrap_or(true);
            let u = admin::create_user(state, actor, &b.name, &b.email, &b.password, r, verified)
                .await?;
            Ok(response::ok(StatusCode::CREATED, &UserView::of(state, &u)))
        }
        Admin::ListUsers => {
            let (page, size) = req.paging()?;
            let p = admin::list_users(state, req.query("search").as_deref(), page, size)?;
            Ok(response::paged(&p, |u| UserView::of(state, u)))
        }
        Admin::UpdateUser(id) => {
            let b: UpdateUser = req.json().await?;
            let patch = admin::UserPatch {
                name: b.name,
                role: role(b.role.as_deref())?,
                active: b.active,
                email_verified: b.email_verified,
            };
            let u = admin::update_user(state, Actor::Admin(c, &client), id, patch).await?;
            Ok(response::ok(StatusCode::OK, &UserView::of(state, &u)))
        }
        Admin::DeleteUser(id) => {
            let u = deletion::schedule_by_admin(state, Actor::Admin(c, &client), id).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({
                    "message": "user deactivated; deletion scheduled",
                    "scheduled_deletion_at": u.scheduled_deletion_at.map(crate::clock::rfc3339),
                    "user": UserView::of(state, &u),
                }),
            ))
        }
        Admin::ForceDeleteUser(id) => {
            deletion::force(state, Actor::Admin(c, &client), id).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "user deleted"}),
            ))
        }
        Admin::ResetLink(id) => {
            let (link, expires_at) =
                email_flow::admin_reset_link(state, Actor::Admin(c, &client), id).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({
                    "link": link,
                    "expires_at": crate::clock::rfc3339(expires_at),
                    "mailed": state.cfg.mail_enabled(),
                }),
            ))
        }
        Admin::RemovePasskeys(id) => {
            let n = crate::domain::passkey::admin_remove_all(state, Actor::Admin(c, &client), id)
                .await?;
            Ok(response::ok(StatusCode::OK, &json!({"removed": n})))
        }
        Admin::CreateInvitation => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Body {
                email: String,
                role: Option<String>,
                name: Option<String>,
            }
            let b: Body = req.json().await?;
            let r = role(b.role.as_deref())?.unwrap_or(Role::User);
            let (inv, link) =
                invitation::create(state, Actor::Admin(c, &client), &b.email, r, b.name).await?;
            let mut v = invitation_view(&inv);
            // Without mail the admin hands the link over; with mail it stays in the message.
            if !state.cfg.mail_enabled() {
                v["link"] = json!(link);
            }
            Ok(response::ok(StatusCode::CREATED, &v))
        }
        Admin::ListInvitations => {
            let (page, size) = req.paging()?;
            let p = invitation::list(state, page, size)?;
            Ok(response::paged(&p, invitation_view))
        }
        Admin::DeleteInvitation(id) => {
            invitation::revoke(state, Actor::Admin(c, &client), id).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "invitation revoked"}),
            ))
        }
        Admin::CancelDeletion(id) => {
            let u = deletion::cancel(state, Actor::Admin(c, &client), id).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "deletion cancelled; user reactivated", "user": UserView::of(state, &u)}),
            ))
        }
        Admin::Reset2fa(id) => {
            mfa::reset(state, Some(c.user.id), id, Some(&client)).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "two-factor authentication disabled"}),
            ))
        }
        Admin::RevokeSessions(id) => {
            let b: RevokeSessions = req.json_or_default().await?;
            let (n, keys) =
                admin::revoke_sessions(state, c, id, b.revoke_api_keys, &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "sessions revoked", "revoked": n, "revoked_api_keys": keys}),
            ))
        }
        Admin::ListApiKeys => {
            let (page, size) = req.paging()?;
            let p = api_key::list_all(state, page, size)?;
            Ok(response::paged(&p, ApiKeyView::from))
        }
        Admin::DeleteApiKey(id) => {
            api_key::delete(state, c, id, true, &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "api key deleted"}),
            ))
        }
        Admin::GetSettings => Ok(response::ok(
            StatusCode::OK,
            &admin::settings_view(&state.settings()),
        )),
        Admin::PutSettings => {
            let b: PutSettings = req.json().await?;
            let updates = b
                .settings
                .into_iter()
                .map(|s| (s.key, s.value, s.kind))
                .collect();
            let s = admin::put_settings(state, c, updates, &client).await?;
            Ok(response::ok(StatusCode::OK, &admin::settings_view(&s)))
        }
        Admin::Events => {
            let (page, size) = req.paging()?;
            let user_id = match req.query("user_id") {
                Some(u) if !u.is_empty() => Some(
                    uuid::Uuid::parse_str(&u)
                        .map_err(|_| Error::BadRequest("query user_id must be a UUID".into()))?,
                ),
                _ => None,
            };
            let kind = req.query("type").filter(|t| !t.is_empty());
            let category = req.query("category").filter(|t| !t.is_empty());
            let search = req.query("search").filter(|t| !t.is_empty());
            let filter = audit::Filter {
                category: category.as_deref(),
                kind: kind.as_deref(),
                user_id,
                search: search.as_deref(),
            };
            let p = audit::page(state, &filter, page, size)?;
            Ok(response::paged(&p, EventView::from))
        }
        Admin::Event(id) => {
            let e = audit::get(state, id)?;
            Ok(response::ok(StatusCode::OK, &EventView::from(&e)))
        }
        Admin::EventStream => {
            let last = req
                .parts
                .headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok());
            super::stream::events(state, last)
        }
    }
}
