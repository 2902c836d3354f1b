//! The rules of rdpfleet, free of transport and storage: typed values and state machines
//! (rollouts, roles, machine health), the approval policy, the correlation engine and the
//! throttles. Nothing here does I/O, so every rule is unit-tested on its own; `store/` converts
//! rows into these types, `services/` applies the rules to stored data, and `api/` and `web/`
//! only translate requests and answers.
pub mod approval;
pub mod correlation;
pub mod enrollment;
pub mod error;
pub mod health;
pub mod ids;
pub mod incident;
pub mod job;
pub mod machines;
pub mod rollout;
pub mod throttle;
pub mod users;

pub use error::{DomainError, DomainResult};
