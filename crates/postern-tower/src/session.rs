//! What an upstream said about a token, and what a route requires of it.
//!
//! A token names a **subject** (a user: `sub`, `username`, the Auth1 user
//! id), a **client** (RFC 7662 `client_id`), or both. A client-credentials
//! token names only its client: it is valid, and a route that needs a user
//! says so with [`Requirement::with_subject`].
//!
//! A [`Validated`] session also carries its identity already rendered for
//! a forward-auth answer ([`Rendered`]): the header values and the JSON
//! body are built once, when the gate admits the session, so answering a
//! cache hit copies reference-counted bytes and allocates nothing for them.

use axum::body::Bytes;
use axum::http::HeaderValue;

/// A validated token, as cached. Holds no token material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The user (`sub`, or `username`, or the Auth1 user id); `None` for a
    /// token that names only its client (client credentials).
    pub subject: Option<String>,
    /// The OAuth client the token was issued to (RFC 7662 `client_id`).
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    /// When the token stops being valid (ns since the Unix epoch).
    pub expires_at: u64,
    /// The upstream's session id, if it has one.
    pub session_id: Option<String>,
    /// The JWT `kid` the token was signed with, if it is a JWT.
    pub key_id: Option<String>,
    /// The identity rendered for forward-auth answers; filled by
    /// [`Validated::render`] when the gate admits the session.
    pub(crate) rendered: Rendered,
}

/// A session's identity as a forward-auth answer carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The subject as a header value (`X-Postern-User`); `None` when the
    /// token names no subject. An admitted session whose subject cannot
    /// travel in a header does not exist: the gate refuses it on admission.
    pub user: Option<HeaderValue>,
    /// The client as a header value (`X-Postern-Client`), when named.
    pub client: Option<HeaderValue>,
    /// The scopes, space-separated (`None` if not header-safe).
    pub scopes: Option<HeaderValue>,
    /// The upstream's session id, if any and header-safe.
    pub session: Option<HeaderValue>,
    /// `{"user":…,"client":…,"scopes":[…],"session_id":…}` as JSON bytes
    /// (`user` and `client` are `null` when not named).
    pub body: Bytes,
}

#[derive(serde::Serialize)]
struct RenderedBody<'a> {
    user: Option<&'a str>,
    client: Option<&'a str>,
    scopes: &'a [String],
    session_id: Option<&'a str>,
}

/// Why a session cannot be rendered for forward-auth answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unrenderable {
    /// The subject is not a valid header value (e.g. holds a newline).
    #[error("the subject cannot travel in a header")]
    Subject,
    /// The client id is not a valid header value.
    #[error("the client id cannot travel in a header")]
    Client,
}

impl Validated {
    /// A session as an upstream describes it (not yet rendered), naming no
    /// client; see [`Validated::with_client`].
    pub fn new(
        subject: Option<String>,
        scopes: Vec<String>,
        audience: Vec<String>,
        expires_at: u64,
        session_id: Option<String>,
    ) -> Self {
        Self {
            subject,
            client_id: None,
            scopes,
            audience,
            expires_at,
            session_id,
            key_id: None,
            rendered: Rendered::default(),
        }
    }

    /// The same session, issued to `client`.
    pub fn with_client(mut self, client: Option<String>) -> Self {
        self.client_id = client;
        self
    }

    /// Who acts: the subject, else the client.
    pub fn principal(&self) -> Option<&str> {
        self.subject.as_deref().or(self.client_id.as_deref())
    }

    /// Renders the identity for forward-auth answers (see [`Rendered`]).
    /// Called once, when the gate admits the session. A subject or client
    /// that cannot be a header value is refused rather than dropped: a
    /// request must never pass without the identity it was admitted for.
    pub(crate) fn render(&mut self) -> Result<(), Unrenderable> {
        let header = |text: &str| HeaderValue::from_str(text).ok();
        let user = match &self.subject {
            Some(subject) => Some(header(subject).ok_or(Unrenderable::Subject)?),
            None => None,
        };
        let client = match &self.client_id {
            Some(client) => Some(header(client).ok_or(Unrenderable::Client)?),
            None => None,
        };
        let body = serde_json::to_vec(&RenderedBody {
            user: self.subject.as_deref(),
            client: self.client_id.as_deref(),
            scopes: &self.scopes,
            session_id: self.session_id.as_deref(),
        })
        // Serialising strings into a Vec cannot fail; an empty body is the
        // fallback that a caller would notice rather than a panic.
        .unwrap_or_default();
        self.rendered = Rendered {
            user,
            client,
            scopes: header(&self.scopes.join(" ")),
            session: self.session_id.as_deref().and_then(header),
            body: Bytes::from(body),
        };
        Ok(())
    }

    /// The identity rendered when the gate admitted this session.
    pub fn rendered(&self) -> &Rendered {
        &self.rendered
    }

    /// Approximate bytes held, for the cache's byte bound.
    pub fn weight(&self) -> u32 {
        let subject = self.subject.as_ref().map_or(0, String::len);
        let client = self.client_id.as_ref().map_or(0, String::len);
        let strings = subject
            + client
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.audience.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.session_id.as_ref().map_or(0, |s| s.len())
            + self.key_id.as_ref().map_or(0, |s| s.len())
            // The rendered copy: the strings again, plus JSON punctuation.
            + self.rendered.body.len()
            + subject
            + client
            + self.scopes.iter().map(|s| s.len() + 1).sum::<usize>()
            + self.session_id.as_ref().map_or(0, |s| s.len());
        u32::try_from(std::mem::size_of::<Self>() + strings).unwrap_or(u32::MAX)
    }
}

/// Why a validated token may still not pass a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Insufficient {
    #[error("token lacks scope `{0}`")]
    Scope(String),
    #[error("token is not for audience `{0}`")]
    Audience(String),
    /// The token names only a client; this route needs a user.
    #[error("token names no user (a client's own token); this route requires one")]
    Subject,
}

/// What a route requires: every listed scope, the audience if set, and a
/// subject (a user, not only a client) if `subject` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub subject: bool,
}

impl Requirement {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
            audience: None,
            subject: false,
        }
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requires a subject: a token that names only its client (client
    /// credentials) is refused with [`Insufficient::Subject`].
    pub fn with_subject(mut self) -> Self {
        self.subject = true;
        self
    }

    /// Parses a space-separated scope list (the form OAuth uses).
    pub fn from_scope_list(list: &str) -> Self {
        Self::scopes(list.split_ascii_whitespace())
    }

    /// Checks a session against this requirement. Runs on every hit.
    pub fn check(&self, session: &Validated) -> Result<(), Insufficient> {
        if let Some(missing) = self.scopes.iter().find(|s| !session.scopes.contains(s)) {
            return Err(Insufficient::Scope(missing.clone()));
        }
        if let Some(aud) = &self.audience {
            if !session.audience.contains(aud) {
                return Err(Insufficient::Audience(aud.clone()));
            }
        }
        if self.subject && session.subject.is_none() {
            return Err(Insufficient::Subject);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Validated {
        Validated::new(
            Some("alice".into()),
            vec!["read".into(), "write".into()],
            vec!["api".into()],
            10,
            None,
        )
    }

    fn client_session() -> Validated {
        Validated::new(None, vec!["read".into()], Vec::new(), 10, None)
            .with_client(Some("app".into()))
    }

    #[test]
    fn requirements_check_every_scope_and_the_audience() {
        assert_eq!(Requirement::none().check(&session()), Ok(()));
        assert_eq!(
            Requirement::from_scope_list("read  write").check(&session()),
            Ok(())
        );
        assert_eq!(
            Requirement::scopes(["admin"]).check(&session()),
            Err(Insufficient::Scope("admin".into()))
        );
        assert_eq!(
            Requirement::none().with_audience("api").check(&session()),
            Ok(())
        );
        assert_eq!(
            Requirement::none()
                .with_audience("billing")
                .check(&session()),
            Err(Insufficient::Audience("billing".into()))
        );
    }

    #[test]
    fn a_route_that_requires_a_subject_refuses_a_client_token() {
        assert_eq!(Requirement::none().check(&client_session()), Ok(()));
        assert_eq!(
            Requirement::scopes(["read"])
                .with_subject()
                .check(&client_session()),
            Err(Insufficient::Subject)
        );
        assert_eq!(Requirement::none().with_subject().check(&session()), Ok(()));
        assert_eq!(client_session().principal(), Some("app"));
        assert_eq!(session().principal(), Some("alice"));
    }

    #[test]
    fn rendering_builds_the_forward_auth_headers_and_body_once() {
        let mut s = session().with_client(Some("app".into()));
        s.session_id = Some("sid-1".into());
        assert_eq!(s.rendered(), &Rendered::default());
        assert_eq!(s.render(), Ok(()));
        let r = s.rendered();
        assert_eq!(r.user.as_ref().map(|v| v.as_bytes()), Some(&b"alice"[..]));
        assert_eq!(r.client.as_ref().map(|v| v.as_bytes()), Some(&b"app"[..]));
        assert_eq!(
            r.scopes.as_ref().map(|v| v.as_bytes()),
            Some(&b"read write"[..])
        );
        assert_eq!(
            r.session.as_ref().map(|v| v.as_bytes()),
            Some(&b"sid-1"[..])
        );
        assert_eq!(
            &r.body[..],
            br#"{"user":"alice","client":"app","scopes":["read","write"],"session_id":"sid-1"}"#
        );
    }

    #[test]
    fn a_client_token_renders_no_user() {
        let mut s = client_session();
        assert_eq!(s.render(), Ok(()));
        assert_eq!(s.rendered().user, None);
        assert_eq!(
            &s.rendered().body[..],
            br#"{"user":null,"client":"app","scopes":["read"],"session_id":null}"#
        );
    }

    #[test]
    fn an_identity_that_cannot_be_a_header_is_refused_not_dropped() {
        let mut s = session();
        s.subject = Some("bad\nsubject".into());
        assert_eq!(s.render(), Err(Unrenderable::Subject));
        let mut s = client_session();
        s.client_id = Some("bad\rclient".into());
        assert_eq!(s.render(), Err(Unrenderable::Client));
    }
}
