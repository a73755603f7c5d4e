//! Authentication of the parts of a stored row that change after it is
//! written.
//!
//! A session row at rest holds a sealed, signed context (which nobody
//! without the keyring can forge) beside fields the store updates in place:
//! when the session was revoked and when it was last seen. Those fields are
//! outside the seal, so on their own a disk writer could clear a revocation
//! and bring a logged-out session back. A [`RowKey`] tags every row with
//! HMAC-SHA256 over all of its fields and its sealed bytes; a row whose tag
//! does not verify is refused as tampered.
//!
//! What this does not stop: putting back an older copy of the whole row (or
//! of the whole database) whose tag was valid when it was written. Rollback
//! of the data directory is outside what a tag can detect; see THREATS.md.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of a row tag.
pub const ROW_TAG_LEN: usize = 32;

/// The key that tags stored rows. Redacted `Debug`, zeroed on drop.
pub struct RowKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowKey(..)")
    }
}

impl RowKey {
    pub fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length, so the fallback never runs.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.as_slice())
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
        mac.update(b"postern/row-tag/v1");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    /// The tag of a row made of `parts` (each length-prefixed, in order).
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; ROW_TAG_LEN] {
        self.mac(parts).finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    /// Attacker-controlled input: never panics.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> RowKey {
        RowKey::from_bytes(Zeroizing::new([byte; 32]))
    }

    #[test]
    fn a_tag_verifies_for_exactly_the_parts_it_was_made_over() {
        let k = key(7);
        let tag = k.tag(&[b"id", b"revoked=0", b"sealed"]);
        assert!(k.verify(&[b"id", b"revoked=0", b"sealed"], &tag));
        assert!(!k.verify(&[b"id", b"revoked=1", b"sealed"], &tag));
        // Length prefixes: moving bytes between parts changes the tag.
        assert!(!k.verify(&[b"idr", b"evoked=0", b"sealed"], &tag));
        assert!(!key(8).verify(&[b"id", b"revoked=0", b"sealed"], &tag));
        assert!(!k.verify(&[b"id", b"revoked=0", b"sealed"], &tag[..31]));
        assert!(!k.verify(&[b"id", b"revoked=0", b"sealed"], &[]));
    }

    #[test]
    fn a_row_key_does_not_print_its_bytes() {
        assert_eq!(format!("{:?}", key(0xAB)), "RowKey(..)");
    }
}
