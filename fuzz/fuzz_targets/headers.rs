//! Cookie and device-header parsing (`postern_server::cookie`: the
//! session cookie and the device cookie; the
//! `X-Postern-Device` header and the JSON `device` field through
//! `postern_core::device::Fingerprint`). Input: lines; the first is the
//! device header, the rest are `Cookie` headers.
#![no_main]

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use postern_client::device::DeviceInput;
use postern_core::device::{Fingerprint, MAX_COMPONENTS};
use postern_server::config::CookieConfig;
use postern_server::cookie::SessionCookie;

fuzz_target!(|data: &[u8]| {
    let cookie = SessionCookie::new(CookieConfig::default());
    let mut lines = data.split(|b| *b == b'\n');
    let device = lines.next().unwrap_or_default();

    // X-Postern-Device: visible ASCII, then one opaque component.
    if let Ok(value) = HeaderValue::from_bytes(device) {
        if let Ok(text) = value.to_str() {
            match Fingerprint::single(text) {
                Ok(fingerprint) => {
                    assert!(!text.trim().is_empty());
                    assert_eq!(Fingerprint::canonical([("ID", text)]), Ok(fingerprint));
                }
                Err(error) => {
                    let _ = error.to_string();
                }
            }
        }
    }

    // The JSON form: an id string or a map of components. Components in
    // any order canonicalise to the same bytes.
    if let Ok(input) = serde_json::from_slice::<DeviceInput>(device) {
        let _ = input.fingerprint();
    }
    let components: Vec<(&str, &str)> = device
        .split(|b| *b == 0)
        .filter_map(|part| std::str::from_utf8(part).ok())
        .filter_map(|part| part.split_once('='))
        .take(MAX_COMPONENTS + 2)
        .collect();
    let forwards = Fingerprint::canonical(components.iter().copied());
    let backwards = Fingerprint::canonical(components.iter().rev().copied());
    assert_eq!(forwards.is_ok(), backwards.is_ok());
    if let (Ok(a), Ok(b)) = (&forwards, &backwards) {
        assert_eq!(a.as_bytes(), b.as_bytes());
    }

    // Cookie headers: the value found is non-empty, trimmed, and was sent.
    let mut headers = HeaderMap::new();
    let mut sent = Vec::new();
    for line in lines.take(8) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            sent.push(line);
            headers.append(header::COOKIE, value);
        }
    }
    if let Some(found) = cookie.read(&headers) {
        assert!(!found.is_empty());
        assert_eq!(found, found.trim());
        assert!(!found.contains(';'));
        assert!(sent
            .iter()
            .any(|line| line.windows(found.len()).any(|w| w == found.as_bytes())));
    }

    // The device cookie: only a minted secret's exact form is read, and a
    // secret read always stands for a device.
    if let Some(secret) = cookie.read_device(&headers) {
        assert!(secret.fingerprint().is_some());
    }

    // Round trip: what `issue` sets, a browser sends back as `name=value`,
    // and `read` finds it again.
    if let Ok(token) = std::str::from_utf8(device) {
        if let Some(set) = cookie.issue(token, Duration::from_secs(60)) {
            let pair = set.as_bytes().split(|b| *b == b';').next().unwrap();
            let mut back = HeaderMap::new();
            back.append(header::COOKIE, HeaderValue::from_bytes(pair).unwrap());
            // `read` takes visible ASCII only (`HeaderValue::to_str`).
            let visible = token.bytes().all(|b| b == b'\t' || (32..127).contains(&b));
            let token_ok =
                visible && !token.is_empty() && token == token.trim() && !token.contains(';');
            assert_eq!(cookie.read(&back) == Some(token), token_ok, "{token:?}");
        }
    }
});
