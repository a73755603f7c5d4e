//! The session cookie: writing it on login, clearing it on logout, and
//! finding it in a request.
//!
//! In cookie mode the token travels only in this cookie: `HttpOnly` keeps
//! it from page scripts, `Secure` off plain-text connections, `SameSite`
//! out of most cross-site requests, and a `__Host-` name from being set or
//! shadowed by a subdomain. The token is never logged; a `Set-Cookie`
//! value is built here and goes nowhere but the response header.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};

use crate::config::CookieConfig;

/// The configured session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    config: CookieConfig,
}

impl SessionCookie {
    pub fn new(config: CookieConfig) -> Self {
        Self { config }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `Set-Cookie` for `token`, living `remaining` (the session's lifetime)
    /// unless a `max_age` is configured.
    pub fn issue(&self, token: &str, remaining: Duration) -> Option<HeaderValue> {
        let max_age = self.config.max_age.unwrap_or(remaining).as_secs();
        HeaderValue::from_str(&self.header(token, max_age)).ok()
    }

    /// `Set-Cookie` that makes the browser drop the cookie now.
    pub fn clear(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.header("", 0)).ok()
    }

    fn header(&self, value: &str, max_age: u64) -> String {
        let c = &self.config;
        let mut out = format!("{}={value}; Path={}; Max-Age={max_age}", c.name, c.path);
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

    /// The cookie's value in a request, if present and non-empty. With
    /// several cookies of this name, the first wins (browsers send the
    /// most specific path first).
    pub fn read<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.config.name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }
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
}
