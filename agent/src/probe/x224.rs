//! TPKT / X.224 framing of the RDP Connection Request and Connection Confirm
//! (MS-RDPBCGR 2.2.1.1 and 2.2.1.2; TPKT is RFC 1006, X.224 is ITU-T X.224 class 0).
//!
//! Everything here reads bytes from the network: no indexing without a bounds check, no panic
//! on any input (see the property tests).

/// TPKT header: version 3, reserved, big-endian length of the whole packet.
const TPKT_VERSION: u8 = 3;
const TPKT_HEADER_LEN: usize = 4;
/// X.224 Connection Request / Confirm TPDU codes (high nibble).
const X224_CR: u8 = 0xE0;
const X224_CC: u8 = 0xD0;
/// RDP_NEG_REQ / RDP_NEG_RSP / RDP_NEG_FAILURE types (2.2.1.1.1, 2.2.1.2.1, 2.2.1.2.2).
const TYPE_RDP_NEG_REQ: u8 = 1;
const TYPE_RDP_NEG_RSP: u8 = 2;
const TYPE_RDP_NEG_FAILURE: u8 = 3;
/// X.224 Data TPDU (class 0) and Disconnect Request codes.
const X224_DT: u8 = 0xF0;
const X224_DR: u8 = 0x80;
/// MCS Disconnect-Provider-Ultimatum (T.125), the first byte of its PER encoding.
const MCS_DPUM: u8 = 0x21;
/// Smallest TPKT packet that can carry an X.224 TPDU: header (4) + LI + code + one byte.
const MIN_TPKT_LEN: usize = 7;
/// A Confirm with no negotiation data: TPKT (4) + LI (1) + fixed X.224 CC part (6).
pub const LEGACY_CONFIRM_LEN: usize = 11;
/// TPKT + X.224 CC + RDP_NEG_RSP/FAILURE (8).
const NEGOTIATED_CONFIRM_LEN: usize = 19;
/// No sane Connection Confirm is longer; anything above is treated as not RDP.
pub const MAX_CONFIRM_LEN: usize = 512;

/// Builds a Connection Request asking for `requested` protocols, with an optional
/// `Cookie: mstshash=` routing token as mstsc sends it.
pub fn connection_request(requested: u32, cookie: Option<&str>) -> Vec<u8> {
    let cookie_bytes = cookie.map(|c| format!("Cookie: mstshash={c}\r\n").into_bytes()).unwrap_or_default();
    // X.224 fixed part after LI: code, dst-ref(2), src-ref(2), class — 6 bytes; then cookie, then RDP_NEG_REQ (8).
    let li = 6 + cookie_bytes.len() + 8;
    let total = TPKT_HEADER_LEN + 1 + li;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[TPKT_VERSION, 0]);
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.push(li as u8);
    out.extend_from_slice(&[X224_CR, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&cookie_bytes);
    out.extend_from_slice(&[TYPE_RDP_NEG_REQ, 0]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&requested.to_le_bytes());
    out
}

/// A decoded Connection Confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// RDP_NEG_RSP: the selected protocol and the response flags.
    Selected { protocol: u32, flags: u8 },
    /// RDP_NEG_FAILURE with its failure code.
    Failure { code: u32 },
    /// No negotiation data: a server that predates negotiation.
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("not a TPKT packet (first byte 0x{0:02x})")]
    NotTpkt(u8),
    #[error("TPKT length {0} is out of range")]
    BadLength(usize),
    #[error("not an X.224 Connection Confirm (TPDU code 0x{0:02x})")]
    NotConfirm(u8),
    /// The server answered the request by disconnecting (X.224 Disconnect Request, or an MCS
    /// Disconnect-Provider-Ultimatum in a Data TPDU, as xrdp does for requests it refuses).
    #[error("the server disconnected instead of confirming")]
    Disconnected,
    #[error("malformed negotiation data: {0}")]
    Malformed(&'static str),
}

/// Length of the whole TPKT packet from its 4-byte header; lets a reader know how much to read.
pub fn tpkt_length(header: &[u8]) -> Result<usize, ParseError> {
    let h =
        header.get(..TPKT_HEADER_LEN).ok_or(ParseError::Truncated { needed: TPKT_HEADER_LEN, have: header.len() })?;
    if h[0] != TPKT_VERSION {
        return Err(ParseError::NotTpkt(h[0]));
    }
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if !(MIN_TPKT_LEN..=MAX_CONFIRM_LEN).contains(&len) {
        return Err(ParseError::BadLength(len));
    }
    Ok(len)
}

/// Parses a complete Connection Confirm. The source reference is not checked: servers differ
/// (xrdp sends 0x1234, FreeRDP 0).
pub fn parse_confirm(buf: &[u8]) -> Result<Confirm, ParseError> {
    let len = tpkt_length(buf)?;
    let pkt = buf.get(..len).ok_or(ParseError::Truncated { needed: len, have: buf.len() })?;
    let li = usize::from(pkt[4]);
    let code = pkt[5] & 0xF0;
    match code {
        X224_CC => {}
        X224_DR => return Err(ParseError::Disconnected),
        X224_DT if pkt.get(7).is_some_and(|b| b & 0xFC == MCS_DPUM & 0xFC) => return Err(ParseError::Disconnected),
        _ => return Err(ParseError::NotConfirm(pkt[5])),
    }
    if len < LEGACY_CONFIRM_LEN {
        return Err(ParseError::Malformed("Connection Confirm shorter than 11 bytes"));
    }
    if li < 6 || TPKT_HEADER_LEN + 1 + li > len {
        return Err(ParseError::Malformed("X.224 length indicator does not fit the packet"));
    }
    if len == LEGACY_CONFIRM_LEN {
        return Ok(Confirm::Legacy);
    }
    let neg = pkt
        .get(LEGACY_CONFIRM_LEN..NEGOTIATED_CONFIRM_LEN)
        .ok_or(ParseError::Malformed("negotiation data is shorter than 8 bytes"))?;
    let neg_len = u16::from_le_bytes([neg[2], neg[3]]);
    if neg_len != 8 {
        return Err(ParseError::Malformed("negotiation data length is not 8"));
    }
    let value = u32::from_le_bytes([neg[4], neg[5], neg[6], neg[7]]);
    match neg[0] {
        TYPE_RDP_NEG_RSP => Ok(Confirm::Selected { protocol: value, flags: neg[1] }),
        TYPE_RDP_NEG_FAILURE => Ok(Confirm::Failure { code: value }),
        _ => Err(ParseError::Malformed("unknown negotiation type")),
    }
}

/// The name of an RDP_NEG_FAILURE code (2.2.1.2.2).
pub fn failure_name(code: u32) -> &'static str {
    match code {
        1 => "SSL_REQUIRED_BY_SERVER",
        2 => "SSL_NOT_ALLOWED_BY_SERVER",
        3 => "SSL_CERT_NOT_ON_SERVER",
        4 => "INCONSISTENT_FLAGS",
        5 => "HYBRID_REQUIRED_BY_SERVER",
        6 => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        _ => "UNKNOWN_FAILURE_CODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_matches_the_specification_bytes() {
        // DOMAIN: 03 00 00 13 0e e0 00 00 00 00 00 01 00 08 00 + requestedProtocols (LE).
        assert_eq!(
            connection_request(0x0B, None),
            [0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x08, 0x00, 0x0b, 0, 0, 0]
        );
        let with_cookie = connection_request(1, Some("probe"));
        assert_eq!(usize::from(u16::from_be_bytes([with_cookie[2], with_cookie[3]])), with_cookie.len());
        assert_eq!(usize::from(with_cookie[4]) + 5, with_cookie.len());
        assert!(with_cookie.windows(17).any(|w| w == b"Cookie: mstshash="));
    }

    #[test]
    fn parses_real_server_confirms() {
        // Captured from xrdp 0.9.21 (security_layer=tls): SSL selected / SSL required.
        let rsp = hex("030000130ed000001234000201080001000000");
        assert_eq!(parse_confirm(&rsp), Ok(Confirm::Selected { protocol: 1, flags: 1 }));
        let fail = hex("030000130ed000001234000300080001000000");
        assert_eq!(parse_confirm(&fail), Ok(Confirm::Failure { code: 1 }));
        assert_eq!(parse_confirm(&hex("0300000b06d00000000000")), Ok(Confirm::Legacy));
    }

    #[test]
    fn rejects_what_is_not_a_confirm() {
        assert_eq!(parse_confirm(b"HTTP/1.1 400 Bad"), Err(ParseError::NotTpkt(b'H')));
        assert!(matches!(parse_confirm(&hex("030000130ed00000")), Err(ParseError::Truncated { .. })));
        assert_eq!(parse_confirm(&hex("030000130ee000001234000201080001000000")), Err(ParseError::NotConfirm(0xe0)));
        assert!(matches!(parse_confirm(&hex("030000130ed000001234000901080001000000")), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_confirm(&hex("03000005ff")), Err(ParseError::BadLength(5))));
        // xrdp's answer to an RDSAAD-only request: X.224 DT carrying MCS Disconnect-Provider-Ultimatum.
        assert_eq!(parse_confirm(&hex("0300000902f0802180")), Err(ParseError::Disconnected));
        assert_eq!(parse_confirm(&hex("0300000b06800000000000")), Err(ParseError::Disconnected));
        assert!(matches!(parse_confirm(&hex("0300000906d0000000")), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_confirm(&hex("0300000f0ad0000012340002010800")), Err(ParseError::Malformed(_))));
        assert_eq!(failure_name(5), "HYBRID_REQUIRED_BY_SERVER");
        assert_eq!(failure_name(99), "UNKNOWN_FAILURE_CODE");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = tpkt_length(&bytes);
            let _ = parse_confirm(&bytes);
        }

        #[test]
        fn never_panics_on_plausible_confirms(
            len in 0u16..600, li in any::<u8>(), code in any::<u8>(), neg_type in 0u8..5,
            neg_len in 0u16..12, value in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = vec![3, 0];
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&[li, code, 0, 0, 0x12, 0x34, 0, neg_type, 0]);
            b.extend_from_slice(&neg_len.to_le_bytes());
            b.extend_from_slice(&value.to_le_bytes());
            b.extend_from_slice(&tail);
            if let Ok(c) = parse_confirm(&b) {
                // Whatever parses must be self-consistent.
                let n = tpkt_length(&b).unwrap();
                prop_assert!(n <= b.len());
                if n == LEGACY_CONFIRM_LEN { prop_assert_eq!(c, Confirm::Legacy); }
            }
        }

        #[test]
        fn every_request_round_trips_its_protocols(requested in any::<u32>(), cookie in "[a-zA-Z0-9]{0,20}") {
            let cookie = (!cookie.is_empty()).then_some(cookie.as_str());
            let req = connection_request(requested, cookie);
            prop_assert_eq!(usize::from(u16::from_be_bytes([req[2], req[3]])), req.len());
            let n = req.len();
            prop_assert_eq!(u32::from_le_bytes([req[n - 4], req[n - 3], req[n - 2], req[n - 1]]), requested);
        }
    }
}
