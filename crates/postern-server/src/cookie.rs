//! The session cookie and its device cookie: writing them on login,
//! clearing them on logout, and finding them in a request.
//!
//! In cookie mode the token travels only in the session cookie: `HttpOnly`
//! keeps it from page scripts, `Secure` off plain-text connections,
//! `SameSite` out of most cross-site requests, and a `__Host-` name from
//! being set or shadowed by a subdomain. The token is never logged; a
//! `Set-Cookie` value is built here and goes nowhere but the response
//! header.
//!
//! The session is bound to a second cookie, the *device cookie*
//! (`<name>-device`, e.g. `__Host-postern-device`, with the same
//! attributes and lifetime): a random [`DeviceSecret`] of 256 bits from the
//! OS, minted with each login, whose device-binding MAC the session holds
//! as it holds a bearer client's device string. The browser sends it on
//! every request by itself, page navigations included, so a session opens
//! protected pages without script; a session cookie presented without it
//! (copied out of a log line, say) is `device_mismatch`. The two cookies
//! travel together in the `Cookie` header, so this stops a leak of the
//! session value alone, not a theft of the browser's cookies.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::device::Fingerprint;
use rand::{CryptoRng, RngCore};

use crate::config::CookieConfig;

/// What the device cookie's name adds to the session cookie's: the
/// `__Host-` or `__Secure-` prefix, and so its guarantees, carry over.
pub const DEVICE_SUFFIX: &str = "-device";

/// Random bytes in a device secret: 256 bits, as in a session token.
const DEVICE_SECRET_BYTES: usize = 32;
/// Its length in unpadded base64url.
const DEVICE_SECRET_LEN: usize = 43;

/// A browser's device secret: what the device cookie holds and the session
/// is bound to, as the device id `Fingerprint::single(secret)` (so an API
/// client holding the session and the secret may also present them as
/// `Authorization: Bearer` and `X-Postern-Device`). Never logged: `Debug`
/// is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret(String);

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSecret(..)")
    }
}

impl DeviceSecret {
    /// A fresh secret from `rng` (the server passes `OsRng`).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; DEVICE_SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret as a request presents it; anything but the exact form a
    /// secret is minted in (43 base64url characters) is no secret.
    /// Attacker-controlled input: never panics.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = text.len() == DEVICE_SECRET_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(text.to_string()))
    }

    /// The device this secret stands for, as the session binds it.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Fingerprint::single(&self.0).ok()
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// The configured session cookie, and the device cookie beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    config: CookieConfig,
    device_name: String,
}

impl SessionCookie {
    pub fn new(config: CookieConfig) -> Self {
        let device_name = format!("{}{DEVICE_SUFFIX}", config.name);
        Self {
            config,
            device_name,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The device cookie's name: the session cookie's plus [`DEVICE_SUFFIX`].
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// `Set-Cookie` for `token`, living `remaining` (the session's lifetime)
    /// unless a `max_age` is configured.
    pub fn issue(&self, token: &str, remaining: Duration) -> Option<HeaderValue> {
        let max_age = self.max_age(remaining);
        HeaderValue::from_str(&self.header(&self.config.name, token, max_age)).ok()
    }

    /// `Set-Cookie` for the device cookie holding `secret`, with the
    /// session cookie's attributes and lifetime.
    pub fn issue_device(&self, secret: &DeviceSecret, remaining: Duration) -> Option<HeaderValue> {
        let max_age = self.max_age(remaining);
        HeaderValue::from_str(&self.header(&self.device_name, secret.expose(), max_age)).ok()
    }

    /// `Set-Cookie` that makes the browser drop the session cookie now.
    pub fn clear(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.header(&self.config.name, "", 0)).ok()
    }

    /// `Set-Cookie` that makes the browser drop the device cookie now.
    pub fn clear_device(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.header(&self.device_name, "", 0)).ok()
    }

    fn max_age(&self, remaining: Duration) -> u64 {
        self.config.max_age.unwrap_or(remaining).as_secs()
    }

    fn header(&self, name: &str, value: &str, max_age: u64) -> String {
        let c = &self.config;
        let mut out = format!("{name}={value}; Path={}; Max-Age={max_age}", c.path);
        if let Some(domain) = &c.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if c.http_only {
            out.push_str("; HttpOnly");
        }
        if c.secure {
            out.push_str("; Secure");
        }
        out.push_str("; SameSite=");
        out.push_str(c.same_site.as_str());
        out
    }

    /// The session cookie's value in a request, if present and non-empty.
    /// With several cookies of this name, the first wins (browsers send
    /// the most specific path first).
    pub fn read<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        read_named(headers, &self.config.name)
    }

    /// The device secret in a request's device cookie, if present and
    /// well formed (the first of that name, as for [`Self::read`]).
    pub fn read_device(&self, headers: &HeaderMap) -> Option<DeviceSecret> {
        read_named(headers, &self.device_name).and_then(DeviceSecret::parse)
    }
}

/// The value of the first non-empty cookie called `name` in `headers`.
fn read_named<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SameSite;

    #[test]
    fn the_default_cookie_carries_the_owasp_attributes() {
        let cookie = SessionCookie::new(CookieConfig::default());
        let set = cookie.issue("pst1.abc", Duration::from_secs(3600)).unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            "__Host-postern=pst1.abc; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            cookie.clear().unwrap().to_str().unwrap(),
            "__Host-postern=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn configured_attributes_and_max_age_are_written() {
        let cookie = SessionCookie::new(CookieConfig {
            name: "sid".into(),
            secure: false,
            http_only: false,
            same_site: SameSite::Strict,
            path: "/app".into(),
            domain: Some("example.com".into()),
            max_age: Some(Duration::from_secs(60)),
        });
        assert_eq!(
            cookie
                .issue("t", Duration::from_secs(3600))
                .unwrap()
                .to_str()
                .unwrap(),
            "sid=t; Path=/app; Max-Age=60; Domain=example.com; SameSite=Strict"
        );
    }

    #[test]
    fn the_cookie_is_found_among_others_and_empty_values_are_absent() {
        let cookie = SessionCookie::new(CookieConfig::default());
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(cookie.read(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=y; __Host-postern=pst1.tok ;z=1"),
        );
        assert_eq!(cookie.read(&headers), Some("pst1.tok"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("__Host-postern="));
        assert_eq!(cookie.read(&empty), None);
    }

    #[test]
    fn the_device_cookie_has_the_session_cookies_attributes_and_lifetime() {
        let cookie = SessionCookie::new(CookieConfig::default());
        assert_eq!(cookie.device_name(), "__Host-postern-device");
        let secret = DeviceSecret::generate(&mut rand::rngs::OsRng);
        let set = cookie
            .issue_device(&secret, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            format!(
                "__Host-postern-device={}; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax",
                secret.expose()
            )
        );
        assert_eq!(
            cookie.clear_device().unwrap().to_str().unwrap(),
            "__Host-postern-device=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );
        let configured = SessionCookie::new(CookieConfig {
            name: "__Secure-sid".into(),
            same_site: SameSite::Strict,
            max_age: Some(Duration::from_secs(60)),
            ..CookieConfig::default()
        });
        assert_eq!(
            configured
                .issue_device(&secret, Duration::from_secs(3600))
                .unwrap()
                .to_str()
                .unwrap(),
            format!(
                "__Secure-sid-device={}; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict",
                secret.expose()
            )
        );
    }

    #[test]
    fn device_secrets_are_256_random_bits_and_only_that_form_is_read_back() {
        let a = DeviceSecret::generate(&mut rand::rngs::OsRng);
        let b = DeviceSecret::generate(&mut rand::rngs::OsRng);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_eq!(DeviceSecret::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.fingerprint(), Fingerprint::single(a.expose()).ok());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(!format!("{a:?}").contains(a.expose()));
        for bad in [
            "",
            "laptop",
            &a.expose()[1..],
            &format!("{}A", a.expose()),
            &format!("{}=", &a.expose()[1..]),
            &format!("{} ", &a.expose()[1..]),
        ] {
            assert_eq!(DeviceSecret::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_device_cookie_is_read_by_its_own_name_only() {
        let cookie = SessionCookie::new(CookieConfig::default());
        let secret = DeviceSecret::generate(&mut rand::rngs::OsRng);
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("__Host-postern={}", secret.expose())).unwrap(),
        );
        assert_eq!(cookie.read_device(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "a=1; __Host-postern-device={} ; b=2",
                secret.expose()
            ))
            .unwrap(),
        );
        assert_eq!(cookie.read_device(&headers), Some(secret));
        let mut junk = HeaderMap::new();
        junk.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-postern-device=laptop"),
        );
        assert_eq!(cookie.read_device(&junk), None);
    }
}
