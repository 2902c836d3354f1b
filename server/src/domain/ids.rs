//! Typed ids: a rollout id cannot be passed where a machine id is expected. They are UUIDs in
//! the database and on the wire (text), converted once at the store boundary.
use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// A rollout.
    RolloutId
);
uuid_id!(
    /// An enrolled machine.
    MachineId
);
uuid_id!(
    /// A signed job for one machine.
    JobId
);
uuid_id!(
    /// A person's account.
    UserId
);
uuid_id!(
    /// An incident.
    IncidentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_text_and_json() {
        let id = RolloutId::new();
        assert_eq!(id.to_string().parse::<RolloutId>().unwrap(), id);
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(id.0.to_string()));
        assert!("not-a-uuid".parse::<MachineId>().is_err());
    }
}
