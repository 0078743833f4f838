//! `/users/me/*`: profile, password, 2FA, sessions and API keys of the signed-in user.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::domain::api_key::{self, NewKeyInput};
use crate::domain::{
    AuthKind, Caller, audit, deletion, email_flow, mfa, passkey, prefs, reauth, session, user,
};
use crate::error::{Error, Result};
use crate::state::AppState;

use super::rendered;
use super::request::Req;
use super::response::{self, Resp};
use super::router::Account;
use super::view::{ApiKeyView, EventView, PasskeyView, SessionView, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMe {
    name: Option<String>,
    /// Mail the owner on a sign-in from a new browser.
    login_alerts: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    new_password: String,
    #[serde(default)]
    revoke_api_keys: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reauth {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /users/me/passkeys/register/finish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterPasskey {
    #[serde(default)]
    name: Option<String>,
    ceremony: String,
    /// `PublicKeyCredential.toJSON()` of the new credential.
    credential: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

/// A proof of identity a sensitive request may carry (see `domain::reauth`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProofFields {
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl ProofFields {
    fn given(&self) -> Option<reauth::Given<'_>> {
        reauth::Given::from_fields(self.current_password.as_deref(), self.code.as_deref())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApiKey {
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    code: Option<String>,
    name: String,
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

fn profile(state: &AppState, c: &Caller, u: &crate::model::User) -> Result<Resp> {
    if let AuthKind::Session {
        linked_providers, ..
    } = &c.kind
    {
        return Ok(response::ok(
            StatusCode::OK,
            &UserView::profile(state, u, linked_providers),
        ));
    }
    let slugs: Vec<String> = crate::domain::oidc::links(state, c)?
        .into_iter()
        .filter_map(|(_, p)| p.map(|p| p.slug))
        .collect();
    Ok(response::ok(
        StatusCode::OK,
        &UserView::profile(state, u, &slugs),
    ))
}

fn message(m: &str) -> Resp {
    response::ok(StatusCode::OK, &json!({"message": m}))
}

/// `GET /users/me`: synchronous, answered from the caller (no store read for a session, and
/// the body rendered once per verification).
pub fn me(state: &AppState, c: &Caller) -> Result<Resp> {
    let AuthKind::Session {
        linked_providers, ..
    } = &c.kind
    else {
        return profile(state, c, &c.user);
    };
    let body = rendered::profile(c, || {
        response::envelope(&UserView::profile(state, &c.user, linked_providers))
            .ok()
            .map(Bytes::from)
    })
    .ok_or_else(|| Error::Internal("profile not serialisable".into()))?;
    Ok(response::json_response(StatusCode::OK, body))
}

/// Dispatch an account route (other than `GET /users/me`) for a signed-in caller.
pub async fn handle(state: &AppState, route: Account, req: &mut Req, c: &Caller) -> Result<Resp> {
    let client = req.client.clone();
    match route {
        Account::UpdateMe => {
            let b: UpdateMe = req.json().await?;
            let u = user::update_profile(state, c, b.name.as_deref(), b.login_alerts).await?;
            profile(state, c, &u)
        }
        Account::ChangePassword => {
            let b: ChangePassword = req.json().await?;
            let (n, keys) = user::change_password(
                state,
                c,
                &b.current_password,
                &b.new_password,
                b.revoke_api_keys,
                &client,
            )
            .await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "password changed", "revoked_sessions": n, "revoked_api_keys": keys}),
            ))
        }
        Account::Reauth => {
            let b: Reauth = req.json().await?;
            let given = reauth::Given::from_fields(b.password.as_deref(), b.code.as_deref())
                .ok_or_else(|| Error::invalid("password", "give the password or a code"))?;
            reauth::prove(state, c, given, &client).await?;
            Ok(message("identity confirmed"))
        }
        Account::MfaSetup => {
            let b: ProofFields = req.json_or_default().await?;
            let e = mfa::setup(state, c, b.given(), &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"secret": e.secret, "url": e.url, "qr_code": e.qr_code}),
            ))
        }
        Account::MfaVerify => {
            let b: Code = req.json().await?;
            let codes = mfa::verify(state, c, &b.code, &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"recovery_codes": codes}),
            ))
        }
        Account::MfaDisable => {
            let b: Code = req.json().await?;
            mfa::disable(state, c, &b.code, &client).await?;
            Ok(message("two-factor authentication disabled"))
        }
        Account::ListSessions => {
            let v: Vec<SessionView> = session::list(state, c)?
                .iter()
                .map(|s| SessionView::new(s, c))
                .collect();
            Ok(response::ok(StatusCode::OK, &v))
        }
        Account::RevokeSession(id) => {
            session::revoke(state, c, id).await?;
            Ok(message("session revoked"))
        }
        Account::RevokeOtherSessions => {
            let n = session::revoke_others(state, c).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "other sessions revoked", "revoked": n}),
            ))
        }
        Account::Logout => {
            session::logout(state, c).await?;
            let mut r = message("signed out");
            response::set_cookie(&mut r, &super::cookie::clear(req.https));
            Ok(r)
        }
        Account::CreateApiKey => {
            let b: CreateApiKey = req.json().await?;
            let input = NewKeyInput {
                name: b.name,
                allowed_ips: b.allowed_ips.unwrap_or_default(),
                expires_in_days: b.expires_in_days,
                scopes: b.scopes,
            };
            let given =
                reauth::Given::from_fields(b.current_password.as_deref(), b.code.as_deref());
            let m = api_key::create(state, c, input, given, &client).await?;
            let k = &m.record;
            Ok(response::ok(
                StatusCode::CREATED,
                &json!({
                    "key": m.key,
                    "id": k.id,
                    "name": k.name,
                    "prefix": k.prefix,
                    "scopes": k.scopes,
                    "allowed_ips": k.allowed_ips,
                    "expires_at": k.expires_at.map(crate::clock::rfc3339),
                    "message": "store this key now: it will not be shown again",
                }),
            ))
        }
        Account::ListApiKeys => {
            let (page, size) = req.paging()?;
            let p = api_key::list_own(state, c, page, size)?;
            Ok(response::paged(&p, ApiKeyView::from))
        }
        Account::GetApiKey(id) => {
            let k = api_key::get_own(state, c, id)?;
            Ok(response::ok(StatusCode::OK, &ApiKeyView::from(&k)))
        }
        Account::AuditLog => {
            let (page, size) = req.paging()?;
            let kind = req.query("type").filter(|t| !t.is_empty());
            let category = req.query("category").filter(|t| !t.is_empty());
            let search = req.query("search").filter(|t| !t.is_empty());
            let filter = audit::Filter {
                category: category.as_deref(),
                kind: kind.as_deref(),
                user_id: Some(c.user.id),
                search: search.as_deref(),
            };
            let p = audit::page(state, &filter, page, size)?;
            Ok(response::paged(&p, EventView::from))
        }
        Account::AuditEvent(id) => {
            let e = audit::get_own(state, c.user.id, id)?;
            Ok(response::ok(StatusCode::OK, &EventView::from(&e)))
        }
        Account::ChangeEmail => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Body {
                email: String,
                #[serde(default)]
                current_password: Option<String>,
                #[serde(default)]
                code: Option<String>,
            }
            let b: Body = req.json().await?;
            let given =
                reauth::Given::from_fields(b.current_password.as_deref(), b.code.as_deref());
            email_flow::request_email_change(state, c, &b.email, given, &client).await?;
            Ok(message(
                "a confirmation link is on its way to the new address; the change happens when it is followed",
            ))
        }
        Account::ResendVerification => {
            email_flow::resend(state, c).await?;
            Ok(message("a new verification link is on its way"))
        }
        Account::DeleteMe => {
            let b: ProofFields = req.json_or_default().await?;
            let u = deletion::request_own(state, c, b.given(), &client).await?;
            let mut r = response::ok(
                StatusCode::OK,
                &json!({
                    "message": "account deactivated; it will be deleted at the scheduled time unless an admin cancels it",
                    "scheduled_deletion_at": u.scheduled_deletion_at.map(crate::clock::rfc3339),
                }),
            );
            response::set_cookie(&mut r, &super::cookie::clear(req.https));
            Ok(r)
        }
        Account::GetSettings => Ok(response::ok(StatusCode::OK, &prefs::view(state, c)?)),
        Account::ListPasskeys => {
            let list: Vec<PasskeyView> = passkey::list(state, c)?
                .iter()
                .map(PasskeyView::of)
                .collect();
            Ok(response::ok(StatusCode::OK, &list))
        }
        Account::PasskeyRegisterStart => {
            let b: ProofFields = req.json_or_default().await?;
            let s = passkey::register_start(state, c, b.given(), &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"options": s.options, "ceremony": s.ceremony}),
            ))
        }
        Account::PasskeyRegisterFinish => {
            let b: RegisterPasskey = req.json().await?;
            let credential = serde_json::to_vec(&b.credential)
                .map_err(|_| Error::invalid("credential", "is not JSON"))?;
            let p = passkey::register_finish(
                state,
                c,
                b.name.as_deref(),
                &b.ceremony,
                &credential,
                &client,
            )
            .await?;
            Ok(response::ok(StatusCode::CREATED, &PasskeyView::of(&p)))
        }
        Account::RenamePasskey(id) => {
            let b: Rename = req.json().await?;
            let p = passkey::rename(state, c, id, &b.name).await?;
            Ok(response::ok(StatusCode::OK, &PasskeyView::of(&p)))
        }
        Account::DeletePasskey(id) => {
            let b: ProofFields = req.json_or_default().await?;
            passkey::remove(state, c, id, b.given(), &client).await?;
            Ok(message("passkey removed"))
        }
        Account::PutSettings => {
            let body: serde_json::Value = req.json().await?;
            Ok(response::ok(
                StatusCode::OK,
                &prefs::update(state, c, body).await?,
            ))
        }
        // There are no workspaces here: an empty list sends Posta's dashboard to personal
        // mode, where its key pages use the caller's own keys.
        Account::Workspaces => Ok(response::ok(StatusCode::OK, &json!([]))),
        Account::RevokeApiKey(id) => {
            let k = api_key::revoke(state, c, id, &client).await?;
            Ok(response::ok(StatusCode::OK, &ApiKeyView::from(&k)))
        }
        Account::DeleteApiKey(id) => {
            api_key::delete(state, c, id, false, &client).await?;
            Ok(message("api key deleted"))
        }
    }
}
