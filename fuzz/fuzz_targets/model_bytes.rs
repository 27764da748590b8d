//! Arbitrary bytes as a model file: loading must return Ok or a typed error,
//! and a model that loads must score a row without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickscore::{LoadOptions, Model};

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Model::from_bytes(data, &LoadOptions::default()) {
        let info = model.info();
        let row = vec![0.5f32; info.input_width];
        let mut out = vec![0f32; info.score_width];
        if let Ok(mut scorer) = model.scorer() {
            let _ = scorer.score(&row, &mut out);
        }
    }
});
