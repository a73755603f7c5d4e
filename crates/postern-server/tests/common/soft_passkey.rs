//! A software passkey: a P-256 authenticator that answers Postern's
//! WebAuthn options the way a browser and a platform authenticator would
//! (`none` attestation, user present and verified), so the HTTP tests can
//! run real ceremonies without a browser. It can also misbehave on
//! purpose: another origin, a stale signature counter, a forged signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_CREDENTIAL: u8 = 0x40;

pub struct SoftPasskey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The user handle registered with the credential (discoverable).
    pub user_handle: Vec<u8>,
    /// The next signature counter value is this plus one.
    pub counter: u32,
    /// The origin the "browser" reports in client data.
    pub origin: String,
    pub rp_id: String,
}

impl SoftPasskey {
    pub fn new(origin: &str, rp_id: &str) -> Self {
        let mut rng = rand::thread_rng();
        let key = loop {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            if let Ok(key) = SigningKey::from_slice(&secret) {
                break key;
            }
        };
        let mut credential_id = vec![0u8; 32];
        rng.fill_bytes(&mut credential_id);
        Self {
            key,
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            origin: origin.to_string(),
            rp_id: rp_id.to_string(),
        }
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn auth_data(&mut self, flags: u8) -> Vec<u8> {
        self.counter += 1;
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// `navigator.credentials.create()` for the `options` of
    /// `/v1/passkeys/register/start`, as the page would send it back.
    pub fn register(&mut self, options: &Value) -> Value {
        let user_id = options["publicKey"]["user"]["id"].as_str().unwrap();
        self.user_handle = URL_SAFE_NO_PAD.decode(user_id).unwrap();
        let client_data = self.client_data("webauthn.create", options);
        let mut auth_data = self.auth_data(USER_PRESENT | USER_VERIFIED | ATTESTED_CREDENTIAL);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&self.cose_key());
        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        cbor_head(&mut attestation, 5, 0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let id = URL_SAFE_NO_PAD.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()` for the `options` of
    /// `/v1/passkeys/login/start`.
    pub fn assert(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.get", options);
        let auth_data = self.auth_data(USER_PRESENT | USER_VERIFIED);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        let id = URL_SAFE_NO_PAD.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "signature": URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes()),
                "userHandle": URL_SAFE_NO_PAD.encode(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    /// The public key as a COSE_Key (RFC 9053: EC2, ES256, P-256).
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let point = point.as_bytes();
        let mut out = Vec::new();
        cbor_head(&mut out, 5, 5);
        cbor_head(&mut out, 0, 1); // kty
        cbor_head(&mut out, 0, 2); // EC2
        cbor_head(&mut out, 0, 3); // alg
        cbor_head(&mut out, 1, 6); // -7: ES256
        cbor_head(&mut out, 1, 0); // crv (-1)
        cbor_head(&mut out, 0, 1); // P-256
        cbor_head(&mut out, 1, 1); // x (-2)
        cbor_bytes(&mut out, &point[1..33]);
        cbor_head(&mut out, 1, 2); // y (-3)
        cbor_bytes(&mut out, &point[33..65]);
        out
    }
}

/// A CBOR item head (RFC 8949 §3): major type and argument.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: usize) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xFF => out.extend_from_slice(&[major | 24, n as u8]),
        _ => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len());
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len());
    out.extend_from_slice(text.as_bytes());
}
