//! The identity proof a client sends (`postern_core::identity`): a
//! Ristretto255 public key at enrolment, a Schnorr proof at login. Input:
//! 32 bytes of key, 64 of proof, 32 of challenge, then the user. Arbitrary
//! bytes never verify against a key they were not made with; a proof made
//! with a key from the input verifies, and refuses any other statement.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_core::identity::{verify_proof, IdentityPublicKey, IdentitySecret, Statement};
use postern_fuzz::{rng, Cursor};

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let key_bytes: [u8; 32] = c.array();
    let proof: [u8; 64] = c.array();
    let challenge: [u8; 32] = c.array();
    let user = String::from_utf8_lossy(c.rest()).into_owned();
    let device_hash = [7u8; 32];
    let statement = Statement {
        challenge: &challenge,
        audience: "https://auth.example",
        user: &user,
        device_hash: &device_hash,
    };

    if let Ok(public) = IdentityPublicKey::from_bytes(&key_bytes) {
        // Canonical encodings only: the key prints back as its bytes.
        assert_eq!(public.as_bytes(), &key_bytes);
        let _ = verify_proof(&public, &statement, &proof);
        let _ = verify_proof(&public, &statement, &proof[..proof.len() - 1]);
    }

    // A key made from the input, enrolled as the server parses it (the
    // identity point, from a zero secret, is refused there).
    if let Some(secret) = IdentitySecret::from_bytes(&key_bytes) {
        let Ok(public) = IdentityPublicKey::from_bytes(secret.public_key().as_bytes()) else {
            assert_eq!(secret.to_bytes(), [0u8; 32]);
            return;
        };
        let made = secret.prove(&statement, &mut rng());
        assert_eq!(verify_proof(&public, &statement, &made), Ok(()));
        let other = Statement {
            challenge: &key_bytes,
            ..statement
        };
        if key_bytes != challenge {
            assert!(verify_proof(&public, &other, &made).is_err());
        }
        let relayed = Statement {
            audience: "https://auth.example.evil",
            ..statement
        };
        assert!(verify_proof(&public, &relayed, &made).is_err());
    }
});
