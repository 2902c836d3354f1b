//! A throw-away certificate authority for tests: server certificates with any names and any
//! validity (expired ones included, without faking the clock).
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

pub struct TestCa {
    pub cert: X509,
    key: PKey<Private>,
}

/// Files of one issued certificate.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn serial() -> Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "rdpfleet test CA").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now() - 86_400 * 3650).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(now() + 86_400 * 3650).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        TestCa { cert: b.build(), key }
    }

    /// Writes the CA certificate (the bundle a client would trust).
    pub fn write_bundle(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.to_pem().unwrap()).unwrap();
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid between the two
    /// offsets in days from now (negative for the past).
    pub fn issue(
        &self,
        dir: &Path,
        file_stem: &str,
        names: &[&str],
        valid_from_days: i64,
        valid_to_days: i64,
    ) -> Issued {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", names.first().copied().unwrap_or("server")).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name.build()).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now() + valid_from_days * 86_400).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(now() + valid_to_days * 86_400).unwrap()).unwrap();
        let mut san = SubjectAlternativeName::new();
        for n in names {
            if n.parse::<std::net::IpAddr>().is_ok() {
                san.ip(n);
            } else {
                san.dns(n);
            }
        }
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = san.build(&ctx).unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        let cert = dir.join(format!("{file_stem}.crt"));
        let key_path = dir.join(format!("{file_stem}.key"));
        std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        Issued { cert, key: key_path }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
