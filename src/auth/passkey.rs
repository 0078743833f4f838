//! The WebAuthn relying party (passkeys), over the `webauthn_rp` crate: ceremony options out,
//! responses checked as the spec says (origin, RP id hash, challenge, user presence and
//! verification, signature, signature counter, backup flags), credentials as bytes for the
//! store.
//!
//! Ceremonies are stateless on the server: the crate's server state is sealed under the
//! instance key (with the ceremony's kind and binding as associated data) and handed to the
//! client beside the options; the client returns it with its response. Nothing is stored
//! before a finish succeeds; single use is the caller's set of spent ceremonies
//! (`Ceremony::nonce`, until `Ceremony::expires_at`).

use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::AuthenticationVerificationOptions;
use webauthn_rp::request::register::CredProtect;
use webauthn_rp::request::register::{
    Nickname, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle64,
    Username,
};
use webauthn_rp::request::{AsciiDomain, ExtensionInfo, PublicKeyCredentialDescriptor, RpId};
use webauthn_rp::response::auth::error::AuthCeremonyErr;
use webauthn_rp::response::register::{DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, Backup, CredentialId};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication64, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration,
    RegistrationServerState,
};

use super::crypto::{Sealer, random_bytes};
use crate::error::{Error, Result};

/// How long a ceremony may take (the options' timeout is the crate's five minutes too).
pub const CEREMONY_TTL: i64 = 300;

/// Length of the per-account user handle: random, never the email or the user id.
pub const HANDLE_LEN: usize = 64;

/// What a ceremony is for; part of what its sealed state is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Adding a passkey to the signed-in account (bound to the session).
    Register,
    /// The second step of a password sign-in (bound to the pending sign-in).
    SecondFactor,
    /// A sign-in with a passkey alone (bound to nothing: anyone may start one).
    SignIn,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SecondFactor => "second-factor",
            Purpose::SignIn => "sign-in",
        }
    }
}

/// A started ceremony: options for `navigator.credentials` and the sealed state to return.
#[derive(Debug)]
pub struct Started {
    /// `PublicKeyCredentialCreationOptionsJSON` or `…RequestOptionsJSON`.
    pub options: serde_json::Value,
    /// The sealed server state (base64url), returned by the client at finish.
    pub ceremony: String,
}

/// A sealed ceremony, opened: the crate's server state and what single use needs.
#[derive(Debug)]
pub struct Ceremony {
    /// Random per ceremony: the key of the spent set.
    pub nonce: [u8; 16],
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
    state: Vec<u8>,
}

/// The account a passkey is created for, as authenticators show it.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// Its user handle.
    pub handle: [u8; HANDLE_LEN],
    /// Its address (the credential's user name).
    pub email: &'a str,
    /// Its name (the display name).
    pub name: &'a str,
}

/// A registered credential, ready to store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The credential id (unique across accounts).
    pub id: Vec<u8>,
    /// The user handle the options carried (the account's).
    pub user_handle: [u8; HANDLE_LEN],
    /// Public key and static extension outputs (the crate's encoding).
    pub static_state: Vec<u8>,
    /// Flags and signature counter (the crate's encoding).
    pub dynamic_state: [u8; 7],
    /// Transports the authenticator named (the crate's encoding).
    pub transports: u8,
    /// Whether the credential is backed up (synced).
    pub backed_up: bool,
}

/// A passkey as stored, for an assertion check.
#[derive(Debug, Clone)]
pub struct StoredCredential<'a> {
    /// The credential id.
    pub id: &'a [u8],
    /// The account's user handle.
    pub user_handle: [u8; HANDLE_LEN],
    /// As in [`NewCredential`].
    pub static_state: &'a [u8],
    /// As in [`NewCredential`].
    pub dynamic_state: [u8; 7],
}

/// An assertion parsed from the client, before it is checked.
pub struct Assertion(DiscoverableAuthentication64);

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assertion")
    }
}

impl Assertion {
    /// Parse `PublicKeyCredential.toJSON()` of an assertion.
    pub fn parse(json: &[u8]) -> Result<Self> {
        DiscoverableAuthentication64::from_json_relaxed(json)
            .map(Self)
            .map_err(|e| Error::invalid("credential", format!("is not a passkey assertion: {e}")))
    }

    /// The credential id it claims.
    #[must_use]
    pub fn credential_id(&self) -> Vec<u8> {
        self.0.raw_id().as_ref().to_vec()
    }

    /// The user handle it claims.
    #[must_use]
    pub fn user_handle(&self) -> [u8; HANDLE_LEN] {
        self.0
            .response()
            .user_handle()
            .encode()
            .unwrap_or([0; HANDLE_LEN])
    }
}

/// Why an assertion failed, for the audit log (the client sees one message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signature counter went backwards on a credential that is not synced: a clone.
    CounterRegressed,
    /// Anything else (origin, RP id, challenge, flags, signature, expired).
    Invalid(String),
}

/// Outcome of an assertion check.
#[derive(Debug)]
pub struct Verified {
    /// The new dynamic state when it changed (counter, flags), to store.
    pub dynamic_state: Option<[u8; 7]>,
    /// Whether the credential is backed up now.
    pub backed_up: bool,
}

/// The relying party of this installation.
#[derive(Debug)]
pub struct RelyingParty {
    rp_id: RpId,
    origins: Vec<String>,
}

impl RelyingParty {
    /// From `web_url` (the origin the dashboard is served from) and an optional RP id (a
    /// parent domain of its host). WebAuthn needs a secure context: `https://`, or
    /// `http://localhost` for trying it out. The error says what is missing.
    pub fn new(web_url: Option<&str>, rp_id: Option<&str>) -> Result<Self, String> {
        let Some(web_url) = web_url else {
            return Err("passkeys need web_url (POSTA_WEB_URL): the https:// address the dashboard is served from".into());
        };
        let (scheme, rest) = web_url
            .split_once("://")
            .ok_or_else(|| format!("web_url {web_url:?} is not a URL"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(h, _)| h)
            .to_ascii_lowercase();
        let local = host == "localhost" || host.ends_with(".localhost");
        if scheme != "https" && !(scheme == "http" && local) {
            return Err(format!(
                "passkeys need an https:// web_url (or http://localhost to try them): {web_url:?} is not a secure origin"
            ));
        }
        let rp = rp_id.map_or_else(|| host.clone(), str::to_ascii_lowercase);
        if rp != host && !host.ends_with(&format!(".{rp}")) {
            return Err(format!(
                "webauthn_rp_id {rp:?} must be the host of web_url ({host}) or a parent domain of it"
            ));
        }
        let domain = AsciiDomain::try_from(rp.clone())
            .map_err(|e| format!("webauthn_rp_id {rp:?} is not a domain name: {e}"))?;
        Ok(Self {
            rp_id: RpId::Domain(domain),
            origins: vec![format!("{scheme}://{}", authority.to_ascii_lowercase())],
        })
    }

    /// A new random user handle for an account's first passkey.
    #[must_use]
    pub fn new_user_handle() -> [u8; HANDLE_LEN] {
        UserHandle64::new().encode().unwrap_or([0; HANDLE_LEN])
    }

    /// Creation options for a discoverable credential with user verification, excluding the
    /// account's existing credentials.
    pub fn start_registration(
        &self,
        sealer: &Sealer,
        binding: &[u8],
        account: &Account<'_>,
        exclude: &[(Vec<u8>, u8)],
        now: i64,
    ) -> Result<Started> {
        let user_id = UserHandle64::decode(account.handle).map_err(|_| internal("user handle"))?;
        // Authenticators show these; an address or name the profiles refuse is left out
        // rather than refused (the handle is what identifies the account).
        let user_name = match Username::try_from(account.email) {
            Ok(u) => u,
            Err(_) => Username::try_from("posta-user").map_err(|_| internal("user name"))?,
        };
        let display = Nickname::try_from(account.name).ok();
        let entity = PublicKeyCredentialUserEntity {
            name: user_name,
            id: &user_id,
            display_name: display,
        };
        let mut excluded = Vec::with_capacity(exclude.len());
        for (id, transports) in exclude {
            excluded.push(PublicKeyCredentialDescriptor {
                id: CredentialId::<Vec<u8>>::decode(id.clone())
                    .map_err(|_| internal("stored credential id"))?,
                transports: AuthTransports::decode(*transports)
                    .map_err(|_| internal("stored transports"))?,
            });
        }
        let mut options =
            PublicKeyCredentialCreationOptions::passkey(&self.rp_id, entity, excluded);
        // credProtect asked for, not enforced: an authenticator without the extension (Chrome's
        // own among them) would otherwise refuse to create the passkey at all. Every sign-in
        // requires user verification regardless.
        options.extensions.cred_protect =
            CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
        let (server, client) = options
            .start_ceremony()
            .map_err(|e| internal(&format!("creation options: {e}")))?;
        let options = serde_json::to_value(&client).map_err(|e| internal(&e.to_string()))?;
        let state = server.encode().map_err(|e| internal(&format!("{e:?}")))?;
        seal(sealer, Purpose::Register, binding, &state, now, options)
    }

    /// Request options for a discoverable credential with user verification.
    pub fn start_authentication(
        &self,
        sealer: &Sealer,
        purpose: Purpose,
        binding: &[u8],
        now: i64,
    ) -> Result<Started> {
        let (server, client) = DiscoverableCredentialRequestOptions::passkey(&self.rp_id)
            .start_ceremony()
            .map_err(|e| internal(&format!("request options: {e}")))?;
        let options = serde_json::to_value(&client).map_err(|e| internal(&e.to_string()))?;
        let state = server.encode().map_err(|e| internal(&format!("{e:?}")))?;
        seal(sealer, purpose, binding, &state, now, options)
    }

    /// Check a registration response against its ceremony.
    pub fn finish_registration(
        &self,
        ceremony: &Ceremony,
        credential_json: &[u8],
    ) -> Result<NewCredential> {
        let server = RegistrationServerState::<HANDLE_LEN>::decode(&ceremony.state)
            .map_err(|_| refused("the passkey ceremony is not valid"))?;
        let response = Registration::from_json_relaxed(credential_json).map_err(|e| {
            Error::invalid("credential", format!("is not a passkey registration: {e}"))
        })?;
        let options = RegistrationVerificationOptions::<String, String> {
            allowed_origins: &self.origins,
            ..RegistrationVerificationOptions::default()
        };
        let cred = server
            .verify(&self.rp_id, &response, &options)
            .map_err(|e| refused(&format!("the passkey was not accepted: {e}")))?;
        let dynamic = cred.dynamic_state();
        Ok(NewCredential {
            id: cred.id().as_ref().to_vec(),
            user_handle: cred.user_id().encode().unwrap_or([0; HANDLE_LEN]),
            static_state: cred
                .static_state()
                .encode()
                .map_err(|e| internal(&format!("{e:?}")))?,
            dynamic_state: dynamic.encode().map_err(|e| internal(&format!("{e:?}")))?,
            transports: cred.transports().encode().unwrap_or_default(),
            backed_up: matches!(dynamic.backup, Backup::Exists),
        })
    }

    /// Check an assertion against its ceremony and the stored credential it names.
    pub fn finish_authentication(
        &self,
        ceremony: &Ceremony,
        assertion: &Assertion,
        stored: &StoredCredential<'_>,
    ) -> Result<Verified, Refusal> {
        let invalid = |what: &str| Refusal::Invalid(what.to_owned());
        let server = DiscoverableAuthenticationServerState::decode(&ceremony.state)
            .map_err(|_| invalid("ceremony state"))?;
        let user = UserHandle64::decode(stored.user_handle).map_err(|_| invalid("user handle"))?;
        let static_state = StaticState::decode(stored.static_state)
            .map_err(|e| invalid(&format!("stored public key: {e}")))?;
        let dynamic_state = DynamicState::decode(stored.dynamic_state)
            .map_err(|e| invalid(&format!("stored state: {e}")))?;
        let id = CredentialId::<&[u8]>::decode(stored.id).map_err(|_| invalid("credential id"))?;
        let mut cred = AuthenticatedCredential::new(id, &user, static_state, dynamic_state)
            .map_err(|e| invalid(&format!("stored credential: {e}")))?;
        let options = AuthenticationVerificationOptions::<String, String> {
            allowed_origins: &self.origins,
            ..AuthenticationVerificationOptions::default()
        };
        let changed = server
            .verify(&self.rp_id, &assertion.0, &mut cred, &options)
            .map_err(|e| match e {
                AuthCeremonyErr::SignatureCounter => Refusal::CounterRegressed,
                other => Refusal::Invalid(other.to_string()),
            })?;
        let now_state = cred.dynamic_state();
        Ok(Verified {
            dynamic_state: if changed {
                Some(now_state.encode().map_err(|_| invalid("state"))?)
            } else {
                None
            },
            backed_up: matches!(now_state.backup, Backup::Exists),
        })
    }
}

/// Ceremonies already finished (or tried), until they expire: single use without a store
/// write. Bounded: when full of live entries a new finish is refused (try again shortly)
/// rather than forgetting a live one, which would let it be replayed.
#[derive(Debug, Default)]
pub struct Spent {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 16], i64>>,
}

/// Live spent ceremonies kept at most (each lives five minutes).
pub const SPENT_MAX: usize = 100_000;

/// Why a ceremony could not be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSpent {
    /// It was already used: a replay.
    Replay,
    /// The set is full of live ceremonies (a flood): try again in a few minutes.
    Full,
}

impl Spent {
    /// Mark `c` spent.
    pub fn spend(&self, c: &Ceremony, now: i64) -> Result<(), NotSpent> {
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= SPENT_MAX {
            m.retain(|_, exp| *exp > now);
            if m.len() >= SPENT_MAX {
                return Err(NotSpent::Full);
            }
        }
        match m.insert(c.nonce, c.expires_at) {
            None => Ok(()),
            Some(_) => Err(NotSpent::Replay),
        }
    }
}

/// Whether a stored dynamic state says the credential is backed up.
#[must_use]
pub fn backed_up(dynamic_state: [u8; 7]) -> bool {
    DynamicState::decode(dynamic_state).is_ok_and(|d| matches!(d.backup, Backup::Exists))
}

fn aad(purpose: Purpose, binding: &[u8]) -> Vec<u8> {
    let mut a = format!("posta webauthn {}:", purpose.tag()).into_bytes();
    a.extend_from_slice(binding);
    a
}

fn seal(
    sealer: &Sealer,
    purpose: Purpose,
    binding: &[u8],
    state: &[u8],
    now: i64,
    options: serde_json::Value,
) -> Result<Started> {
    use base64::Engine as _;
    let nonce = random_bytes::<16>()?;
    let mut plain = Vec::with_capacity(24 + state.len());
    plain.extend_from_slice(&nonce);
    plain.extend_from_slice(&(now + CEREMONY_TTL).to_le_bytes());
    plain.extend_from_slice(state);
    let sealed = sealer.seal(&plain, &aad(purpose, binding))?;
    Ok(Started {
        options,
        ceremony: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
    })
}

/// Open a ceremony the client returned: it must be this installation's, for this purpose and
/// binding, and not expired. Single use is the caller's (the nonce).
pub fn open(
    sealer: &Sealer,
    purpose: Purpose,
    binding: &[u8],
    ceremony: &str,
    now: i64,
) -> Result<Ceremony> {
    use base64::Engine as _;
    let bad = || refused("the passkey ceremony is not valid or has expired: start again");
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(ceremony.trim())
        .map_err(|_| bad())?;
    let plain = sealer
        .open(&sealed, &aad(purpose, binding))
        .map_err(|_| bad())?;
    let (nonce, rest) = plain.split_at_checked(16).ok_or_else(bad)?;
    let (exp, state) = rest.split_at_checked(8).ok_or_else(bad)?;
    let expires_at = i64::from_le_bytes(exp.try_into().map_err(|_| bad())?);
    if expires_at <= now {
        return Err(bad());
    }
    Ok(Ceremony {
        nonce: nonce.try_into().map_err(|_| bad())?,
        expires_at,
        state: state.to_vec(),
    })
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("passkey: {what}"))
}

fn refused(what: &str) -> Error {
    Error::BadRequest(what.to_owned())
}

#[cfg(test)]
mod tests {
    //! Ceremonies against a software authenticator (P-256, "none" attestation) built here
    //! from the spec, so that each check is seen to refuse what it should.

    use base64::Engine as _;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::crypto::sha256;

    const WEB: &str = "https://posta.example.com";

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn head(major: u8, n: u64) -> Vec<u8> {
        let m = major << 5;
        match n {
            0..=23 => vec![m | n as u8],
            24..=0xff => vec![m | 24, n as u8],
            _ => {
                let mut v = vec![m | 25];
                v.extend_from_slice(&(n as u16).to_be_bytes());
                v
            }
        }
    }
    fn bytes(b: &[u8]) -> Vec<u8> {
        let mut v = head(2, b.len() as u64);
        v.extend_from_slice(b);
        v
    }
    fn text(s: &str) -> Vec<u8> {
        let mut v = head(3, s.len() as u64);
        v.extend_from_slice(s.as_bytes());
        v
    }
    fn int(i: i64) -> Vec<u8> {
        if i >= 0 {
            head(0, i as u64)
        } else {
            head(1, (-1 - i) as u64)
        }
    }

    /// A software authenticator holding one credential.
    struct Soft {
        key: SigningKey,
        id: Vec<u8>,
        handle: [u8; HANDLE_LEN],
        counter: u32,
        rp_id: String,
        origin: String,
    }

    impl Soft {
        fn new() -> Self {
            Self {
                key: SigningKey::from_bytes(&[7u8; 32].into()).unwrap(),
                id: vec![0xc1; 32],
                handle: [0x5a; HANDLE_LEN],
                counter: 0,
                rp_id: "posta.example.com".into(),
                origin: WEB.into(),
            }
        }

        fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
            json!({
                "type": kind, "challenge": options["challenge"], "origin": self.origin,
                "crossOrigin": false,
            })
            .to_string()
            .into_bytes()
        }

        fn auth_data(&self, flags: u8, attested: bool) -> Vec<u8> {
            let mut d = sha256(self.rp_id.as_bytes()).to_vec();
            d.push(flags);
            d.extend_from_slice(&self.counter.to_be_bytes());
            if attested {
                d.extend_from_slice(&[0; 16]);
                d.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
                d.extend_from_slice(&self.id);
                let point = self.key.verifying_key().to_encoded_point(false);
                let mut k = head(5, 5);
                for (label, value) in [
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (int(-2), bytes(point.x().unwrap())),
                    (int(-3), bytes(point.y().unwrap())),
                ] {
                    k.extend(label);
                    k.extend(value);
                }
                d.extend(k);
            }
            d
        }

        /// `PublicKeyCredential.toJSON()` of a registration.
        fn register(&self, options: &Value) -> Vec<u8> {
            let cdj = self.client_data("webauthn.create", options);
            // UP | UV | BE | BS | AT: a synced passkey.
            let auth_data = self.auth_data(0x01 | 0x04 | 0x08 | 0x10 | 0x40, true);
            let mut ao = head(5, 3);
            ao.extend(text("fmt"));
            ao.extend(text("none"));
            ao.extend(text("attStmt"));
            ao.extend(head(5, 0));
            ao.extend(text("authData"));
            ao.extend(bytes(&auth_data));
            json!({
                "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
                "response": {
                    "clientDataJSON": b64(&cdj), "attestationObject": b64(&ao),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {}, "authenticatorAttachment": "platform",
            })
            .to_string()
            .into_bytes()
        }

        /// `PublicKeyCredential.toJSON()` of an assertion (flags: UP | UV | BE | BS).
        fn assert(&mut self, options: &Value, flags: u8) -> Vec<u8> {
            self.counter += 1;
            let cdj = self.client_data("webauthn.get", options);
            let auth_data = self.auth_data(flags, false);
            let mut signed = auth_data.clone();
            signed.extend_from_slice(&sha256(&cdj));
            let sig: Signature = self.key.sign(&signed);
            json!({
                "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
                "response": {
                    "clientDataJSON": b64(&cdj), "authenticatorData": b64(&auth_data),
                    "signature": b64(sig.to_der().as_bytes()), "userHandle": b64(&self.handle),
                },
                "clientExtensionResults": {}, "authenticatorAttachment": "platform",
            })
            .to_string()
            .into_bytes()
        }
    }

    const SYNCED: u8 = 0x01 | 0x04 | 0x08 | 0x10;
    const DEVICE_BOUND: u8 = 0x01 | 0x04;

    fn rp() -> RelyingParty {
        RelyingParty::new(Some(WEB), None).unwrap()
    }

    fn sealer() -> Sealer {
        Sealer::new([3; 32])
    }

    /// A registration ceremony started for `soft`'s account, and opened as its finish would.
    fn start_reg(rp: &RelyingParty, s: &Sealer, soft: &Soft) -> (Started, Ceremony) {
        let account = Account {
            handle: soft.handle,
            email: "ada@example.com",
            name: "Ada",
        };
        let started = rp
            .start_registration(s, b"sid", &account, &[], 1_000)
            .unwrap();
        let c = open(s, Purpose::Register, b"sid", &started.ceremony, 1_010).unwrap();
        (started, c)
    }

    /// Register `soft` through a whole ceremony; the stored credential.
    fn registered(rp: &RelyingParty, soft: &Soft) -> NewCredential {
        let s = sealer();
        let (started, c) = start_reg(rp, &s, soft);
        rp.finish_registration(&c, &soft.register(&started.options))
            .unwrap()
    }

    fn sign_in(
        rp: &RelyingParty,
        soft: &mut Soft,
        cred: &NewCredential,
        flags: u8,
    ) -> Result<Verified, Refusal> {
        let s = sealer();
        let started = rp
            .start_authentication(&s, Purpose::SignIn, b"", 2_000)
            .unwrap();
        let c = open(&s, Purpose::SignIn, b"", &started.ceremony, 2_010).unwrap();
        let a = Assertion::parse(&soft.assert(&started.options, flags)).unwrap();
        assert_eq!(a.credential_id(), cred.id);
        assert_eq!(a.user_handle(), soft.handle);
        rp.finish_authentication(
            &c,
            &a,
            &StoredCredential {
                id: &cred.id,
                user_handle: soft.handle,
                static_state: &cred.static_state,
                dynamic_state: cred.dynamic_state,
            },
        )
    }

    #[test]
    fn a_passkey_registers_and_signs_in() {
        let (rp, mut soft) = (rp(), Soft::new());
        let cred = registered(&rp, &soft);
        assert_eq!(cred.id, soft.id);
        assert!(cred.backed_up);
        let v = sign_in(&rp, &mut soft, &cred, SYNCED).unwrap();
        assert!(v.backed_up);
    }

    #[test]
    fn options_ask_for_a_discoverable_credential_with_user_verification() {
        let s = sealer();
        let started = rp()
            .start_registration(
                &s,
                b"sid",
                &Account {
                    handle: [1; HANDLE_LEN],
                    email: "ada@example.com",
                    name: "Ada",
                },
                &[],
                0,
            )
            .unwrap();
        let o = &started.options;
        assert_eq!(o["rp"]["id"], "posta.example.com");
        assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(o["user"]["id"], b64(&[1; HANDLE_LEN]));
        let started = rp()
            .start_authentication(&s, Purpose::SignIn, b"", 0)
            .unwrap();
        assert_eq!(started.options["userVerification"], "required");
        assert_eq!(started.options["rpId"], "posta.example.com");
    }

    #[test]
    fn a_response_from_another_origin_is_refused() {
        let rp = rp();
        let mut soft = Soft::new();
        soft.origin = "https://evil.example".into();
        let s = sealer();
        let (started, c) = start_reg(&rp, &s, &soft);
        assert!(
            rp.finish_registration(&c, &soft.register(&started.options))
                .is_err()
        );
        // Signing in, too.
        let mut good = Soft::new();
        let cred = registered(&rp, &good);
        good.origin = "https://posta.example.com.evil.example".into();
        assert!(matches!(
            sign_in(&rp, &mut good, &cred, SYNCED),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn a_credential_for_another_rp_id_is_refused() {
        let rp = rp();
        let mut soft = Soft::new();
        soft.rp_id = "example.org".into();
        let s = sealer();
        let (started, c) = start_reg(&rp, &s, &soft);
        assert!(
            rp.finish_registration(&c, &soft.register(&started.options))
                .is_err()
        );
        let mut good = Soft::new();
        let cred = registered(&rp, &good);
        good.rp_id = "example.org".into();
        assert!(sign_in(&rp, &mut good, &cred, SYNCED).is_err());
    }

    #[test]
    fn an_answer_to_another_challenge_is_refused() {
        let (rp, s) = (rp(), sealer());
        let mut soft = Soft::new();
        let cred = registered(&rp, &soft);
        let first = rp
            .start_authentication(&s, Purpose::SignIn, b"", 0)
            .unwrap();
        let second = rp
            .start_authentication(&s, Purpose::SignIn, b"", 0)
            .unwrap();
        let c = open(&s, Purpose::SignIn, b"", &second.ceremony, 1).unwrap();
        let a = Assertion::parse(&soft.assert(&first.options, SYNCED)).unwrap();
        let stored = StoredCredential {
            id: &cred.id,
            user_handle: soft.handle,
            static_state: &cred.static_state,
            dynamic_state: cred.dynamic_state,
        };
        assert!(rp.finish_authentication(&c, &a, &stored).is_err());
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let (rp, s) = (rp(), sealer());
        let mut soft = Soft::new();
        let cred = registered(&rp, &soft);
        soft.key = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let started = rp
            .start_authentication(&s, Purpose::SignIn, b"", 0)
            .unwrap();
        let c = open(&s, Purpose::SignIn, b"", &started.ceremony, 1).unwrap();
        let a = Assertion::parse(&soft.assert(&started.options, SYNCED)).unwrap();
        let stored = StoredCredential {
            id: &cred.id,
            user_handle: soft.handle,
            static_state: &cred.static_state,
            dynamic_state: cred.dynamic_state,
        };
        assert!(matches!(
            rp.finish_authentication(&c, &a, &stored),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn user_verification_is_required() {
        let (rp, mut soft) = (rp(), Soft::new());
        let cred = registered(&rp, &soft);
        assert!(sign_in(&rp, &mut soft, &cred, 0x01 | 0x08 | 0x10).is_err());
    }

    #[test]
    fn a_counter_going_backwards_on_a_device_bound_key_is_a_clone() {
        let rp = rp();
        let mut soft = Soft::new();
        let s = sealer();
        // Registered as device-bound (no backup flags) with a counter.
        let (started, c) = start_reg(&rp, &s, &soft);
        let mut reg: Value = serde_json::from_slice(&soft.register(&started.options)).unwrap();
        let ao = soft.auth_data(DEVICE_BOUND | 0x40, true);
        let mut obj = head(5, 3);
        obj.extend(text("fmt"));
        obj.extend(text("none"));
        obj.extend(text("attStmt"));
        obj.extend(head(5, 0));
        obj.extend(text("authData"));
        obj.extend(bytes(&ao));
        reg["response"]["attestationObject"] = json!(b64(&obj));
        let mut cred = rp
            .finish_registration(&c, reg.to_string().as_bytes())
            .unwrap();
        assert!(!cred.backed_up);
        soft.counter = 10;
        let v = sign_in(&rp, &mut soft, &cred, DEVICE_BOUND).unwrap();
        cred.dynamic_state = v.dynamic_state.expect("the counter moved");
        soft.counter = 3; // a copy of the key, behind the original
        assert_eq!(
            sign_in(&rp, &mut soft, &cred, DEVICE_BOUND).unwrap_err(),
            Refusal::CounterRegressed
        );
    }

    #[test]
    fn ceremonies_are_bound_sealed_and_expire() {
        let (rp, s) = (rp(), sealer());
        let started = rp
            .start_authentication(&s, Purpose::SecondFactor, b"pending-1", 100)
            .unwrap();
        assert!(
            open(
                &s,
                Purpose::SecondFactor,
                b"pending-1",
                &started.ceremony,
                101
            )
            .is_ok()
        );
        assert!(
            open(
                &s,
                Purpose::SecondFactor,
                b"pending-2",
                &started.ceremony,
                101
            )
            .is_err()
        );
        assert!(open(&s, Purpose::SignIn, b"pending-1", &started.ceremony, 101).is_err());
        assert!(
            open(
                &s,
                Purpose::SecondFactor,
                b"pending-1",
                &started.ceremony,
                100 + CEREMONY_TTL
            )
            .is_err()
        );
        assert!(
            open(
                &Sealer::new([4; 32]),
                Purpose::SecondFactor,
                b"pending-1",
                &started.ceremony,
                101
            )
            .is_err()
        );
        let mut forged = started.ceremony.clone();
        forged.replace_range(10..11, if &forged[10..11] == "A" { "B" } else { "A" });
        assert!(open(&s, Purpose::SecondFactor, b"pending-1", &forged, 101).is_err());
    }

    #[test]
    fn a_ceremony_is_spent_once() {
        let (rp, s) = (rp(), sealer());
        let started = rp
            .start_authentication(&s, Purpose::SignIn, b"", 0)
            .unwrap();
        let spent = Spent::default();
        let c = open(&s, Purpose::SignIn, b"", &started.ceremony, 1).unwrap();
        assert_eq!(spent.spend(&c, 1), Ok(()));
        let again = open(&s, Purpose::SignIn, b"", &started.ceremony, 2).unwrap();
        assert_eq!(spent.spend(&again, 2), Err(NotSpent::Replay));
    }

    #[test]
    fn passkeys_need_a_secure_origin() {
        assert!(RelyingParty::new(None, None).is_err());
        assert!(RelyingParty::new(Some("http://posta.example.com"), None).is_err());
        assert!(RelyingParty::new(Some("http://127.0.0.1:8080"), None).is_err());
        assert!(RelyingParty::new(Some("http://localhost:8080"), None).is_ok());
        assert!(RelyingParty::new(Some("https://id.example.com"), Some("example.com")).is_ok());
        assert!(RelyingParty::new(Some("https://id.example.com"), Some("other.com")).is_err());
        assert!(RelyingParty::new(Some("https://id.example.com"), Some("ample.com")).is_err());
    }
}
