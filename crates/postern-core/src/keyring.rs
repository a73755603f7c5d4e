//! Key generations, rotation, and wrapping under the instance's ML-KEM key.
//!
//! A *key generation* is everything a session is made with: the AES-256-GCM
//! master key that seals records at rest, the HMAC key for device binding,
//! and the seed of the ML-DSA-65 signing key. Each has an id, written into
//! every sealed record and session context, so rotation is safe: new sessions
//! use the newest generation while sessions made under an older one keep
//! opening and verifying under that one until the older generation is pruned,
//! which [`Keyring::prune`] does only once every session it could have made
//! has expired (retired time + the longest session lifetime).
//!
//! At rest the keyring is never in clear. Each generation's secrets are
//! encrypted with AES-256-GCM under a key derived from an ML-KEM-768 shared
//! secret encapsulated to the *instance key*, whose 64-byte seed lives
//! elsewhere (a separate key file, an environment variable, or a passphrase —
//! chosen at the edge). A copy of the keyring file alone reveals nothing, and
//! a new instance joins by having the generations encapsulated to its own
//! public key ([`Keyring::wrap`] takes any instance public key).
//!
//! Wrapped layout (version 2): `"PKRG" ‖ version (1) ‖ SHA3-256(instance
//! public key) ‖ revision (u64) ‖ count (1) ‖ count × (id u32 ‖ created u64 ‖
//! retired u64 (MAX = none) ‖ ML-KEM ciphertext (1088) ‖ nonce (12) ‖
//! AES-GCM(96 bytes of secrets) (112)) ‖ tag (32)`. Version 1 had no
//! revision and no tag.
//!
//! The *revision* counts every change to the keyring (creation, rotation,
//! pruning), so that an older copy of the file put back in place (undoing a
//! rotation made after a compromise, or bringing back a pruned generation)
//! is detected: the edge records the highest revision it has seen and
//! refuses a lower one ([`Keyring::revision`]). The tag, HMAC-SHA256 over
//! the whole file under a key derived from the newest generation, binds the
//! revision and the list of generations together: dropping, reordering or
//! renumbering them fails. Only a holder of the keyring can make it, which
//! is also who may write the file.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use libcrux_ml_kem::mlkem768::{
    self, MlKem768Ciphertext, MlKem768KeyPair, MlKem768PrivateKey, MlKem768PublicKey,
};
use rand::{CryptoRng, RngCore};
use sha3::{Digest, Sha3_256};
use zeroize::{Zeroize, Zeroizing};

use crate::device::DeviceBinder;
use crate::seal::{self, OpenError, SealFailed, SealingKey};
use crate::signing::{SigningKey, VerifyingKey};
use crate::wire::Reader;
use crate::UnixNanos;

const MAGIC: &[u8; 4] = b"PKRG";
const FILE_VERSION: u8 = 2;
/// The first format: no revision, no tag. Still read (as revision 0).
const UNTAGGED_FILE_VERSION: u8 = 1;
const FILE_TAG_LEN: usize = 32;
const KEM_CT_LEN: usize = 1088;
const SECRETS_LEN: usize = 96;
const NOT_RETIRED: u64 = u64::MAX;
/// Most generations a keyring holds; rotation beyond it prunes the oldest
/// only if it is prunable, otherwise it is refused.
pub const MAX_GENERATIONS: usize = 16;
/// Length of an instance public key (ML-KEM-768 encapsulation key).
pub const INSTANCE_PUBLIC_KEY_LEN: usize = 1184;

/// Why a keyring could not be read, written or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring file is truncated")]
    Truncated,
    #[error("not a Postern keyring file")]
    BadMagic,
    #[error("keyring file has unknown version {0}")]
    UnknownVersion(u8),
    #[error("keyring file has trailing bytes")]
    TrailingBytes,
    #[error("keyring is wrapped to a different instance key")]
    WrongInstanceKey,
    #[error("key generation {0} failed to unwrap (tampered file or wrong instance key)")]
    Tampered(u32),
    #[error("keyring holds no key generation")]
    Empty,
    #[error("keyring already holds {MAX_GENERATIONS} generations that may still be in use")]
    Full,
    #[error("instance public key is malformed")]
    BadInstancePublicKey,
    #[error("keyring lists key generation {0} twice")]
    DuplicateId(u32),
    #[error("keyring file's tag does not verify (generations dropped, reordered or edited)")]
    BadTag,
}

/// The instance's ML-KEM-768 key pair, derived from a 64-byte secret seed.
/// The private key's bytes are zeroed on drop (libcrux's key types do not
/// zeroize themselves, so the pair is kept as its two parts).
pub struct InstanceKey {
    private: MlKem768PrivateKey,
    public: MlKem768PublicKey,
}

impl Zeroize for InstanceKey {
    /// Zeroes the private key (the public key is public).
    fn zeroize(&mut self) {
        let len = self.private.as_slice().len();
        self.private[..len].zeroize();
    }
}

impl Drop for InstanceKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for InstanceKey {}

impl std::fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstanceKey({})", hex8(&self.fingerprint()))
    }
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl InstanceKey {
    /// Derives the key pair (FIPS 203 `ML-KEM.KeyGen_internal(d, z)`).
    pub fn from_seed(seed: &[u8; 64]) -> Self {
        let pair: MlKem768KeyPair = mlkem768::generate_key_pair(*seed);
        let (private, public) = pair.into_parts();
        Self { private, public }
    }

    pub fn public_key(&self) -> InstancePublicKey {
        InstancePublicKey(self.public.clone())
    }

    /// SHA3-256 of the public key: names the instance key without revealing it.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.public_key().fingerprint()
    }

    /// A 32-byte key for `label`, derived from the instance's private key:
    /// for secrets that belong to this instance and need no storage of
    /// their own (the session-row tag key). Distinct labels give
    /// independent keys; the private key cannot be recovered from them.
    pub fn derive_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut hash = Sha3_256::new();
        hash.update(b"postern/instance/derive/v1");
        hash.update((label.len() as u64).to_le_bytes());
        hash.update(label.as_bytes());
        hash.update(self.private.as_slice());
        Zeroizing::new(hash.finalize().into())
    }

    pub(crate) fn decapsulate(&self, ct: &MlKem768Ciphertext) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(mlkem768::decapsulate(&self.private, ct))
    }
}

/// An instance's ML-KEM-768 public key: what generations are wrapped to.
#[derive(Clone)]
pub struct InstancePublicKey(MlKem768PublicKey);

impl std::fmt::Debug for InstancePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstancePublicKey({})", hex8(&self.fingerprint()))
    }
}

impl InstancePublicKey {
    /// Parses and validates (FIPS 203 §7.2 modulus check) a public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyringError> {
        let key =
            MlKem768PublicKey::try_from(bytes).map_err(|_| KeyringError::BadInstancePublicKey)?;
        if !mlkem768::validate_public_key(&key) {
            return Err(KeyringError::BadInstancePublicKey);
        }
        Ok(Self(key))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        Sha3_256::digest(self.0.as_slice()).into()
    }

    pub(crate) fn inner(&self) -> &MlKem768PublicKey {
        &self.0
    }
}

/// One key generation: sealing key, device-binding key, signing key.
pub struct KeyGeneration {
    id: u32,
    created_at: UnixNanos,
    retired_at: Option<UnixNanos>,
    secrets: Zeroizing<[u8; SECRETS_LEN]>,
    sealing: SealingKey,
    binder: DeviceBinder,
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for KeyGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGeneration")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl KeyGeneration {
    fn from_secrets(
        id: u32,
        created_at: UnixNanos,
        retired_at: Option<UnixNanos>,
        secrets: [u8; SECRETS_LEN],
    ) -> Self {
        let secrets = Zeroizing::new(secrets);
        let mut master = [0u8; 32];
        let mut device = [0u8; 32];
        let mut signing_seed = [0u8; 32];
        master.copy_from_slice(&secrets[..32]);
        device.copy_from_slice(&secrets[32..64]);
        signing_seed.copy_from_slice(&secrets[64..]);
        let signing = SigningKey::from_seed(signing_seed);
        let generation = Self {
            id,
            created_at,
            retired_at,
            sealing: SealingKey::new(id, &master),
            binder: DeviceBinder::new(&device),
            verifying: signing.verifying_key(),
            signing,
            secrets,
        };
        master.zeroize();
        device.zeroize();
        signing_seed.zeroize();
        generation
    }

    fn generate<R: RngCore + CryptoRng>(id: u32, now: UnixNanos, rng: &mut R) -> Self {
        let mut secrets = [0u8; SECRETS_LEN];
        rng.fill_bytes(&mut secrets);
        let generation = Self::from_secrets(id, now, None, secrets);
        secrets.zeroize();
        generation
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn created_at(&self) -> UnixNanos {
        self.created_at
    }

    pub fn retired_at(&self) -> Option<UnixNanos> {
        self.retired_at
    }

    pub fn sealing(&self) -> &SealingKey {
        &self.sealing
    }

    pub fn binder(&self) -> &DeviceBinder {
        &self.binder
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// A 32-byte key for another purpose (e.g. the JWT signing key), derived
    /// from this generation's secrets so that it rotates, is wrapped and is
    /// pruned with them. SHA3-256 over a domain-separated label and the
    /// uniformly random secrets is a sound KDF (no length extension);
    /// distinct labels give independent keys.
    pub fn derive_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut hash = Sha3_256::new();
        hash.update(b"postern/keyring/derive/v1");
        hash.update((label.len() as u64).to_le_bytes());
        hash.update(label.as_bytes());
        hash.update(self.secrets.as_slice());
        Zeroizing::new(hash.finalize().into())
    }
}

/// The set of live key generations; the newest unretired one is current.
#[derive(Debug)]
pub struct Keyring {
    /// Ordered by id; the last one is current and never retired.
    generations: Vec<KeyGeneration>,
    /// Counts changes: 1 when generated, +1 at every rotation or prune that
    /// drops something. Never goes down.
    revision: u64,
}

impl Keyring {
    /// A fresh keyring with one generation (id 1).
    pub fn generate<R: RngCore + CryptoRng>(now: UnixNanos, rng: &mut R) -> Self {
        Self {
            generations: vec![KeyGeneration::generate(1, now, rng)],
            revision: 1,
        }
    }

    /// How many changes this keyring has seen. A keyring file read back with
    /// a lower revision than one seen before is an older copy put back.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn current(&self) -> &KeyGeneration {
        // The constructors and `unwrap` guarantee at least one generation.
        &self.generations[self.generations.len() - 1]
    }

    pub fn generation(&self, id: u32) -> Option<&KeyGeneration> {
        self.generations.iter().find(|g| g.id == id)
    }

    pub fn generations(&self) -> &[KeyGeneration] {
        &self.generations
    }

    /// Retires the current generation at `now` and makes a new current one.
    /// Sessions made under retired generations keep verifying until pruned.
    pub fn rotate<R: RngCore + CryptoRng>(
        &mut self,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<u32, KeyringError> {
        if self.generations.len() >= MAX_GENERATIONS {
            return Err(KeyringError::Full);
        }
        let next = self.current().id.checked_add(1).ok_or(KeyringError::Full)?;
        let len = self.generations.len();
        self.generations[len - 1].retired_at = Some(now);
        self.generations
            .push(KeyGeneration::generate(next, now, rng));
        self.revision = self.revision.saturating_add(1);
        Ok(next)
    }

    /// Drops retired generations that no live session can still use: those
    /// retired more than `max_session_lifetime` before `now`. Returns their ids.
    pub fn prune(&mut self, now: UnixNanos, max_session_lifetime: u64) -> Vec<u32> {
        let mut dropped = Vec::new();
        self.generations.retain(|g| match g.retired_at {
            Some(retired) if retired.saturating_add(max_session_lifetime) <= now => {
                dropped.push(g.id);
                false
            }
            _ => true,
        });
        if !dropped.is_empty() {
            self.revision = self.revision.saturating_add(1);
        }
        dropped
    }

    /// Seals a record under the current generation.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        record_key: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SealFailed> {
        self.current().sealing.seal(record_key, plaintext, rng)
    }

    /// Opens a record sealed under any generation this keyring holds.
    pub fn open(&self, record_key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let header = seal::peek_header(sealed)?;
        let generation = self
            .generation(header.key_id)
            .ok_or(OpenError::UnknownKey(header.key_id))?;
        generation.sealing.open(record_key, sealed)
    }

    /// Encrypts every generation to `instance` for storage at rest.
    pub fn wrap<R: RngCore + CryptoRng>(
        &self,
        instance: &InstancePublicKey,
        rng: &mut R,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(FILE_VERSION);
        out.extend_from_slice(&instance.fingerprint());
        out.extend_from_slice(&self.revision.to_le_bytes());
        // At most MAX_GENERATIONS (16) generations, so the count fits a byte.
        out.push(self.generations.len() as u8);
        for g in &self.generations {
            let mut randomness = [0u8; 32];
            rng.fill_bytes(&mut randomness);
            let (ct, shared) = mlkem768::encapsulate(&instance.0, randomness);
            let shared = Zeroizing::new(shared);
            randomness.zeroize();
            let header = generation_header(g.id, g.created_at, g.retired_at);
            let kek = Zeroizing::new(kek(&shared, &header));
            let mut nonce = [0u8; 12];
            rng.fill_bytes(&mut nonce);
            let aad = wrap_aad(FILE_VERSION, &header);
            let cipher = Aes256Gcm::new((&*kek).into());
            // Encrypting 96 bytes cannot exceed AES-GCM's length limit.
            let wrapped = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &g.secrets[..],
                        aad: &aad,
                    },
                )
                .unwrap_or_default();
            out.extend_from_slice(&header);
            out.extend_from_slice(ct.as_slice());
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&wrapped);
        }
        let tag = file_tag(self.current(), &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Reads a wrapped keyring with the instance key. Input may be tampered.
    pub fn unwrap(bytes: &[u8], instance: &InstanceKey) -> Result<Self, KeyringError> {
        let mut r = Reader::new(bytes);
        let t = |_| KeyringError::Truncated;
        if r.take(4).map_err(t)? != MAGIC {
            return Err(KeyringError::BadMagic);
        }
        let version = r.u8().map_err(t)?;
        if version != FILE_VERSION && version != UNTAGGED_FILE_VERSION {
            return Err(KeyringError::UnknownVersion(version));
        }
        let fingerprint: [u8; 32] = r.array().map_err(t)?;
        if fingerprint != instance.fingerprint() {
            return Err(KeyringError::WrongInstanceKey);
        }
        let revision = if version == FILE_VERSION {
            u64::from_le_bytes(r.array().map_err(t)?)
        } else {
            0
        };
        let count = usize::from(r.u8().map_err(t)?);
        if count == 0 {
            return Err(KeyringError::Empty);
        }
        if count > MAX_GENERATIONS {
            return Err(KeyringError::Full);
        }
        let mut generations: Vec<KeyGeneration> = Vec::with_capacity(count);
        for _ in 0..count {
            let header: [u8; 20] = r.array().map_err(t)?;
            let mut hr = Reader::new(&header);
            let id = hr.u32().map_err(t)?;
            let created_at = hr.u64().map_err(t)?;
            let retired_raw = hr.u64().map_err(t)?;
            let ct_bytes: [u8; KEM_CT_LEN] = r.array().map_err(t)?;
            let nonce: [u8; 12] = r.array().map_err(t)?;
            let wrapped = r.take(SECRETS_LEN + 16).map_err(t)?;
            let ct = MlKem768Ciphertext::from(ct_bytes);
            let shared = instance.decapsulate(&ct);
            let kek = Zeroizing::new(kek(&shared, &header));
            let cipher = Aes256Gcm::new((&*kek).into());
            let plain = Zeroizing::new(
                cipher
                    .decrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: wrapped,
                            aad: &wrap_aad(version, &header),
                        },
                    )
                    .map_err(|_| KeyringError::Tampered(id))?,
            );
            let mut secrets = [0u8; SECRETS_LEN];
            secrets.copy_from_slice(&plain);
            if generations.iter().any(|g| g.id >= id) {
                return Err(KeyringError::DuplicateId(id));
            }
            let retired_at = (retired_raw != NOT_RETIRED).then_some(retired_raw);
            generations.push(KeyGeneration::from_secrets(
                id, created_at, retired_at, secrets,
            ));
            secrets.zeroize();
        }
        let keyring = Self {
            generations,
            revision,
        };
        if version == FILE_VERSION {
            let signed_len = bytes.len() - r.remaining();
            let tag = r.take(FILE_TAG_LEN).map_err(t)?;
            let expected = file_tag(keyring.current(), &bytes[..signed_len]);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)) {
                return Err(KeyringError::BadTag);
            }
        }
        if r.remaining() != 0 {
            return Err(KeyringError::TrailingBytes);
        }
        Ok(keyring)
    }
}

fn generation_header(id: u32, created_at: UnixNanos, retired_at: Option<UnixNanos>) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&id.to_le_bytes());
    h[4..12].copy_from_slice(&created_at.to_le_bytes());
    h[12..].copy_from_slice(&retired_at.unwrap_or(NOT_RETIRED).to_le_bytes());
    h
}

/// HMAC-SHA256 over a wrapped keyring's bytes under a key of its newest
/// generation.
fn file_tag(newest: &KeyGeneration, file: &[u8]) -> [u8; FILE_TAG_LEN] {
    use hmac::{Hmac, Mac};
    let key = newest.derive_key("keyring-file-tag");
    // HMAC takes keys of any length, so the fallback never runs.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_slice())
        .unwrap_or_else(|_| <Hmac<sha2::Sha256> as Mac>::new(&Default::default()));
    mac.update(file);
    mac.finalize().into_bytes().into()
}

fn wrap_aad(version: u8, header: &[u8; 20]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(25);
    aad.extend_from_slice(MAGIC);
    aad.push(version);
    aad.extend_from_slice(header);
    aad
}

fn kek(shared: &[u8; 32], header: &[u8; 20]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"postern/keyring/kek/v1");
    h.update(shared);
    h.update(header);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn the_instance_private_key_and_aes_round_keys_are_zeroed() {
        assert_zeroize_on_drop::<InstanceKey>();
        // `aes` built with `zeroize`: the AES-256 inside `Aes256Gcm`.
        assert_zeroize_on_drop::<aes::Aes256>();
        let mut key = InstanceKey::from_seed(&[7u8; 64]);
        let public = key.public_key().0.as_slice().to_vec();
        assert!(key.private.as_slice().iter().any(|&b| b != 0));
        key.zeroize();
        assert!(key.private.as_slice().iter().all(|&b| b == 0));
        assert_eq!(
            key.public_key().0.as_slice().to_vec(),
            public,
            "the public key is left as it was"
        );
    }

    const HOUR: u64 = 3_600 * crate::SECOND;

    fn instance(byte: u8) -> InstanceKey {
        InstanceKey::from_seed(&[byte; 64])
    }

    #[test]
    fn instance_derived_keys_depend_on_the_label_and_the_instance() {
        let a = instance(1);
        assert_eq!(*a.derive_key("row"), *instance(1).derive_key("row"));
        assert_ne!(*a.derive_key("row"), *a.derive_key("rows"));
        assert_ne!(*a.derive_key("row"), *instance(2).derive_key("row"));
    }

    #[test]
    fn a_keyring_round_trips_through_its_wrapped_form() {
        let mut ring = Keyring::generate(10, &mut rand::thread_rng());
        ring.rotate(20, &mut rand::thread_rng()).unwrap();
        let inst = instance(1);
        let wrapped = ring.wrap(&inst.public_key(), &mut rand::thread_rng());
        let back = Keyring::unwrap(&wrapped, &inst).unwrap();
        assert_eq!(back.generations().len(), 2);
        assert_eq!(back.current().id(), 2);
        assert_eq!(back.generation(1).unwrap().retired_at(), Some(20));
        assert_eq!(
            back.current().verifying().as_bytes(),
            ring.current().verifying().as_bytes()
        );
        let sealed = ring.seal(b"k", b"v", &mut rand::thread_rng()).unwrap();
        assert_eq!(back.open(b"k", &sealed).unwrap(), b"v");
    }

    #[test]
    fn derived_keys_are_stable_per_generation_and_label_and_independent_otherwise() {
        let mut ring = Keyring::generate(10, &mut rand::thread_rng());
        let first = ring.current().derive_key("jwt/ed25519");
        assert_eq!(*first, *ring.current().derive_key("jwt/ed25519"));
        assert_ne!(*first, *ring.current().derive_key("jwt/ed25519 "));
        assert_ne!(*first, *ring.current().derive_key("other"));
        ring.rotate(20, &mut rand::thread_rng()).unwrap();
        assert_ne!(*first, *ring.current().derive_key("jwt/ed25519"));
        assert_eq!(
            *first,
            *ring.generation(1).unwrap().derive_key("jwt/ed25519")
        );
        let inst = instance(1);
        let back = Keyring::unwrap(
            &ring.wrap(&inst.public_key(), &mut rand::thread_rng()),
            &inst,
        )
        .unwrap();
        assert_eq!(
            *first,
            *back.generation(1).unwrap().derive_key("jwt/ed25519")
        );
    }

    #[test]
    fn the_wrapped_keyring_does_not_contain_the_secrets() {
        let ring = Keyring::generate(10, &mut rand::thread_rng());
        let wrapped = ring.wrap(&instance(1).public_key(), &mut rand::thread_rng());
        let secrets = &ring.current().secrets[..];
        assert!(!wrapped
            .windows(32)
            .any(|w| w == &secrets[..32] || w == &secrets[32..64] || w == &secrets[64..]));
    }

    #[test]
    fn another_instance_key_cannot_unwrap() {
        let ring = Keyring::generate(10, &mut rand::thread_rng());
        let wrapped = ring.wrap(&instance(1).public_key(), &mut rand::thread_rng());
        assert_eq!(
            Keyring::unwrap(&wrapped, &instance(2)).unwrap_err(),
            KeyringError::WrongInstanceKey
        );
    }

    #[test]
    fn a_tampered_keyring_is_rejected() {
        let ring = Keyring::generate(10, &mut rand::thread_rng());
        let inst = instance(1);
        let wrapped = ring.wrap(&inst.public_key(), &mut rand::thread_rng());
        for i in [0, 4, 5, 40, 42, 60, 1200, wrapped.len() - 1] {
            let mut bad = wrapped.clone();
            bad[i] ^= 1;
            assert!(
                Keyring::unwrap(&bad, &inst).is_err(),
                "flip at {i} accepted"
            );
        }
        assert_eq!(
            Keyring::unwrap(&wrapped[..100], &inst).unwrap_err(),
            KeyringError::Truncated
        );
        let mut long = wrapped.clone();
        long.push(0);
        assert_eq!(
            Keyring::unwrap(&long, &inst).unwrap_err(),
            KeyringError::TrailingBytes
        );
    }

    #[test]
    fn rotation_walks_from_old_keys_to_new_ones_and_prunes_only_after_the_grace() {
        let mut rng = rand::thread_rng();
        let mut ring = Keyring::generate(0, &mut rng);
        let old_sealed = ring.seal(b"s", b"old", &mut rng).unwrap();
        assert_eq!(ring.rotate(HOUR, &mut rng).unwrap(), 2);
        // New records use generation 2; old ones still open under 1.
        let new_sealed = ring.seal(b"s", b"new", &mut rng).unwrap();
        assert_eq!(seal::peek_header(&new_sealed).unwrap().key_id, 2);
        assert_eq!(ring.open(b"s", &old_sealed).unwrap(), b"old");
        // Within the longest session lifetime (8 h) after retirement: kept.
        assert!(ring.prune(HOUR + 8 * HOUR - 1, 8 * HOUR).is_empty());
        assert_eq!(ring.open(b"s", &old_sealed).unwrap(), b"old");
        // Once every session it made has expired: pruned, records refused.
        assert_eq!(ring.prune(HOUR + 8 * HOUR, 8 * HOUR), vec![1]);
        assert_eq!(
            ring.open(b"s", &old_sealed).unwrap_err(),
            OpenError::UnknownKey(1)
        );
        assert_eq!(ring.open(b"s", &new_sealed).unwrap(), b"new");
        assert_eq!(ring.current().id(), 2);
    }

    #[test]
    fn the_revision_counts_every_change_and_travels_with_the_file() {
        let mut rng = rand::thread_rng();
        let inst = instance(1);
        let mut ring = Keyring::generate(0, &mut rng);
        assert_eq!(ring.revision(), 1);
        ring.rotate(HOUR, &mut rng).unwrap();
        assert_eq!(ring.revision(), 2);
        assert!(ring.prune(HOUR, 8 * HOUR).is_empty());
        assert_eq!(
            ring.revision(),
            2,
            "a prune that drops nothing is no change"
        );
        assert_eq!(ring.prune(9 * HOUR, 8 * HOUR), vec![1]);
        assert_eq!(ring.revision(), 3);
        let back = Keyring::unwrap(&ring.wrap(&inst.public_key(), &mut rng), &inst).unwrap();
        assert_eq!(back.revision(), 3);
    }

    /// The byte range of generation `i` in a version 2 file.
    fn generation_block(i: usize) -> std::ops::Range<usize> {
        let block = 20 + KEM_CT_LEN + 12 + SECRETS_LEN + 16;
        let start = 4 + 1 + 32 + 8 + 1 + i * block;
        start..start + block
    }

    #[test]
    fn a_keyring_file_with_a_generation_dropped_or_its_revision_edited_is_refused() {
        let mut rng = rand::thread_rng();
        let inst = instance(1);
        let mut ring = Keyring::generate(0, &mut rng);
        ring.rotate(HOUR, &mut rng).unwrap();
        ring.rotate(2 * HOUR, &mut rng).unwrap();
        let wrapped = ring.wrap(&inst.public_key(), &mut rng);
        // Each generation still opens on its own (its AEAD is intact), so
        // only the file tag can tell that one is missing.
        for dropped in 0..3 {
            let mut bad = wrapped.clone();
            bad.drain(generation_block(dropped));
            bad[45] = 2;
            assert_eq!(
                Keyring::unwrap(&bad, &inst).unwrap_err(),
                KeyringError::BadTag,
                "generation {dropped} dropped"
            );
        }
        let mut bumped = wrapped.clone();
        bumped[37] = bumped[37].wrapping_add(1);
        assert_eq!(
            Keyring::unwrap(&bumped, &inst).unwrap_err(),
            KeyringError::BadTag
        );
    }

    /// A keyring in the first file format (no revision, no tag), as
    /// releases before version 2 wrote it.
    fn wrap_v1(ring: &Keyring, instance: &InstancePublicKey) -> Vec<u8> {
        let mut rng = rand::thread_rng();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(UNTAGGED_FILE_VERSION);
        out.extend_from_slice(&instance.fingerprint());
        out.push(ring.generations.len() as u8);
        for g in &ring.generations {
            let mut randomness = [0u8; 32];
            rng.fill_bytes(&mut randomness);
            let (ct, shared) = mlkem768::encapsulate(&instance.0, randomness);
            let header = generation_header(g.id, g.created_at, g.retired_at);
            let kek = kek(&shared, &header);
            let nonce = [7u8; 12];
            let wrapped = Aes256Gcm::new((&kek).into())
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &g.secrets[..],
                        aad: &wrap_aad(UNTAGGED_FILE_VERSION, &header),
                    },
                )
                .unwrap();
            out.extend_from_slice(&header);
            out.extend_from_slice(ct.as_slice());
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&wrapped);
        }
        out
    }

    #[test]
    fn a_first_format_keyring_still_opens_as_revision_zero() {
        let inst = instance(1);
        let ring = Keyring::generate(0, &mut rand::thread_rng());
        let back = Keyring::unwrap(&wrap_v1(&ring, &inst.public_key()), &inst).unwrap();
        assert_eq!(back.revision(), 0);
        assert_eq!(
            *back.current().derive_key("x"),
            *ring.current().derive_key("x")
        );
    }

    #[test]
    fn a_keyring_cannot_grow_without_bound() {
        let mut rng = rand::thread_rng();
        let mut ring = Keyring::generate(0, &mut rng);
        for i in 1..MAX_GENERATIONS {
            ring.rotate(i as u64, &mut rng).unwrap();
        }
        assert_eq!(ring.rotate(99, &mut rng).unwrap_err(), KeyringError::Full);
    }

    #[test]
    fn instance_public_keys_are_validated() {
        let inst = instance(3);
        let pk = InstancePublicKey::from_bytes(inst.public_key().as_bytes()).unwrap();
        assert_eq!(pk.fingerprint(), inst.fingerprint());
        assert_eq!(
            InstancePublicKey::from_bytes(&[0u8; 10]).unwrap_err(),
            KeyringError::BadInstancePublicKey
        );
        assert_eq!(
            InstancePublicKey::from_bytes(&[0xFFu8; INSTANCE_PUBLIC_KEY_LEN]).unwrap_err(),
            KeyringError::BadInstancePublicKey
        );
    }
}
