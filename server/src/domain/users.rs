//! People: their roles, their accounts and what their API tokens may do.
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

crate::domain::text_enum!(Role { Viewer = "viewer", Operator = "operator", Admin = "admin" });

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
}

/// What a personal API token may do: `Read` tokens only read, whatever their user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Operate,
}

crate::domain::text_enum!(TokenScope { Read = "read", Operate = "operate" });

/// An account as administrators see it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    /// The user who created it (none: the command line or the first start).
    pub created_by: Option<Uuid>,
    /// The user who last raised its role.
    pub promoted_by: Option<Uuid>,
    pub role_changed_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl Account {
    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none() && self.deleted_at.is_none()
    }
    pub fn state(&self) -> &'static str {
        match (self.deleted_at, self.disabled_at) {
            (Some(_), _) => "deleted",
            (None, Some(_)) => "disabled",
            (None, None) => "active",
        }
    }
}
