//! Helpers shared by the fuzz targets: a cursor that turns the fuzzer's
//! bytes into structured values (never panics, yields defaults once the
//! input runs out) and deterministic randomness.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// Reads structured values off the fuzzer's input.
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.bytes.len());
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len())
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.take(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A string of at most `max` bytes (lossy UTF-8).
    pub fn string(&mut self, max: usize) -> String {
        let n = usize::from(self.u8()).min(max);
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
}

/// The same randomness every run, so a crash reproduces.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x706f_7374_6572_6e)
}

/// What the JWT targets share: `JwtKeys::verify` and the header peeks on
/// arbitrary text, then (for inputs starting `S`) claims from the input
/// signed and verified back, and refused once any byte is changed.
pub mod jwt {
    use postern_core::keyring::Keyring;
    use postern_server::jwt::{looks_like_jwt, JwtAlgorithm, JwtKeys, SessionClaims};

    use super::{rng, Cursor};

    pub const ISSUER: &str = "https://postern.test";
    /// The verifier's clock, Unix seconds.
    pub const NOW: u64 = 1_800_000_000;

    pub fn keys(algorithm: JwtAlgorithm) -> JwtKeys {
        let mut rng = rng();
        let mut keyring = Keyring::generate(0, &mut rng);
        // Two generations: an old kid still verifies, the new one signs.
        keyring.rotate(1, &mut rng).unwrap();
        JwtKeys::from_keyring(&keyring, ISSUER, algorithm).unwrap()
    }

    pub fn run(keys: &JwtKeys, data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = looks_like_jwt(text);
            let _ = keys.owns(text);
            let _ = postern_tower::upstream::peek_jwt(text);
            if let Ok(claims) = keys.verify(text, NOW) {
                assert_eq!(claims.iss, ISSUER);
                assert_eq!(claims.aud, postern_server::jwt::DEFAULT_AUDIENCE);
                assert!(claims.exp + 1 > NOW);
                let again = keys.sign(&claims).unwrap();
                assert_eq!(keys.verify(&again, NOW), Ok(claims));
            }
        }
        let mut c = Cursor::new(data);
        if c.u8() != b'S' {
            return;
        }
        let claims = SessionClaims {
            iss: ISSUER.to_string(),
            aud: postern_server::jwt::DEFAULT_AUDIENCE.to_string(),
            sub: c.string(64),
            sid: c.string(32),
            iat: NOW - u64::from(c.u8()),
            nbf: NOW - u64::from(c.u8()),
            exp: NOW + 1 + u64::from(c.u32()),
            dbh: c.string(64),
        };
        let token = keys.sign(&claims).unwrap();
        assert!(looks_like_jwt(&token));
        assert!(keys.owns(&token));
        assert_eq!(keys.verify(&token, NOW), Ok(claims.clone()));
        assert_eq!(
            postern_tower::upstream::peek_jwt(&token),
            Some((keys.current_kid().map(str::to_string), Some(claims.exp)))
        );
        let mut bad = token.into_bytes();
        let at = c.u32() as usize % bad.len();
        let flip = c.u8() | 1;
        bad[at] ^= flip & 0x3f;
        if let Ok(bad) = String::from_utf8(bad) {
            assert!(keys.verify(&bad, NOW).is_err(), "tampered at {at}");
        }
    }
}
