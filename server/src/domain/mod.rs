//! The rules of rdpfleet, free of transport and storage: typed values and state machines
//! (rollouts, roles, machine health), the approval policy, the correlation engine and the
//! throttles. Nothing here does I/O, so every rule is unit-tested on its own; `store/` converts
//! rows into these types, `services/` applies the rules to stored data, and `api/` and `web/`
//! only translate requests and answers.
/// For an enum stored and shown as text: `ALL` (in declaration order), `as_str`, `parse` (the
/// exact text, nothing else) and `Display`, from one list of variants and their texts, so the
/// text of a state is written once (serde's `rename_all = "snake_case"` must agree; the tests
/// round-trip it).
macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.into_iter().find(|x| x.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

pub mod approval;
pub mod correlation;
pub mod enrollment;
pub mod error;
pub mod health;
pub mod host_names;
pub mod ids;
pub mod incident;
pub mod job;
pub mod machines;
pub mod rollout;
pub mod throttle;
pub mod users;

pub use error::{DomainError, DomainResult};
