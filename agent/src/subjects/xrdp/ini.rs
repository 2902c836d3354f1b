//! Minimal INI reading and editing that keeps every other line of the file as it was.

/// The value of `key` in `[section]`.
pub fn get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.to_owned();
        } else if current.eq_ignore_ascii_case(section) && !t.starts_with(';') && !t.starts_with('#') {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim().eq_ignore_ascii_case(key) {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

/// Sets `key` in `[section]`, replacing the existing line or adding one at the section's end.
pub fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut done = false;
    let mut section_end = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if current.eq_ignore_ascii_case(section) && !done {
                section_end = Some(out.len());
            }
            current = name.to_owned();
        } else if current.eq_ignore_ascii_case(section) && !done && !t.starts_with(';') && !t.starts_with('#') {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim().eq_ignore_ascii_case(key) {
                    out.push(format!("{key}={value}"));
                    done = true;
                    continue;
                }
            }
        }
        out.push(line.to_owned());
    }
    if !done {
        let line = format!("{key}={value}");
        match section_end {
            Some(i) => out.insert(i, line),
            None if current.eq_ignore_ascii_case(section) => out.push(line),
            None => {
                out.push(format!("[{section}]"));
                out.push(line);
            }
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_only_the_key() {
        let text = "[Globals]\n; comment\nsecurity_layer=rdp\nport=3389\n[Xorg]\nport=-1\n";
        assert_eq!(get(text, "Globals", "port").as_deref(), Some("3389"));
        assert_eq!(get(text, "xorg", "port").as_deref(), Some("-1"));
        let edited = set(text, "Globals", "security_layer", "tls");
        assert_eq!(edited, "[Globals]\n; comment\nsecurity_layer=tls\nport=3389\n[Xorg]\nport=-1\n");
        let added = set(text, "Globals", "ssl_protocols", "TLSv1.2, TLSv1.3");
        assert_eq!(get(&added, "Globals", "ssl_protocols").as_deref(), Some("TLSv1.2, TLSv1.3"));
        assert!(added.contains("ssl_protocols=TLSv1.2, TLSv1.3\n[Xorg]"), "added inside [Globals]: {added}");
        assert_eq!(set("", "Globals", "a", "b"), "[Globals]\na=b");
    }
}
