//! The only module that names bincode: versioned records to and from bytes.
//!
//! bincode is not self-describing, so each stored value is an enum whose variant is its format
//! version. A new field means a new variant (and a conversion), never `#[serde(default)]`.
//! Decoding is bounded and returns errors on bad bytes instead of panicking.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{ApiKey, Event, OauthLink, OauthProvider, OauthState, Session, Settings, User};

/// Largest value we will ever decode; guards against a corrupt length prefix.
const LIMIT: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<LIMIT>()
}

macro_rules! record {
    ($rec:ident, $recref:ident, $ty:ty, $enc:ident, $dec:ident) => {
        #[derive(Deserialize)]
        enum $rec {
            V1($ty),
        }
        #[derive(Serialize)]
        enum $recref<'a> {
            V1(&'a $ty),
        }
        /// Encode the current record version.
        pub fn $enc(v: &$ty) -> Result<Vec<u8>> {
            bincode::serde::encode_to_vec($recref::V1(v), config())
                .map_err(|e| Error::Internal(format!("encode {}: {e}", stringify!($ty))))
        }
        /// Decode any known record version into the current type.
        pub fn $dec(bytes: &[u8]) -> Result<$ty> {
            let (rec, used): ($rec, usize) = bincode::serde::decode_from_slice(bytes, config())
                .map_err(|e| Error::Store(format!("corrupt {} record: {e}", stringify!($ty))))?;
            if used != bytes.len() {
                return Err(Error::Store(format!(
                    "corrupt {} record: {} trailing bytes",
                    stringify!($ty),
                    bytes.len() - used
                )));
            }
            match rec {
                $rec::V1(v) => Ok(v),
            }
        }
    };
}

record!(UserRecord, UserRecordRef, User, encode_user, decode_user);
record!(
    SessionRecord,
    SessionRecordRef,
    Session,
    encode_session,
    decode_session
);
record!(
    ApiKeyRecord,
    ApiKeyRecordRef,
    ApiKey,
    encode_api_key,
    decode_api_key
);
record!(
    EventRecord,
    EventRecordRef,
    Event,
    encode_event,
    decode_event
);
record!(
    SettingsRecord,
    SettingsRecordRef,
    Settings,
    encode_settings,
    decode_settings
);

record!(
    ProviderRecord,
    ProviderRecordRef,
    OauthProvider,
    encode_provider,
    decode_provider
);
record!(
    LinkRecord,
    LinkRecordRef,
    OauthLink,
    encode_link,
    decode_link
);
record!(
    StateRecord,
    StateRecordRef,
    OauthState,
    encode_state,
    decode_state
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, Totp};
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
        }
    }

    #[test]
    fn user_round_trips() {
        let u = user();
        assert_eq!(decode_user(&encode_user(&u).unwrap()).unwrap(), u);
    }

    /// Pins the on-disk encoding: if this changes, files written by older releases break.
    #[test]
    fn golden_bytes_user_v1() {
        let bytes = encode_user(&user()).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // variant 0 (V1), uuid as 16 length-prefixed bytes, "Ada", email, Some(hash), role 1
        // (admin), active, zig-zag varint times (0xfc + u32), None, Some(Totp{..}), None.
        assert_eq!(
            hex,
            "00100102030405060708090a0b0c0d0e0f10034164610f616461406578616d706c652e636f6d010b\
             246172676f6e32696424780101fc00e2a7cafc02e2a7ca00010209090701010101010101010101\
             010101010101010101010101010101010101010101010100"
        );
    }

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
