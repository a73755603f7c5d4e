//! WebAuthn JSON from the browser into webauthn-rs types, as the passkey
//! routes receive it (`RegisterPublicKeyCredential` at registration,
//! `PublicKeyCredential` at login): never a panic, and what parses
//! serialises to JSON that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

fn round_trip<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_value(&value).unwrap();
        let again: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), json);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<RegisterPublicKeyCredential>(data);
    round_trip::<PublicKeyCredential>(data);
});
