//! The use cases: the domain's rules applied to stored data, in one place for both transports.
//! `api/` (JSON) and `web/` (pages and forms) call these and only translate requests and errors.
pub mod accounts;
pub mod releases;
pub mod rollouts;
