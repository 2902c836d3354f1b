//! Dashboard sessions: the cookie, the signed-in user extractor, CSRF and role checks.
use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use rand::RngCore;

use super::WebError;
use crate::domain::users::{Role, User};
use crate::secrets::token_hash;
use crate::state::AppState;

const SECURE_NAME: &str = "__Host-rdpfleet_session";
const PLAIN_NAME: &str = "rdpfleet_session";

pub fn cookie_name(state: &AppState) -> &'static str {
    if state.settings.secure_cookies { SECURE_NAME } else { PLAIN_NAME }
}

/// A random URL-safe secret (session ids, CSRF tokens).
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// `Set-Cookie` for a new session (or, with `None`, one that clears it).
pub fn set_cookie(state: &AppState, value: Option<&str>) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    let v = match value {
        Some(v) => format!("{}={v}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(state)),
        None => format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", cookie_name(state)),
    };
    (SET_COOKIE, HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("")))
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in user of a page request; anonymous requests are sent to the sign-in page.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub id_hash: String,
}

impl Session {
    pub fn require(&self, role: Role) -> Result<(), WebError> {
        if self.user.role >= role { Ok(()) } else { Err(WebError::Forbidden) }
    }

    /// Compares a submitted CSRF token with the session's, in constant time.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        let (a, b) = (self.csrf.as_bytes(), submitted.as_bytes());
        let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same { Ok(()) } else { Err(WebError::Csrf) }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let login = || WebError::SignIn(parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned()));
        let Some(value) = cookie_value(&parts.headers, cookie_name(state)) else {
            return Err(login());
        };
        let id_hash = token_hash(value);
        let idle = i64::try_from(state.settings.session_idle_hours).unwrap_or(12) * 3_600_000;
        match state.store.session(&id_hash, idle).await.map_err(WebError::internal)? {
            Some(s) => Ok(Session { user: s.user, csrf: s.csrf_token, id_hash }),
            None => Err(login()),
        }
    }
}
