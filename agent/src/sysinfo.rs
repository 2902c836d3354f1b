//! What the agent tells the server about its machine.

pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// OS family and version, e.g. `linux Debian GNU/Linux 12 (bookworm)`.
pub fn os_description() -> String {
    let family = std::env::consts::OS;
    #[cfg(target_os = "linux")]
    if let Ok(text) = std::fs::read_to_string("/etc/os-release") {
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
            return format!("{family} {}", name.trim_matches('"'));
        }
    }
    family.to_owned()
}
