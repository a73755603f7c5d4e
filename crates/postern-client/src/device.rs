//! Device fingerprints as the API carries them.
//!
//! The API accepts either one opaque device string (`"device": "laptop-1"`,
//! what the CLI's `--device` takes) or an object of named components
//! (`"device": {"ua": "...", "platform": "..."}`). Both canonicalise through
//! `postern_core::device::Fingerprint`, which the server also uses, so the
//! device hash a proof is bound to is the one the server recomputes.

use std::collections::BTreeMap;

use postern_core::device::{Fingerprint, FingerprintError};
use serde::{Deserialize, Serialize};

/// A device as sent in a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeviceInput {
    Id(String),
    Components(BTreeMap<String, String>),
}

impl DeviceInput {
    pub fn fingerprint(&self) -> Result<Fingerprint, FingerprintError> {
        match self {
            DeviceInput::Id(id) => Fingerprint::single(id),
            DeviceInput::Components(map) => {
                Fingerprint::canonical(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_shapes_parse_and_canonicalise() {
        let id: DeviceInput = serde_json::from_str(r#""laptop""#).unwrap();
        assert_eq!(
            id.fingerprint().unwrap(),
            Fingerprint::single("laptop").unwrap()
        );
        let obj: DeviceInput = serde_json::from_str(r#"{"platform":"linux","UA":"ff"}"#).unwrap();
        assert_eq!(
            obj.fingerprint().unwrap(),
            Fingerprint::canonical([("ua", "ff"), ("platform", "linux")]).unwrap()
        );
        assert!(serde_json::from_str::<DeviceInput>("42").is_err());
        assert_eq!(
            DeviceInput::Id("  ".into()).fingerprint(),
            Err(FingerprintError::Empty)
        );
    }
}
