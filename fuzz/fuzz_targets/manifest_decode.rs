//! Arbitrary bytes as a manifest: must decode to a valid manifest or an error, never
//! panic; a manifest that decodes must re-encode to one that decodes equal.
#![no_main]

use andromede_cluster::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        let again = Manifest::decode(&manifest.encode()).expect("re-encoded manifest decodes");
        assert_eq!(again, manifest);
    }
});
