//! A user's own settings: Posta's `/users/me/settings` object. The keys this appliance acts on
//! (`api_key_expiry_days` sets a new key's default expiry; the notification switches gate the
//! mails it sends) and the ones Posta's settings page also stores are all typed and bounded
//! here, so the page round-trips and nothing unbounded reaches the store.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{PrefValue, UserPrefs};
use crate::state::AppState;
use crate::store;

use super::Caller;

/// What a key holds and its default.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool(bool),
    Int {
        default: i64,
        min: i64,
        max: i64,
    },
    Text {
        default: &'static str,
        max: usize,
    },
    /// A number or null (Posta's `default_template_id`).
    OptionalInt,
}

/// Every key, in the order the object lists them.
const KEYS: &[(&str, Kind)] = &[
    (
        "timezone",
        Kind::Text {
            default: "UTC",
            max: 64,
        },
    ),
    (
        "default_language",
        Kind::Text {
            default: "en",
            max: 16,
        },
    ),
    (
        "default_sender_name",
        Kind::Text {
            default: "",
            max: 200,
        },
    ),
    (
        "default_sender_email",
        Kind::Text {
            default: "",
            max: 254,
        },
    ),
    ("email_notifications", Kind::Bool(true)),
    (
        "notification_email",
        Kind::Text {
            default: "",
            max: 254,
        },
    ),
    (
        "webhook_retry_count",
        Kind::Int {
            default: 3,
            min: 0,
            max: 10,
        },
    ),
    ("default_template_id", Kind::OptionalInt),
    (
        "api_key_expiry_days",
        Kind::Int {
            default: 90,
            min: 0,
            max: 3650,
        },
    ),
    ("bounce_auto_suppress", Kind::Bool(true)),
    ("daily_report", Kind::Bool(false)),
    ("notify_bounce_alerts", Kind::Bool(true)),
    ("notify_api_key_expiry", Kind::Bool(true)),
    ("notify_workspace_activity", Kind::Bool(true)),
];

/// Fields of the object that are not settings: sent back by a page that round-trips the
/// whole object, and ignored.
const READ_ONLY: &[&str] = &["id", "user_id", "created_at", "updated_at"];

fn default_of(kind: Kind) -> PrefValue {
    match kind {
        Kind::Bool(b) => PrefValue::Bool(b),
        Kind::Int { default, .. } => PrefValue::Int(default),
        Kind::Text { default, .. } => PrefValue::Text(default.to_owned()),
        Kind::OptionalInt => PrefValue::Null,
    }
}

fn lookup<'a>(p: Option<&'a UserPrefs>, key: &str) -> Option<&'a PrefValue> {
    p?.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The value of `key` for `user`, or its default.
fn value(prefs: Option<&UserPrefs>, key: &str) -> PrefValue {
    lookup(prefs, key).cloned().unwrap_or_else(|| {
        KEYS.iter()
            .find(|(k, _)| *k == key)
            .map_or(PrefValue::Null, |(_, kind)| default_of(*kind))
    })
}

/// Whether the user wants mail at all (Posta's `email_notifications`; on by default).
#[must_use]
pub fn notifications_on(prefs: Option<&UserPrefs>) -> bool {
    value(prefs, "email_notifications") != PrefValue::Bool(false)
}

/// Days until a new API key expires when its creator names none (0: never).
pub fn api_key_expiry_days(state: &AppState, user: Uuid) -> Result<u32> {
    let prefs = state.store.read(|tx| store::prefs::get(tx, user))?;
    Ok(match value(prefs.as_ref(), "api_key_expiry_days") {
        PrefValue::Int(d) => u32::try_from(d).unwrap_or(0),
        _ => 0,
    })
}

/// `GET /users/me/settings`: every key, set or default.
pub fn view(state: &AppState, caller: &Caller) -> Result<Value> {
    let uid = caller.user.id;
    let prefs = state.store.read(|tx| store::prefs::get(tx, uid))?;
    Ok(render(uid, prefs.as_ref(), caller.user.created_at))
}

fn render(uid: Uuid, prefs: Option<&UserPrefs>, user_created: i64) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(uid.to_string()));
    m.insert("user_id".into(), Value::String(uid.to_string()));
    for (k, _) in KEYS {
        let v = match value(prefs, k) {
            PrefValue::Null => Value::Null,
            PrefValue::Bool(b) => Value::Bool(b),
            PrefValue::Int(i) => Value::from(i),
            PrefValue::Text(t) => Value::String(t),
        };
        m.insert((*k).to_owned(), v);
    }
    let (created, updated) = prefs.map_or((user_created, user_created), |p| {
        (p.created_at, p.updated_at)
    });
    m.insert(
        "created_at".into(),
        Value::String(crate::clock::rfc3339(created)),
    );
    m.insert(
        "updated_at".into(),
        Value::String(crate::clock::rfc3339(updated)),
    );
    Value::Object(m)
}

/// Check one key's new value.
fn parse(key: &str, v: &Value) -> Result<PrefValue> {
    let kind = KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| Error::invalid("settings", format!("unknown setting {key:?}")))?;
    let bad = |why: String| Err(Error::BadRequest(format!("{key}: {why}")));
    match (kind, v) {
        (Kind::Bool(_), Value::Bool(b)) => Ok(PrefValue::Bool(*b)),
        (Kind::Bool(_), _) => bad("must be true or false".into()),
        (Kind::Int { min, max, .. }, Value::Number(n)) => match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(PrefValue::Int(i)),
            _ => bad(format!("must be a whole number from {min} to {max}")),
        },
        (Kind::Int { min, max, .. }, _) => {
            bad(format!("must be a whole number from {min} to {max}"))
        }
        (Kind::Text { max, .. }, Value::String(s)) => {
            if s.chars().count() > max || s.chars().any(char::is_control) {
                bad(format!(
                    "must be at most {max} characters, without control characters"
                ))
            } else {
                Ok(PrefValue::Text(s.clone()))
            }
        }
        (Kind::Text { .. }, _) => bad("must be text".into()),
        (Kind::OptionalInt, Value::Null) => Ok(PrefValue::Null),
        (Kind::OptionalInt, Value::Number(n)) if n.as_i64().is_some_and(|i| i >= 0) => {
            Ok(PrefValue::Int(n.as_i64().unwrap_or_default()))
        }
        (Kind::OptionalInt, _) => bad("must be a number or null".into()),
    }
}

/// `PUT /users/me/settings`: the keys given, all or nothing, in one transaction.
pub async fn update(state: &AppState, caller: &Caller, body: Value) -> Result<Value> {
    let Value::Object(fields) = body else {
        return Err(Error::BadRequest(
            "expected a JSON object of settings".into(),
        ));
    };
    let mut changes = Vec::new();
    for (k, v) in &fields {
        if READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        changes.push((k.clone(), parse(k, v)?));
    }
    let uid = caller.user.id;
    let now = state.now();
    let saved = state
        .store
        .write(move |tx| {
            let mut p = store::prefs::get(tx, uid)?.unwrap_or(UserPrefs {
                values: Vec::new(),
                created_at: now,
                updated_at: now,
            });
            for (k, v) in &changes {
                match p.values.iter_mut().find(|(x, _)| x == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => p.values.push((k.clone(), v.clone())),
                }
            }
            p.updated_at = now;
            store::prefs::put(tx, uid, &p)?;
            Ok(p)
        })
        .await?;
    Ok(render(uid, Some(&saved), caller.user.created_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_and_bounded() {
        assert_eq!(
            parse("daily_report", &json!(true)).unwrap(),
            PrefValue::Bool(true)
        );
        assert!(parse("daily_report", &json!("yes")).is_err());
        assert_eq!(
            parse("api_key_expiry_days", &json!(0)).unwrap(),
            PrefValue::Int(0)
        );
        assert!(parse("api_key_expiry_days", &json!(3651)).is_err());
        assert!(parse("api_key_expiry_days", &json!(-1)).is_err());
        assert!(parse("timezone", &json!("x".repeat(65))).is_err());
        assert!(parse("timezone", &json!("Europe/Rome\n")).is_err());
        assert_eq!(
            parse("default_template_id", &json!(null)).unwrap(),
            PrefValue::Null
        );
        assert!(parse("theme", &json!("dark")).is_err());
        // Defaults: Posta's 90-day key expiry, notifications on.
        let v = render(Uuid::nil(), None, 0);
        assert_eq!(v["api_key_expiry_days"], 90);
        assert_eq!(v["email_notifications"], true);
        assert_eq!(v["default_template_id"], Value::Null);
    }
}
