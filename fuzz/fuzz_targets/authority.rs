//! Arbitrary bytes as what a stranger can send before or at admission: a certificate, a
//! revocation list, a join token. Each must decode or be refused, never panic, and a
//! certificate that decodes must re-encode to one that decodes equal; nothing verifies
//! under an authority the input cannot have signed.
#![no_main]

use std::sync::OnceLock;

use andromede_cluster::authority::{Authority, Certificate, JoinToken, RevocationList, Trust};
use libfuzzer_sys::fuzz_target;

fn authority() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(Authority::generate)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(certificate) = Certificate::decode(data) {
        let again = Certificate::decode(&certificate.encoded()).expect("re-encoded certificate");
        assert_eq!(again, certificate);
        let trust = Trust::new(authority().public());
        assert!(trust.verify(&certificate, &certificate.peer(), 0).is_err());
    }
    assert!(RevocationList::decode(data, &authority().public()).is_err());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = JoinToken::decode(text);
    }
});
