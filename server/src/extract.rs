//! Extractors whose rejections are our JSON errors instead of axum's plain-text ones.
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::state::AppState;

/// JSON body. Syntax errors → 400 `malformed_json`; wrong shape or unknown fields → 422
/// `invalid_body`; too large → 413; wrong content type → 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej, state.settings.max_body_bytes)),
        }
    }
}

fn json_rejection(rej: JsonRejection, limit: usize) -> AppError {
    match rej {
        JsonRejection::JsonDataError(e) => AppError::InvalidBody(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => AppError::MalformedJson(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge(limit)
        }
        other => AppError::BadRequest(other.body_text()),
    }
}

pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| AppError::BadRequest(format!("invalid path: {}", e.body_text())))
    }
}

pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| AppError::BadRequest(format!("invalid query: {}", e.body_text())))
    }
}

/// The client's address (see [`crate::client_ip::client_ip`]), when the server was started with connection info
/// (router tests without it get `None`).
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(PeerIp(peer.map(|p| crate::client_ip::client_ip(p, &parts.headers, &state.settings.trusted_proxies))))
    }
}
