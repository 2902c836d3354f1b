//! The stylesheet and the live-refresh script, compiled in (no build step, no CDN).
use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../../templates/static/app.css");
const JS: &str = include_str!("../../../templates/static/app.js");

pub async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
}

pub async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], JS)
}
