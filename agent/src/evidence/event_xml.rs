//! One event as the Windows Event Log API renders it (EvtRender, EvtRenderEventXml), reduced to
//! an [`Event`]: provider, id, time, computer, and the EventData / UserData fields by name.
//! Unnamed `<Data>` elements are named `Data1`, `Data2`... in document order.
use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event as Xml};

use super::Event;

#[derive(Debug, thiserror::Error)]
pub enum EventXmlError {
    #[error("malformed event XML: {0}")]
    Xml(String),
    #[error("event XML without {0}")]
    Missing(&'static str),
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok())
        .map(|v| v.into_owned())
}

pub fn parse(xml: &str) -> Result<Event, EventXmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    // Local names of the open elements, outermost first.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let (mut provider, mut id, mut time, mut computer) = (None, None, None, None);
    let mut data = BTreeMap::new();
    let mut unnamed = 0usize;
    // The field the next text belongs to.
    let mut field: Option<String> = None;
    loop {
        let ev = reader.read_event().map_err(|e| EventXmlError::Xml(e.to_string()))?;
        match ev {
            Xml::Start(ref e) | Xml::Empty(ref e) => {
                let name = e.local_name().as_ref().to_vec();
                let parent = path.last().map(Vec::as_slice);
                let in_user_data = path.len() >= 3 && path.get(1).is_some_and(|p| p == b"UserData");
                match (parent, name.as_slice()) {
                    (Some(b"System"), b"Provider") => provider = attr(e, b"Name"),
                    (Some(b"System"), b"TimeCreated") => time = attr(e, b"SystemTime"),
                    (Some(b"System"), b"EventID" | b"Computer") => {
                        field = Some(String::from_utf8_lossy(&name).into_owned())
                    }
                    (Some(b"EventData"), b"Data") => {
                        field = Some(attr(e, b"Name").unwrap_or_else(|| {
                            unnamed += 1;
                            format!("Data{unnamed}")
                        }));
                    }
                    _ if in_user_data => field = Some(String::from_utf8_lossy(&name).into_owned()),
                    _ => {}
                }
                if matches!(ev, Xml::Start(_)) {
                    path.push(name);
                } else {
                    field = None;
                }
            }
            Xml::Text(t) => {
                let text = t.unescape().map_err(|e| EventXmlError::Xml(e.to_string()))?.into_owned();
                match (field.as_deref(), path.get(1).map(Vec::as_slice)) {
                    (Some("EventID"), Some(b"System")) => id = text.trim().parse::<u32>().ok(),
                    (Some("Computer"), Some(b"System")) => computer = Some(text),
                    (Some(f), _) => {
                        data.insert(f.to_owned(), text);
                    }
                    (None, _) => {}
                }
            }
            Xml::End(_) => {
                path.pop();
                field = None;
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    Ok(Event {
        provider: provider.ok_or(EventXmlError::Missing("System/Provider/@Name"))?,
        id: id.ok_or(EventXmlError::Missing("System/EventID"))?,
        time,
        computer,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schannel_alert_with_named_data() {
        let xml = r#"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Schannel' Guid='{1f678132-5938-4686-9fdc-c8ff68f15c85}'/><EventID Qualifiers='49152'>36887</EventID><Version>0</Version><Level>2</Level><TimeCreated SystemTime='2026-11-20T07:59:01.1234567Z'/><Computer>RDS01.corp.example</Computer></System><EventData><Data Name='AlertDesc'>48</Data><Data Name='ErrorState'>552</Data></EventData></Event>"#;
        let e = parse(xml).unwrap();
        assert_eq!((e.provider.as_str(), e.id), ("Schannel", 36887));
        assert_eq!(e.time.as_deref(), Some("2026-11-20T07:59:01.1234567Z"));
        assert_eq!(e.computer.as_deref(), Some("RDS01.corp.example"));
        assert_eq!(e.data.get("AlertDesc").map(String::as_str), Some("48"));
        let ev = crate::evidence::analyse(&[e]);
        assert_eq!(ev.findings[0].cause, "cert.untrusted", "alert 48 unknown_ca");
    }

    #[test]
    fn user_data_and_unnamed_data() {
        let xml = r#"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-TerminalServices-RemoteConnectionManager' Guid='{c76baa63-ae81-421c-b425-340b4b24157f}'/><EventID>1149</EventID><TimeCreated SystemTime='2026-11-20T08:00:00Z'/><Computer>H</Computer></System><UserData><EventXML xmlns='Event_NS'><Param1>alice</Param1><Param2>CORP</Param2><Param3>10.0.0.7</Param3></EventXML></UserData></Event>"#;
        let e = parse(xml).unwrap();
        assert_eq!(e.id, 1149);
        assert_eq!(e.data.get("Param3").map(String::as_str), Some("10.0.0.7"));
        let ev = crate::evidence::analyse(&[e]);
        assert_eq!(ev.connections_from.get("10.0.0.7"), Some(&1));

        let xml = "<Event><System><Provider Name='X'/><EventID>5</EventID></System><EventData><Data>a &amp; b</Data><Data/><Data>c</Data></EventData></Event>";
        let e = parse(xml).unwrap();
        assert_eq!(e.data.get("Data1").map(String::as_str), Some("a & b"));
        assert_eq!(e.data.get("Data3").map(String::as_str), Some("c"));
    }

    #[test]
    fn broken_xml_is_an_error_not_a_panic() {
        for bad in ["", "<Event>", "<Event><System><EventID>x</EventID></System></Event>", "<a></b>", "\u{0}<<"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
