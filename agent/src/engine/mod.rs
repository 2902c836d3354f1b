//! How checks and fixes run, whatever their subject: the `Check` trait and its context and
//! finding; the `Fix` trait and the one way every fix runs (precondition, backup, apply,
//! verify, automatic rollback). It knows no subject: those live in `subjects/`.
pub mod backup;
pub mod check;
pub mod fix;
