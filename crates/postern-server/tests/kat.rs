//! Known-answer tests for Ed25519, the default session-JWT algorithm,
//! through the code that signs and verifies Postern's JWTs:
//! `ed25519-dalek` 2 directly, and `jsonwebtoken` 11 (`rust_crypto`
//! backend) with keys loaded as `postern_server::jwt` loads them (PKCS#8
//! DER to sign, the JWK `x` component to verify).
//!
//! Source: RFC 8032 section 7.1, "Test Vectors for Ed25519": TEST 1, TEST
//! 2, TEST 3 and TEST SHA(abc) (4 of its 5; TEST 1024, with a 1023-byte
//! message, is left out). Every test asserts exact bytes.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

struct Vector {
    name: &'static str,
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

const RFC8032: [Vector; 4] = [
    Vector {
        name: "TEST 1",
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Vector {
        name: "TEST 2",
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Vector {
        name: "TEST 3",
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
    Vector {
        name: "TEST SHA(abc)",
        secret: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        public: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        message: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        signature: "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    },
];

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn array<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().unwrap()
}

#[test]
fn ed25519_keys_and_signatures_match_rfc_8032() {
    for v in &RFC8032 {
        let key = SigningKey::from_bytes(&array(v.secret));
        assert_eq!(
            key.verifying_key().to_bytes(),
            array::<32>(v.public),
            "{}",
            v.name
        );
        let message = hex(v.message);
        let signature = key.sign(&message);
        assert_eq!(signature.to_bytes(), array::<64>(v.signature), "{}", v.name);

        let public = VerifyingKey::from_bytes(&array(v.public)).unwrap();
        let expected = Signature::from_bytes(&array(v.signature));
        assert!(public.verify(&message, &expected).is_ok(), "{}", v.name);
        assert!(
            public.verify_strict(&message, &expected).is_ok(),
            "{}",
            v.name
        );
        // One changed bit of message or signature is refused.
        let mut other = message.clone();
        other.push(0);
        assert!(public.verify(&other, &expected).is_err(), "{}", v.name);
        let mut bad = expected.to_bytes();
        bad[7] ^= 0x10;
        assert!(
            public
                .verify(&message, &Signature::from_bytes(&bad))
                .is_err(),
            "{}",
            v.name
        );
    }
}

#[test]
fn jsonwebtoken_eddsa_as_postern_loads_its_keys_matches_rfc_8032() {
    for v in &RFC8032 {
        let key = SigningKey::from_bytes(&array(v.secret));
        // As `jwt::key_of` builds them: PKCS#8 DER to sign, `x` to verify.
        let der = key.to_pkcs8_der().unwrap();
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let decoding = DecodingKey::from_ed_components(&x).unwrap();

        let message = hex(v.message);
        let signed = jsonwebtoken::crypto::sign(&message, &encoding, Algorithm::EdDSA).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&signed).unwrap(),
            hex(v.signature),
            "{}",
            v.name
        );
        assert!(
            jsonwebtoken::crypto::verify(&signed, &message, &decoding, Algorithm::EdDSA).unwrap(),
            "{}",
            v.name
        );
        let mut other = message.clone();
        other.push(b'.');
        assert!(
            !jsonwebtoken::crypto::verify(&signed, &other, &decoding, Algorithm::EdDSA).unwrap(),
            "{}",
            v.name
        );
    }
}
