//! Agent releases: the platforms, the parameters of an `agent.update` job and the bytes a
//! release key signs. The server signs each release when it is added; an agent checks the
//! signature with the release key it pinned at enrollment, and the binary's SHA-256.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The fix id of an agent update in rollouts and jobs.
pub const AGENT_UPDATE: &str = "agent.update";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Platform {
    #[serde(rename = "windows-x86_64")]
    WindowsX86_64,
    #[serde(rename = "linux-x86_64")]
    LinuxX86_64,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::WindowsX86_64, Platform::LinuxX86_64];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::WindowsX86_64 => "windows-x86_64",
            Platform::LinuxX86_64 => "linux-x86_64",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The platform of a machine by the OS description its agent reports (`windows …`,
    /// `linux …`); other architectures have no releases yet.
    pub fn of_os(os: &str) -> Option<Platform> {
        let os = os.to_ascii_lowercase();
        if os.starts_with("windows") {
            Some(Platform::WindowsX86_64)
        } else if os.starts_with("linux") {
            Some(Platform::LinuxX86_64)
        } else {
            None
        }
    }

    /// The platform this program was built for.
    pub fn current() -> Option<Platform> {
        match (std::env::consts::OS, std::env::consts::ARCH) {
            ("windows", "x86_64") => Some(Platform::WindowsX86_64),
            ("linux", "x86_64") => Some(Platform::LinuxX86_64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parameters of an `agent.update` job, filled in per machine from the release for its
/// platform (covered by the job's signature like every parameter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    pub release: Uuid,
    pub version: String,
    pub platform: Platform,
    /// Hex SHA-256 of the binary.
    pub sha256: String,
    pub size: u64,
    /// Base64 Ed25519 signature by the release key over [`signing_payload`].
    pub signature: String,
    /// How long the new build has to start and report before it is restored.
    pub health_gate_secs: u64,
}

/// The bytes a release key signs.
pub fn signing_payload(version: &str, platform: Platform, sha256: &str) -> Vec<u8> {
    format!("rdpfleet-release-v1\n{}\n{}\n{}\n", platform.as_str(), version.trim(), sha256.trim().to_ascii_lowercase())
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_by_name_and_os() {
        assert_eq!(Platform::parse("windows-x86_64"), Some(Platform::WindowsX86_64));
        assert_eq!(Platform::parse("linux-aarch64"), None);
        assert_eq!(Platform::of_os("Windows 10.0.22631"), Some(Platform::WindowsX86_64));
        assert_eq!(Platform::of_os("linux debian 12"), Some(Platform::LinuxX86_64));
        assert_eq!(Platform::of_os("macos"), None);
        assert_eq!(serde_json::to_string(&Platform::LinuxX86_64).unwrap(), "\"linux-x86_64\"");
        assert_ne!(
            signing_payload("1.0.0", Platform::LinuxX86_64, "ab"),
            signing_payload("1.0.0", Platform::WindowsX86_64, "ab"),
            "the platform is signed"
        );
    }
}
