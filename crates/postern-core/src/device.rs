//! Device binding: a keyed MAC over a canonical device fingerprint.
//!
//! A fingerprint is a set of `(name, value)` components (user agent,
//! platform, a client-held device key id, …). [`Fingerprint::canonical`]
//! normalises it — names lower-cased and trimmed, values trimmed, sorted by
//! name, each field length-prefixed — so that the same device always yields
//! the same bytes and no two different component sets collide by
//! concatenation.
//!
//! The binding is `HMAC-SHA256(device_key, canonical)`. The seed system uses
//! HMAC-SHA3-256; on this hardware SHA-256 with SHA-NI is about 3.5 times
//! faster (see `benches/resume.rs` and BENCHMARKS.md), and both are PRFs for
//! this purpose. The keyed state is computed once per key and cloned per
//! request, so a binding costs two compression passes over a short input.
//! Comparison is constant-time ([`DeviceBinder::verify`]).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Most components a fingerprint may carry.
pub const MAX_COMPONENTS: usize = 32;
/// Longest name or value of a component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 512;

/// Why a fingerprint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("a device fingerprint needs at least one component")]
    Empty,
    #[error("a device fingerprint may have at most {MAX_COMPONENTS} components")]
    TooManyComponents,
    #[error("a fingerprint component is longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
    #[error("a fingerprint component name is empty")]
    EmptyName,
    #[error("a fingerprint component name appears twice")]
    DuplicateName,
}

/// A canonicalised device fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    canonical: Vec<u8>,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({} bytes)", self.canonical.len())
    }
}

impl Fingerprint {
    /// Canonicalises components. Attacker-controlled input: bounded, never panics.
    pub fn canonical<'a, I>(components: I) -> Result<Self, FingerprintError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut parts: Vec<(String, &str)> = Vec::new();
        for (name, value) in components {
            if parts.len() == MAX_COMPONENTS {
                return Err(FingerprintError::TooManyComponents);
            }
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if name.is_empty() {
                return Err(FingerprintError::EmptyName);
            }
            if name.len() > MAX_COMPONENT_LEN || value.len() > MAX_COMPONENT_LEN {
                return Err(FingerprintError::ComponentTooLong);
            }
            parts.push((name, value));
        }
        if parts.is_empty() {
            return Err(FingerprintError::Empty);
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        if parts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(FingerprintError::DuplicateName);
        }
        let mut canonical =
            Vec::with_capacity(parts.iter().map(|p| p.0.len() + p.1.len() + 4).sum());
        for (name, value) in &parts {
            // Both lengths are bounded by MAX_COMPONENT_LEN, so they fit in u16.
            canonical.extend_from_slice(&(name.len() as u16).to_le_bytes());
            canonical.extend_from_slice(name.as_bytes());
            canonical.extend_from_slice(&(value.len() as u16).to_le_bytes());
            canonical.extend_from_slice(value.as_bytes());
        }
        Ok(Self { canonical })
    }

    /// A fingerprint made of one opaque device string (what the CLI's
    /// `--device` takes), as the single component `id`.
    ///
    /// Every check with a bearer token builds one from `X-Postern-Device`,
    /// so this writes the canonical bytes of `[("id", id)]` directly, in one
    /// allocation, instead of going through [`Fingerprint::canonical`]'s
    /// general path (a vector of parts and a lower-cased name); the two
    /// agree on every input (`single_is_the_canonical_id_component`).
    pub fn single(id: &str) -> Result<Self, FingerprintError> {
        const NAME: &[u8] = b"id";
        let value = id.trim();
        if value.is_empty() {
            return Err(FingerprintError::Empty);
        }
        if value.len() > MAX_COMPONENT_LEN {
            return Err(FingerprintError::ComponentTooLong);
        }
        let mut canonical = Vec::with_capacity(NAME.len() + value.len() + 4);
        // Both lengths are bounded by MAX_COMPONENT_LEN, so they fit in u16.
        canonical.extend_from_slice(&(NAME.len() as u16).to_le_bytes());
        canonical.extend_from_slice(NAME);
        canonical.extend_from_slice(&(value.len() as u16).to_le_bytes());
        canonical.extend_from_slice(value.as_bytes());
        Ok(Self { canonical })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// `SHA-256(canonical)`: the device hash a client binds its identity
    /// proof to. Unkeyed, so client and server compute the same value.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.canonical).into()
    }
}

/// Device-binding MAC over a canonical fingerprint.
pub type DeviceMac = [u8; 32];

/// Computes and checks device-binding MACs under one server key.
///
/// The keyed HMAC state (SHA-256 after the key's inner and outer pads: as
/// good as the key) is overwritten on drop with a state keyed by zeroes.
/// `hmac` 0.12 and `sha2` 0.10 offer no zeroize, and this crate forbids
/// `unsafe`, so the overwrite is an ordinary assignment kept alive with
/// `black_box` (best effort: the compiler is asked not to drop it as a dead
/// store, not forced), and the per-call copies each MAC makes on the stack
/// are not scrubbed.
#[derive(Clone)]
pub struct DeviceBinder {
    keyed: Hmac<Sha256>,
}

impl Drop for DeviceBinder {
    fn drop(&mut self) {
        self.keyed = unkeyed();
        std::hint::black_box(&mut self.keyed);
    }
}

/// An HMAC state keyed by 32 zero bytes: what a dropped binder leaves.
fn unkeyed() -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new(&Default::default())
}

impl std::fmt::Debug for DeviceBinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceBinder(..)")
    }
}

impl DeviceBinder {
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; the fallback
        // keeps the function total without an unwrap.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unkeyed());
        Self { keyed }
    }

    pub fn bind(&self, fingerprint: &Fingerprint) -> DeviceMac {
        self.bind_bytes(fingerprint.as_bytes())
    }

    /// The MAC of already-canonical bytes.
    pub fn bind_bytes(&self, canonical: &[u8]) -> DeviceMac {
        let mut mac = self.keyed.clone();
        mac.update(canonical);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of a presented fingerprint against a stored MAC.
    pub fn verify(&self, fingerprint: &Fingerprint, expected: &DeviceMac) -> bool {
        crate::ct::eq32(&self.bind(fingerprint), expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_is_the_canonical_id_component() {
        let long = "x".repeat(MAX_COMPONENT_LEN);
        let too_long = "x".repeat(MAX_COMPONENT_LEN + 1);
        let padded_long = format!("  {long}\t");
        for id in [
            "laptop-1",
            " laptop-1 ",
            "\tA B\n",
            "é",
            "",
            "   ",
            long.as_str(),
            too_long.as_str(),
            padded_long.as_str(),
        ] {
            let general = if id.trim().is_empty() {
                Err(FingerprintError::Empty)
            } else {
                Fingerprint::canonical([("id", id)])
            };
            assert_eq!(Fingerprint::single(id), general, "{id:?}");
        }
    }

    #[test]
    fn a_dropped_binder_overwrites_its_keyed_state() {
        // Without the `Drop` above, dropping the HMAC state would do nothing.
        assert!(std::mem::needs_drop::<DeviceBinder>());
        let fingerprint = Fingerprint::canonical([("ua", "x")]).unwrap();
        let mut binder = DeviceBinder::new(&[9u8; 32]);
        let keyed = binder.bind(&fingerprint);
        binder.keyed = unkeyed();
        assert_ne!(binder.bind(&fingerprint), keyed);
        assert_eq!(
            binder.bind(&fingerprint),
            DeviceBinder::new(&[0u8; 32]).bind(&fingerprint),
            "what drop leaves is the zero-keyed state"
        );
    }

    #[test]
    fn canonicalisation_ignores_order_case_and_padding() {
        let a = Fingerprint::canonical([("UA", " firefox "), ("platform", "linux")]).unwrap();
        let b = Fingerprint::canonical([(" platform", "linux"), ("ua", "firefox")]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn concatenation_cannot_make_two_fingerprints_collide() {
        let a = Fingerprint::canonical([("ab", "c")]).unwrap();
        let b = Fingerprint::canonical([("a", "bc")]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_fingerprints_are_refused_with_a_reason() {
        assert_eq!(
            Fingerprint::canonical([]).unwrap_err(),
            FingerprintError::Empty
        );
        assert_eq!(
            Fingerprint::canonical([(" ", "x")]).unwrap_err(),
            FingerprintError::EmptyName
        );
        assert_eq!(
            Fingerprint::canonical([("a", "x"), ("A", "y")]).unwrap_err(),
            FingerprintError::DuplicateName
        );
        let long = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(
            Fingerprint::canonical([("a", long.as_str())]).unwrap_err(),
            FingerprintError::ComponentTooLong
        );
        let names: Vec<String> = (0..=MAX_COMPONENTS).map(|i| format!("c{i}")).collect();
        assert_eq!(
            Fingerprint::canonical(names.iter().map(|n| (n.as_str(), "v"))).unwrap_err(),
            FingerprintError::TooManyComponents
        );
    }

    #[test]
    fn the_binding_depends_on_key_and_device() {
        let fp = Fingerprint::single("laptop-1").unwrap();
        let other = Fingerprint::single("phone-7").unwrap();
        let binder = DeviceBinder::new(&[7u8; 32]);
        let mac = binder.bind(&fp);
        assert!(binder.verify(&fp, &mac));
        assert!(!binder.verify(&other, &mac));
        assert!(!DeviceBinder::new(&[8u8; 32]).verify(&fp, &mac));
    }

    #[test]
    fn the_binding_is_standard_hmac_sha256() {
        // RFC 4231 test case 2 ("Jefe"), checked through the raw-bytes path
        // with a key padded the way HMAC pads short keys.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = DeviceBinder::new(&key).bind_bytes(b"what do ya want for nothing?");
        let expected = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(mac, expected);
    }
}
