//! Enrollment tokens: how many machines may still enroll with one, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentTokenState {
    Active,
    Expired,
    /// As many machines enrolled with it as it allows.
    UsedUp,
    Revoked,
}

crate::domain::text_enum!(EnrollmentTokenState { Active = "active", Expired = "expired", UsedUp = "used_up", Revoked = "revoked" });

/// An enrollment token as administrators see it (its secret is only ever stored hashed).
#[derive(Debug, Clone)]
pub struct EnrollmentToken {
    pub id: String,
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: i64,
    pub uses: i64,
    pub revoked_at: Option<i64>,
}

impl EnrollmentToken {
    /// Revocation wins over a use count, which wins over the expiry.
    pub fn state(&self, now: i64) -> EnrollmentTokenState {
        if self.revoked_at.is_some() {
            EnrollmentTokenState::Revoked
        } else if self.uses >= self.max_uses {
            EnrollmentTokenState::UsedUp
        } else if self.expires_at <= now {
            EnrollmentTokenState::Expired
        } else {
            EnrollmentTokenState::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_then_uses_then_expiry_decide_the_state() {
        let t = EnrollmentToken {
            id: "t".into(),
            label: "l".into(),
            created_at: 0,
            expires_at: 100,
            max_uses: 2,
            uses: 1,
            revoked_at: None,
        };
        assert_eq!(t.state(50), EnrollmentTokenState::Active);
        assert_eq!(t.state(100), EnrollmentTokenState::Expired);
        assert_eq!(EnrollmentToken { uses: 2, ..t.clone() }.state(200), EnrollmentTokenState::UsedUp);
        assert_eq!(EnrollmentToken { revoked_at: Some(1), uses: 2, ..t }.state(200), EnrollmentTokenState::Revoked);
        assert_eq!(serde_json::to_value(EnrollmentTokenState::UsedUp).unwrap(), serde_json::json!("used_up"));
    }
}
