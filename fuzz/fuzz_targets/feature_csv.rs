//! Arbitrary bytes as a feature CSV: rows or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickscore::input::read_features;

fuzz_target!(|data: &[u8]| {
    let names = ["a".to_string(), "b".to_string(), "c".to_string()];
    if let Ok(rows) = read_features(data, 3, Some(&names)) {
        assert_eq!(rows.values.len(), rows.rows() * 3);
    }
});
