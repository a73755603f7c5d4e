//! Following the upstream's signing keys.
//!
//! When an identity provider rotates a signing key out of its JWKS, tokens
//! signed with it should stop being served from the cache at once, not when
//! their entries expire. [`watch_jwks`] polls the JWKS document, and for
//! every `kid` that disappeared calls [`Gate::purge_key_id`], which drops the
//! entries of all tokens whose JWT header named that `kid`. The next request
//! with such a token asks the upstream again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use crate::gate::Gate;
use crate::tls::TrustRoots;

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The key ids of a JWKS document (RFC 7517 §5), ignoring keys without one.
pub fn key_ids(document: &[u8]) -> Option<BTreeSet<String>> {
    let jwks: Jwks = serde_json::from_slice(document).ok()?;
    Some(jwks.keys.into_iter().filter_map(|k| k.kid).collect())
}

/// Key ids present before and absent now.
pub fn removed<'a>(
    before: &'a BTreeSet<String>,
    now: &'a BTreeSet<String>,
) -> impl Iterator<Item = &'a String> {
    before.difference(now)
}

/// Polls `url` every `interval` until `stop` turns true, purging entries
/// of rotated-out keys. Fetch errors are logged and retried; they purge
/// nothing (an unreachable JWKS is not a rotation). An `https://` URL is
/// checked against the built-in roots and `roots` (a private CA).
pub async fn watch_jwks(
    gate: Arc<Gate>,
    url: String,
    interval: Duration,
    roots: TrustRoots,
    mut stop: watch::Receiver<bool>,
) {
    let http = match roots
        .http_builder(reqwest::Client::builder())
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the JWKS client; key rotation will not purge the cache");
            return;
        }
    };
    let mut known: Option<BTreeSet<String>> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        let fetched = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.ok().and_then(|b| key_ids(&b)),
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), "JWKS fetch failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed");
                None
            }
        };
        let Some(current) = fetched else { continue };
        if let Some(before) = &known {
            for kid in removed(before, &current) {
                let purged = gate.purge_key_id(kid);
                tracing::info!(
                    kid,
                    purged,
                    "upstream signing key rotated out; cached tokens purged"
                );
            }
        }
        known = Some(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_read_and_removals_found() {
        let a =
            key_ids(br#"{"keys":[{"kid":"k1","kty":"OKP"},{"kid":"k2"},{"kty":"RSA"}]}"#).unwrap();
        assert_eq!(a, BTreeSet::from(["k1".to_string(), "k2".to_string()]));
        let b = key_ids(br#"{"keys":[{"kid":"k2"},{"kid":"k3"}]}"#).unwrap();
        assert_eq!(removed(&a, &b).collect::<Vec<_>>(), vec!["k1"]);
        assert!(key_ids(b"not json").is_none());
        assert!(key_ids(br#"{"nokeys":[]}"#).is_none());
    }
}
