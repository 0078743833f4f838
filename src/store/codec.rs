//! The only module that names bincode: record types (`records`) to and from bytes.
//!
//! Decoding is bounded and returns errors on bad bytes instead of panicking.

use crate::error::{Error, Result};
use crate::model::{
    ApiKey, EmailToken, Event, Invitation, Mail, OauthLink, OauthProvider, OauthState, Passkey,
    Session, Settings, User, UserPrefs,
};

use super::records::{
    ApiKeyRecord, EventRecord, InvitationRecord, LinkRecord, MailRecord, PasskeyRecord,
    PrefsRecord, ProviderRecord, Record, SessionRecord, SettingsRecord, StateRecord, TokenRecord,
    UserRecord,
};

/// Largest value we will ever decode; guards against a corrupt length prefix.
const LIMIT: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<LIMIT>()
}

fn encode<R: Record>(v: &R::Value) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(R::new(v), config())
        .map_err(|e| Error::Internal(format!("encode {} record: {e}", R::NAME)))
}

fn decode<R: Record>(bytes: &[u8]) -> Result<R::Value> {
    let (rec, used): (R, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| Error::Store(format!("corrupt {} record: {e}", R::NAME)))?;
    if used != bytes.len() {
        return Err(Error::Store(format!(
            "corrupt {} record: {} trailing bytes",
            R::NAME,
            bytes.len() - used
        )));
    }
    Ok(rec.into_value())
}

macro_rules! codec {
    ($rec:ty, $ty:ty, $enc:ident, $dec:ident) => {
        /// Encode as the newest record version.
        pub fn $enc(v: &$ty) -> Result<Vec<u8>> {
            encode::<$rec>(v)
        }
        /// Decode any known record version.
        pub fn $dec(bytes: &[u8]) -> Result<$ty> {
            decode::<$rec>(bytes)
        }
    };
}

codec!(UserRecord, User, encode_user, decode_user);
codec!(SessionRecord, Session, encode_session, decode_session);
codec!(ApiKeyRecord, ApiKey, encode_api_key, decode_api_key);
codec!(EventRecord, Event, encode_event, decode_event);
codec!(SettingsRecord, Settings, encode_settings, decode_settings);
codec!(
    ProviderRecord,
    OauthProvider,
    encode_provider,
    decode_provider
);
codec!(LinkRecord, OauthLink, encode_link, decode_link);
codec!(StateRecord, OauthState, encode_state, decode_state);
codec!(PrefsRecord, UserPrefs, encode_prefs, decode_prefs);
codec!(MailRecord, Mail, encode_mail, decode_mail);
codec!(TokenRecord, EmailToken, encode_token, decode_token);
codec!(PasskeyRecord, Passkey, encode_passkey, decode_passkey);
codec!(
    InvitationRecord,
    Invitation,
    encode_invitation,
    decode_invitation
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProviderKind, Role, Totp};
    use uuid::Uuid;

    fn user() -> User {
        User {
            id: Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            password_hash: Some("$argon2id$x".into()),
            role: Role::Admin,
            active: true,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_001,
            last_login_at: None,
            totp: Some(Totp {
                secret_sealed: vec![9, 9],
                last_step: 7,
                recovery_hashes: vec![[1; 32]],
            }),
            pending_totp: None,
            email_verified_at: Some(1_700_000_000),
            origin: crate::model::Origin::Unknown,
            scheduled_deletion_at: None,
            login_alerts: true,
        }
    }

    #[test]
    fn user_round_trips() {
        let u = user();
        assert_eq!(decode_user(&encode_user(&u).unwrap()).unwrap(), u);
    }

    /// A V1 user, as every release before V2 wrote it, still decodes: variant 0 (V1), uuid as
    /// 16 length-prefixed bytes, "Ada", email, Some(hash), role 1 (admin), active, zig-zag
    /// varint times (0xfc + u32), None, Some(Totp{..}), None. Migrated on read: an admin's
    /// email counts as verified since the account's creation, the origin is unknown.
    #[test]
    fn golden_bytes_user_v1_decode_migrated() {
        let v1 = "00100102030405060708090a0b0c0d0e0f10034164610f616461406578616d706c652e636f6d010b\
             246172676f6e32696424780101fc00e2a7cafc02e2a7ca00010209090701010101010101010101\
             010101010101010101010101010101010101010101010100";
        assert_eq!(decode_user(&unhex(&v1.replace(' ', ""))).unwrap(), user());
        // A user (role 0) migrates unverified.
        let mut as_user = unhex(&v1.replace(' ', ""));
        let role_at = 16 + 2 + 4 + 16 + 13;
        assert_eq!(as_user[role_at], 1, "the role byte");
        as_user[role_at] = 0;
        let u = decode_user(&as_user).unwrap();
        assert_eq!((u.role, u.email_verified_at), (Role::User, None));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Each record type and version, pinned both ways: the current encoder writes exactly
    /// these bytes, and these bytes (as a file written by an older release holds them)
    /// decode to the value. A changed field fails here instead of in an operator's store.
    macro_rules! golden {
        ($name:ident, $enc:ident, $dec:ident, $value:expr, $hex:expr) => {
            #[test]
            fn $name() {
                let v = $value;
                assert_eq!(hex(&$enc(&v).unwrap()), $hex, "encoding changed");
                assert_eq!($dec(&unhex($hex)).unwrap(), v, "old bytes no longer decode");
            }
        };
    }

    /// A V2 user still decodes: nothing scheduled, sign-in alerts on.
    #[test]
    fn golden_user_v2_decode_migrated() {
        let v2 = "01100102030405060708090a0b0c0d0e0f10034164610f616461406578616d706c652e636f6d010b246172676f6e32696424780101fc00e2a7cafc02e2a7ca0001020909070101010101010101010101010101010101010101010101010101010101010101010001fce8e5a7ca04";
        assert_eq!(
            decode_user(&unhex(v2)).unwrap(),
            User {
                origin: crate::model::Origin::Sso,
                email_verified_at: Some(1_700_000_500),
                ..user()
            }
        );
    }

    golden!(
        golden_user_v3,
        encode_user,
        decode_user,
        User {
            origin: crate::model::Origin::Sso,
            email_verified_at: Some(1_700_000_500),
            scheduled_deletion_at: Some(1_700_600_000),
            login_alerts: false,
            ..user()
        },
        "02100102030405060708090a0b0c0d0e0f10034164610f616461406578616d706c652e636f6d010b246172676f6e32696424780101fc00e2a7cafc02e2a7ca0001020909070101010101010101010101010101010101010101010101010101010101010101010001fce8e5a7ca0401fc8031baca00"
    );

    fn session(proved_at: i64) -> Session {
        Session {
            id: id(1),
            user_id: id(2),
            ip: "192.0.2.7".into(),
            user_agent: "Firefox".into(),
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
            proved_at,
        }
    }

    /// A V1 session still decodes: its last proof is its sign-in.
    #[test]
    fn golden_session_v1_decode_migrated() {
        let v1 = "0010000000000000000000000000000000011000000000000000000000000000000002093139322e302e322e370746697265666f78fc00e2a7cafc0085aaca";
        assert_eq!(decode_session(&unhex(v1)).unwrap(), session(1_700_000_000));
    }

    golden!(
        golden_session_v2,
        encode_session,
        decode_session,
        session(1_700_000_900),
        "0110000000000000000000000000000000011000000000000000000000000000000002093139322e302e322e370746697265666f78fc00e2a7cafc0085aacafc08e9a7ca"
    );
    golden!(
        golden_api_key_v1,
        encode_api_key,
        decode_api_key,
        ApiKey {
            id: id(3),
            user_id: id(2),
            name: "sender".into(),
            prefix: "posta_ab".into(),
            hash: [7; 32],
            scopes: vec!["send".into()],
            allowed_ips: vec!["10.0.0.0/8".into()],
            created_at: 1_700_000_000,
            expires_at: Some(1_800_000_000),
            last_used_at: None,
            revoked_at: Some(1_700_000_500)
        },
        "00100000000000000000000000000000000310000000000000000000000000000000020673656e64657208706f7374615f61620707070707070707070707070707070707070707070707070707070707070707010473656e64010a31302e302e302e302f38fc00e2a7ca01fc00a493d60001fce8e5a7ca"
    );
    golden!(
        golden_event_v1,
        encode_event,
        decode_event,
        Event {
            id: 42,
            at: 1_700_000_000,
            kind: "login.failed".into(),
            actor: Some(id(2)),
            subject: None,
            email: Some("ada@example.com".into()),
            ip: Some("192.0.2.7".into()),
            detail: "wrong password".into()
        },
        "002afc00e2a7ca0c6c6f67696e2e6661696c656401100000000000000000000000000000000200010f616461406578616d706c652e636f6d01093139322e302e322e370e77726f6e672070617373776f7264"
    );
    fn settings(reauth_window_minutes: u32) -> Settings {
        Settings {
            registration_enabled: false,
            allowed_signup_domains: vec!["example.com".into()],
            two_factor_required: true,
            login_rate_limit_count: 7,
            login_rate_limit_window_minutes: 11,
            reauth_window_minutes,
            account_deletion_grace_days: 7,
            audit_log_retention_days: 90,
            require_email_verification: false,
            password_reset_enabled: true,
            unverified_account_days: 7,
        }
    }

    /// V1 settings still decode, with the default re-authentication window.
    #[test]
    fn golden_settings_v1_decode_migrated() {
        assert_eq!(
            decode_settings(&unhex("0000010b6578616d706c652e636f6d01070b")).unwrap(),
            settings(10)
        );
    }

    /// V2 settings still decode, with the default grace period and retention.
    #[test]
    fn golden_settings_v2_decode_migrated() {
        assert_eq!(
            decode_settings(&unhex("0100010b6578616d706c652e636f6d01070b05")).unwrap(),
            settings(5)
        );
    }

    golden!(
        golden_settings_v3,
        encode_settings,
        decode_settings,
        Settings {
            account_deletion_grace_days: 3,
            audit_log_retention_days: 30,
            require_email_verification: true,
            password_reset_enabled: false,
            unverified_account_days: 30,
            ..settings(5)
        },
        "0200010b6578616d706c652e636f6d01070b05031e01001e"
    );
    fn provider(v2_flags: bool) -> OauthProvider {
        OauthProvider {
            id: id(4),
            name: "Corp".into(),
            slug: "corp".into(),
            kind: ProviderKind::Oidc,
            client_id: "posta".into(),
            client_secret_sealed: Some(vec![1, 2, 3]),
            issuer: Some("https://idp.example".into()),
            auth_url: None,
            token_url: None,
            userinfo_url: None,
            scopes: "openid email".into(),
            auto_register: true,
            allowed_domains: vec!["example.com".into()],
            enabled: true,
            trust_email: v2_flags,
            skip_local_2fa: v2_flags,
            hidden: false,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_001,
        }
    }

    /// A V1 provider still decodes, migrated: trusted no further than its answers say.
    #[test]
    fn golden_provider_v1_decode_migrated() {
        assert_eq!(decode_provider(&unhex("00100000000000000000000000000000000404436f727004636f72700105706f7374610103010203011368747470733a2f2f6964702e6578616d706c650000000c6f70656e696420656d61696c01010b6578616d706c652e636f6d01fc00e2a7cafc02e2a7ca")).unwrap(), provider(false));
    }

    /// A V2 provider still decodes, listed (not hidden).
    #[test]
    fn golden_provider_v2_decode_migrated() {
        assert_eq!(decode_provider(&unhex("01100000000000000000000000000000000404436f727004636f72700105706f7374610103010203011368747470733a2f2f6964702e6578616d706c650000000c6f70656e696420656d61696c01010b6578616d706c652e636f6d01fc00e2a7cafc02e2a7ca0101")).unwrap(), provider(true));
    }

    golden!(
        golden_provider_v3,
        encode_provider,
        decode_provider,
        OauthProvider {
            hidden: true,
            ..provider(true)
        },
        "02100000000000000000000000000000000404436f727004636f72700105706f7374610103010203011368747470733a2f2f6964702e6578616d706c650000000c6f70656e696420656d61696c01010b6578616d706c652e636f6d01fc00e2a7cafc02e2a7ca010101"
    );
    golden!(
        golden_prefs_v1,
        encode_prefs,
        decode_prefs,
        UserPrefs {
            values: vec![
                (
                    "api_key_expiry_days".into(),
                    crate::model::PrefValue::Int(30)
                ),
                ("daily_report".into(), crate::model::PrefValue::Bool(false)),
                (
                    "timezone".into(),
                    crate::model::PrefValue::Text("Europe/Rome".into())
                ),
                ("default_template_id".into(), crate::model::PrefValue::Null),
            ],
            created_at: 1_700_000_000,
            updated_at: 1_700_000_100,
        },
        "0004136170695f6b65795f6578706972795f64617973023c0c6461696c795f7265706f727401000874696d657a6f6e65030b4575726f70652f526f6d651364656661756c745f74656d706c6174655f696400fc00e2a7cafcc8e2a7ca"
    );
    golden!(
        golden_link_v1,
        encode_link,
        decode_link,
        OauthLink {
            provider_id: id(4),
            subject: "sub-1".into(),
            user_id: id(2),
            email: "ada@example.com".into(),
            created_at: 1_700_000_000,
            last_used_at: Some(1_700_000_100)
        },
        "001000000000000000000000000000000004057375622d3110000000000000000000000000000000020f616461406578616d706c652e636f6dfc00e2a7ca01fcc8e2a7ca"
    );
    golden!(
        golden_mail_v1,
        encode_mail,
        decode_mail,
        Mail {
            id: 7,
            kind: "verify_email".into(),
            to: "ada@example.com".into(),
            subject: "Posta: hi".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
            created_at: 1_700_000_000,
            attempts: 2,
            next_attempt_at: 1_700_000_060,
        },
        "00070c7665726966795f656d61696c0f616461406578616d706c652e636f6d09506f7374613a2068690174083c703e683c2f703efc00e2a7ca02fc78e2a7ca"
    );
    golden!(
        golden_token_v1,
        encode_token,
        decode_token,
        EmailToken {
            kind: crate::model::TokenKind::EmailChange,
            user_id: id(2),
            email: "new@example.com".into(),
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
        },
        "000210000000000000000000000000000000020f6e6577406578616d706c652e636f6dfc00e2a7cafc0085aaca"
    );
    golden!(
        golden_invitation_v1,
        encode_invitation,
        decode_invitation,
        Invitation {
            id: id(9),
            email: "noa@example.com".into(),
            role: crate::model::Role::Admin,
            name: Some("Noa".into()),
            invited_by: Some(id(1)),
            created_at: 1_700_000_000,
            expires_at: 1_700_604_800,
        },
        "0010000000000000000000000000000000090f6e6f61406578616d706c652e636f6d0101034e6f61011000000000000000000000000000000001fc00e2a7cafc0057baca"
    );
    golden!(
        golden_passkey_v1,
        encode_passkey,
        decode_passkey,
        Passkey {
            id: id(5),
            user_id: id(2),
            credential_id: vec![0xc1, 0xc2],
            user_handle: vec![0x5a; 4],
            name: "Laptop".into(),
            public_key: vec![1, 2, 3],
            state: [1, 2, 3, 0, 0, 0, 0],
            transports: 16,
            backed_up: true,
            created_at: 1_700_000_000,
            last_used_at: Some(1_700_000_100),
        },
        "001000000000000000000000000000000005100000000000000000000000000000000202c1c2045a5a5a5a064c6170746f7003010203010203000000001001fc00e2a7ca01fcc8e2a7ca"
    );
    fn state(link_for: Option<(Uuid, Uuid)>) -> OauthState {
        OauthState {
            provider_id: id(4),
            pkce_verifier_sealed: vec![5, 6],
            nonce: "n0".into(),
            binding: [9; 32],
            created_at: 1_700_000_000,
            expires_at: 1_700_000_600,
            link_for,
        }
    }

    /// A V1 pending authorization still decodes: a sign-in.
    #[test]
    fn golden_state_v1_decode_migrated() {
        let v1 = "001000000000000000000000000000000004020506026e300909090909090909090909090909090909090909090909090909090909090909fc00e2a7cafcb0e6a7ca";
        assert_eq!(decode_state(&unhex(v1)).unwrap(), state(None));
    }

    golden!(
        golden_state_v2,
        encode_state,
        decode_state,
        state(Some((id(2), id(1)))),
        "011000000000000000000000000000000004020506026e300909090909090909090909090909090909090909090909090909090909090909fc00e2a7cafcb0e6a7ca0110000000000000000000000000000000021000000000000000000000000000000001"
    );

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_user(&[]).is_err());
        assert!(decode_user(&[0xff; 40]).is_err());
        assert!(decode_session(&[5, 1, 2]).is_err());
        let mut ok = encode_user(&user()).unwrap();
        ok.push(0);
        assert!(decode_user(&ok).is_err(), "trailing bytes refused");
        // A huge claimed length must hit the limit rather than allocate.
        assert!(
            decode_user(&[0, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err()
        );
    }
}
