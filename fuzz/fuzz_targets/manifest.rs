//! Any bytes as a registry manifest and as key files: parsing must return
//! a typed error or a manifest that passes its own validation, and a
//! parsed manifest must serialise and parse back to itself (so what is
//! signed is what was read). Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickscore::registry::{Manifest, PublicKey, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text) {
        assert!(m.validate().is_ok());
        let again = Manifest::parse(&m.to_toml()).expect("a parsed manifest re-parses");
        assert_eq!(again.signing_bytes(), m.signing_bytes());
    }
    let _ = PublicKey::parse(text);
    let _ = SigningKey::parse(text);
});
