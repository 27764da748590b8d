//! The registry: publish, rollback, pinning, persistence, bounds, every
//! tamper case refused with its own error and audited, and a hot-swap
//! stress test (inline and ring paths, ≥ 1,000 swaps between two real
//! models, every score checked against the version that reports it).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{add_version, registry_options, test_key, TempDir};
use tickscore::registry::{LoadStep, ManifestError, PublishOptions, SigningKey};
use tickscore::{
    Engine, EngineConfig, IdleStrategy, LoadOptions, Model, Registry, RegistryError, ScoreError,
};

const NAME: &str = "german_credit";

/// `<root>/german_credit/1` = logistic regression, `/2` = MLP (same 61
/// features, different scores), both signed by the test key.
fn two_versions(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    add_version(&dir.0, NAME, 1, "german_logreg", Some(&test_key()));
    add_version(&dir.0, NAME, 2, "german_mlp", Some(&test_key()));
    dir
}

/// Test rows and each bundled model's inline scores on them.
struct Expect {
    rows: Vec<Vec<f32>>,
    v1: Vec<f32>,
    v2: Vec<f32>,
}

fn expect() -> Expect {
    let score_all = |name: &str| {
        let model = Model::load(common::model_path(name), &LoadOptions::default()).expect("load");
        let rows = common::test_rows(&model);
        let mut s = model.scorer().expect("scorer");
        let mut out = [0f32];
        let scores: Vec<f32> = (0..rows.rows())
            .map(|i| {
                s.score(rows.row(i), &mut out).expect("score");
                out[0]
            })
            .collect();
        let rows: Vec<Vec<f32>> = (0..rows.rows()).map(|i| rows.row(i).to_vec()).collect();
        (rows, scores)
    };
    let (rows, v1) = score_all("german_logreg");
    let (rows2, v2) = score_all("german_mlp");
    assert_eq!(rows, rows2, "both models read the same features");
    assert!(v1.iter().zip(&v2).filter(|(a, b)| a != b).count() > rows.len() / 2);
    Expect { rows, v1, v2 }
}

fn audit_lines(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("audit.jsonl"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect()
}

#[test]
fn publish_scores_and_reports_the_version() {
    let dir = two_versions("publish");
    let e = expect();
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    let d = reg.serve(NAME, "test").expect("serve");
    assert_eq!(d.current().version(), 2, "serve picks the highest version");
    let mut s = d.scorer().expect("scorer");
    let mut out = [0f32];
    for (row, want) in e.rows.iter().zip(&e.v2) {
        assert_eq!(s.score(row, &mut out), Ok(2));
        assert_eq!(out[0].to_bits(), want.to_bits());
    }
    reg.publish(NAME, 1, "test", PublishOptions::default())
        .expect("publish v1");
    for (row, want) in e.rows.iter().zip(&e.v1) {
        assert_eq!(s.score(row, &mut out), Ok(1));
        assert_eq!(out[0].to_bits(), want.to_bits());
    }
    let listing = reg.list().expect("list");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].versions, vec![1, 2]);
    assert_eq!(listing[0].current_on_disk, Some(1));
    assert_eq!(listing[0].serving, Some(1));
}

#[test]
fn rollback_restores_v1_bit_for_bit_without_reloading() {
    let dir = two_versions("rollback");
    let e = expect();
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    let v1 = reg
        .publish(NAME, 1, "alice", PublishOptions::default())
        .expect("v1");
    let d = reg.deployment(NAME).expect("served");
    let mut s = d.scorer().expect("scorer");
    let mut before = vec![0f32; e.rows.len()];
    for (row, o) in e.rows.iter().zip(before.iter_mut()) {
        s.score(row, std::slice::from_mut(o)).expect("score");
    }
    reg.publish(NAME, 2, "alice", PublishOptions::default())
        .expect("v2");
    assert_eq!(d.current().version(), 2);
    let back = reg.rollback(NAME, "bob").expect("rollback");
    assert!(Arc::ptr_eq(&back, &v1), "rollback is a swap to the warm v1");
    for (row, want) in e.rows.iter().zip(&before) {
        let mut out = [0f32];
        assert_eq!(s.score(row, &mut out), Ok(1));
        assert_eq!(out[0].to_bits(), want.to_bits());
    }
    // Nothing before v1.
    match reg.rollback(NAME, "bob") {
        Err(e @ RegistryError::NothingToRollBack(_)) => assert_eq!(e.step(), LoadStep::Publish),
        other => panic!("{other:?}"),
    }
    let audit = audit_lines(&dir.0);
    let actions: Vec<(String, String)> = audit
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or_default().to_owned(),
                l["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("load", "ok"),
        ("publish", "ok"),
        ("load", "ok"),
        ("publish", "ok"),
        ("rollback", "ok"),
        ("rollback", "refused"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, want);
    let rb = &audit[4];
    assert_eq!(rb["version"], 1);
    assert_eq!(rb["from_version"], 2);
    assert_eq!(rb["actor"], "bob");
    assert_eq!(rb["sha256"], v1.sha256());
    assert!(rb["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn pinned_scorers_ignore_publications_and_current_persists() {
    let dir = two_versions("pinned");
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    reg.publish(NAME, 1, "t", PublishOptions::default())
        .expect("v1");
    let mut pinned = reg.pinned_scorer(NAME, 1, "t").expect("pin");
    reg.publish(NAME, 2, "t", PublishOptions::default())
        .expect("v2");
    let row = vec![0f32; 61];
    let mut out = [0f32];
    assert_eq!(pinned.score(&row, &mut out), Ok(1));
    assert!(pinned.is_pinned());
    drop(reg);
    // A new process (registry) serves what CURRENT names: v2.
    let reg = Registry::open(&dir.0, registry_options()).expect("reopen");
    assert_eq!(reg.current_on_disk(NAME).expect("read"), Some(2));
    assert!(matches!(
        reg.rollback(NAME, "t"),
        Err(RegistryError::NotServing(_))
    ));
    let d = reg.serve(NAME, "startup").expect("serve");
    assert_eq!(d.current().version(), 2);
    assert_eq!(reg.history_on_disk(NAME).expect("history"), vec![1, 2]);
    // The history survives the restart: roll back past it (v1 is reloaded
    // and verified again, not trusted from memory).
    let v1 = reg.rollback(NAME, "t").expect("rollback across restarts");
    assert_eq!(v1.version(), 1);
    assert_eq!(d.current().version(), 1);
    assert_eq!(reg.history_on_disk(NAME).expect("history"), vec![1]);
}

#[test]
fn a_retired_version_is_freed_when_its_last_user_moves_on() {
    let dir = two_versions("retire");
    let opts = tickscore::RegistryOptions {
        keep_warm: 1,
        ..registry_options()
    };
    let reg = Registry::open(&dir.0, opts).expect("open");
    let v1 = Arc::downgrade(
        &reg.publish(NAME, 1, "t", PublishOptions::default())
            .expect("v1"),
    );
    let d = reg.deployment(NAME).expect("served");
    let mut s = d.scorer().expect("scorer");
    let row = vec![0f32; 61];
    let mut out = [0f32];
    assert_eq!(s.score(&row, &mut out), Ok(1));
    reg.publish(NAME, 2, "t", PublishOptions::default())
        .expect("v2");
    let held = v1.upgrade().expect("the scorer still holds v1");
    assert!(held.is_retired());
    drop(held);
    assert_eq!(s.score(&row, &mut out), Ok(2));
    assert!(v1.upgrade().is_none(), "v1 freed once the scorer moved on");
}

/// Refuse publishing version 2 after `tamper` changed it; v1 keeps serving
/// and the refusal is audited with its step.
fn refused(tag: &str, tamper: impl FnOnce(&Path), check: impl FnOnce(&RegistryError)) {
    let dir = two_versions(tag);
    let e = expect();
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    reg.publish(NAME, 1, "t", PublishOptions::default())
        .expect("v1");
    let d = reg.deployment(NAME).expect("served");
    let mut s = d.scorer().expect("scorer");
    tamper(&dir.0.join(NAME).join("2"));
    let err = reg
        .publish(NAME, 2, "mallory", PublishOptions::default())
        .expect_err("tampered version must be refused");
    check(&err);
    assert_eq!(d.current().version(), 1, "{tag}: v1 still serving");
    let mut out = [0f32];
    assert_eq!(s.score(&e.rows[0], &mut out), Ok(1));
    assert_eq!(out[0].to_bits(), e.v1[0].to_bits());
    let audit = audit_lines(&dir.0);
    let last = audit.last().expect("audit lines");
    assert_eq!(last["action"], "publish", "{tag}");
    assert_eq!(last["outcome"], "refused", "{tag}");
    assert_eq!(last["version"], 2, "{tag}");
    assert_eq!(last["actor"], "mallory", "{tag}");
    assert_eq!(last["step"], err.step().to_string(), "{tag}");
    assert_eq!(last["error"], err.to_string(), "{tag}");
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    std::fs::write(&path, edit(text)).expect("write manifest");
}

#[test]
fn a_flipped_byte_in_the_model_is_refused() {
    refused(
        "flip",
        |d| {
            let p = d.join("model.onnx");
            let mut b = std::fs::read(&p).expect("model");
            let at = b.len() / 2;
            b[at] ^= 0x01;
            std::fs::write(&p, b).expect("write");
        },
        |e| {
            assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
            assert_eq!(e.step(), LoadStep::Integrity);
        },
    );
}

#[test]
fn a_truncated_model_is_refused() {
    refused(
        "truncate",
        |d| {
            let p = d.join("model.onnx");
            let b = std::fs::read(&p).expect("model");
            std::fs::write(&p, &b[..b.len() - 100]).expect("write");
        },
        |e| {
            assert!(matches!(e, RegistryError::SizeMismatch { .. }), "{e}");
            assert_eq!(e.step(), LoadStep::Size);
        },
    );
}

#[test]
fn a_wrong_signature_is_refused() {
    refused(
        "badsig",
        |d| {
            edit_manifest(d, |t| {
                // Change one hex digit of the signature.
                let at = t.find("ed25519 = \"").expect("signed") + 11;
                let mut b = t.into_bytes();
                b[at] = if b[at] == b'0' { b'1' } else { b'0' };
                String::from_utf8(b).expect("utf-8")
            })
        },
        |e| {
            assert!(matches!(e, RegistryError::BadSignature { .. }), "{e}");
            assert_eq!(e.step(), LoadStep::Signature);
        },
    );
}

#[test]
fn an_altered_signed_manifest_is_refused() {
    refused(
        "altered",
        // A valid-looking change (a label) without re-signing.
        |d| {
            edit_manifest(d, |t| {
                t.replace("version = 2\n", "version = 2\nlabel = \"x\"\n")
            })
        },
        |e| assert!(matches!(e, RegistryError::BadSignature { .. }), "{e}"),
    );
}

#[test]
fn an_untrusted_key_is_refused() {
    refused(
        "untrusted",
        |d| {
            let root = d.parent().and_then(Path::parent).expect("root");
            add_version(
                root,
                NAME,
                2,
                "german_mlp",
                Some(&SigningKey::from_seed([9; 32])),
            );
        },
        |e| {
            assert!(matches!(e, RegistryError::UntrustedKey { .. }), "{e}");
            assert_eq!(e.step(), LoadStep::Signature);
        },
    );
}

#[test]
fn an_unsigned_manifest_is_refused_when_signatures_are_required() {
    refused(
        "unsigned",
        |d| {
            let root = d.parent().and_then(Path::parent).expect("root");
            add_version(root, NAME, 2, "german_mlp", None);
        },
        |e| assert!(matches!(e, RegistryError::Unsigned), "{e}"),
    );
}

#[test]
fn a_manifest_naming_another_file_is_refused() {
    refused(
        "otherfile",
        |d| {
            // Signed by the trusted key, so only the file rule can refuse it.
            let path = d.join("manifest.toml");
            let text = std::fs::read_to_string(&path).expect("manifest");
            let mut m: tickscore::registry::Manifest = toml_manifest(&text);
            m.file = "../1/model.onnx".into();
            test_key().sign(&mut m);
            std::fs::write(&path, m.to_toml()).expect("write");
        },
        |e| {
            match e {
                RegistryError::Manifest {
                    error: ManifestError::Invalid { field, .. },
                    ..
                } => assert_eq!(field, "file"),
                other => panic!("{other}"),
            }
            assert_eq!(e.step(), LoadStep::Manifest);
        },
    );
}

#[test]
fn an_unknown_manifest_field_is_refused() {
    refused(
        "unknownfield",
        |d| edit_manifest(d, |t| format!("{t}\n[extra]\nowner = \"x\"\n")),
        |e| match e {
            RegistryError::Manifest {
                error: ManifestError::Syntax(msg),
                ..
            } => assert!(msg.contains("extra"), "{msg}"),
            other => panic!("{other}"),
        },
    );
}

#[test]
fn a_schema_change_is_refused_unless_forced() {
    // The regressor reads 60 of the 61 features.
    let tamper = |d: &Path| {
        let root = d.parent().and_then(Path::parent).expect("root");
        std::fs::remove_dir_all(d).expect("rm v2");
        add_version(root, NAME, 2, "german_amount_lgbm", Some(&test_key()));
    };
    refused("schema", tamper, |e| {
        assert!(
            matches!(e, RegistryError::SchemaChanged { serving: 1, .. }),
            "{e}"
        );
        assert_eq!(e.step(), LoadStep::Schema);
    });
    let dir = two_versions("schema-forced");
    tamper(&dir.0.join(NAME).join("2"));
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    reg.publish(NAME, 1, "t", PublishOptions::default())
        .expect("v1");
    let v2 = reg
        .publish(
            NAME,
            2,
            "t",
            PublishOptions {
                force_schema_change: true,
            },
        )
        .expect("forced");
    assert_eq!(v2.model().info().input_width, 60);
}

#[test]
fn a_version_in_the_wrong_directory_is_refused() {
    refused(
        "wrongdir",
        |d| {
            let v1 = d
                .parent()
                .expect("model dir")
                .join("1")
                .join("manifest.toml");
            std::fs::copy(v1, d.join("manifest.toml")).expect("copy");
        },
        |e| {
            assert!(
                matches!(
                    e,
                    RegistryError::ManifestLocation {
                        field: "version",
                        ..
                    }
                ),
                "{e}"
            )
        },
    );
}

fn toml_manifest(text: &str) -> tickscore::registry::Manifest {
    tickscore::registry::Manifest::parse(text).expect("manifest parses")
}

#[test]
fn manifest_bounds_are_enforced_on_every_row() {
    let dir = TempDir::new("bounds");
    let m = add_version(&dir.0, NAME, 1, "german_logreg", None);
    let first = m.input.features[0].clone();
    let mut m = m;
    m.input.bounds.push(tickscore::registry::manifest::Bound {
        feature: first,
        min: Some(0.0),
        max: Some(100.0),
    });
    test_key().sign(&mut m);
    std::fs::write(
        dir.0.join(NAME).join("1").join("manifest.toml"),
        m.to_toml(),
    )
    .expect("write");
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    let d = reg.serve(NAME, "t").expect("serve");
    let mut s = d.scorer().expect("scorer");
    let mut row = vec![0f32; 61];
    let mut out = [0f32];
    row[0] = 100.0;
    assert_eq!(s.score(&row, &mut out), Ok(1));
    row[0] = 100.5;
    assert_eq!(
        s.score(&row, &mut out),
        Err(ScoreError::OutOfBounds { row: 0, column: 0 })
    );
    let mut batch = vec![0f32; 61 * 3];
    batch[2 * 61] = -1.0;
    let mut outs = [0f32; 3];
    assert_eq!(
        s.score_batch(&batch, &mut outs),
        Err(ScoreError::OutOfBounds { row: 2, column: 0 })
    );
}

/// Producers score at full speed (two inline threads and one through the
/// worker ring) while the main thread swaps v1 ⇄ v2 ≥ 1,000 times. Every
/// result must equal, bit for bit, the score of the version it reports.
#[test]
fn hot_swap_stress_inline_and_ring() {
    const SWAPS: usize = 1_000;
    let dir = two_versions("stress");
    let e = Arc::new(expect());
    let reg = Registry::open(&dir.0, registry_options()).expect("open");
    reg.publish(NAME, 1, "t", PublishOptions::default())
        .expect("v1");
    reg.publish(NAME, 2, "t", PublishOptions::default())
        .expect("v2");
    let d = reg.deployment(NAME).expect("served");
    let engine = Engine::start_deployment(
        &d,
        &EngineConfig {
            workers: 1,
            cores: Some(vec![]),
            idle: IdleStrategy::BusySpin,
            ..Default::default()
        },
    )
    .expect("engine");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let check = |e: &Expect, i: usize, version: u64, score: f32| {
        let want = match version {
            1 => e.v1[i],
            2 => e.v2[i],
            v => panic!("unknown version {v}"),
        };
        assert_eq!(score.to_bits(), want.to_bits(), "row {i} v{version}");
    };
    let mut total = 0u64;
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..2 {
            let (d, e, stop, seen) = (d.clone(), e.clone(), stop.clone(), seen.clone());
            handles.push(scope.spawn(move || {
                let mut s = d.scorer().expect("scorer");
                let mut out = [0f32];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let i = n as usize % e.rows.len();
                    let v = s
                        .score(&e.rows[i], &mut out)
                        .expect("inline score never fails");
                    check(&e, i, v, out[0]);
                    seen[v as usize].fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                n
            }));
        }
        let (e2, stop2, seen2, engine) = (e.clone(), stop.clone(), seen.clone(), &engine);
        handles.push(scope.spawn(move || {
            let mut out = [0f32];
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let i = n as usize % e2.rows.len();
                let Ok(ticket) = engine.submit(&e2.rows[i]) else {
                    continue;
                };
                let times = engine
                    .wait(ticket, &mut out)
                    .expect("ring request never fails");
                check(&e2, i, times.model_version, out[0]);
                seen2[times.model_version as usize].fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            n
        }));
        for k in 0..SWAPS {
            let v = 1 + (k as u64 % 2);
            reg.publish(NAME, v, "stress", PublishOptions::default())
                .expect("swap");
            // Let some requests through on each version.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            total += h.join().expect("producer did not fail");
        }
    });
    let (v1, v2) = (
        seen[1].load(Ordering::Relaxed),
        seen[2].load(Ordering::Relaxed),
    );
    assert_eq!(v1 + v2, total);
    assert!(
        v1 > 1000 && v2 > 1000,
        "both versions scored: v1 {v1}, v2 {v2}"
    );
    let snap = engine.snapshot();
    assert_eq!(snap.counters.errors + snap.counters.panics, 0);
    let publishes = audit_lines(&dir.0)
        .iter()
        .filter(|l| l["action"] == "publish" && l["outcome"] == "ok")
        .count();
    assert_eq!(publishes, SWAPS + 2);
    eprintln!("hot swap: {SWAPS} swaps, {total} requests (v1 {v1}, v2 {v2}), 0 failed");
}

#[test]
fn the_watcher_publishes_new_versions_and_skips_refused_ones() {
    let dir = TempDir::new("watch");
    add_version(&dir.0, NAME, 1, "german_logreg", Some(&test_key()));
    let reg = Arc::new(Registry::open(&dir.0, registry_options()).expect("open"));
    let d = reg.serve(NAME, "t").expect("serve");
    let watcher = reg
        .watch(NAME, std::time::Duration::from_millis(5))
        .expect("watch");
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !cond() {
            assert!(t0.elapsed().as_secs() < 30, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    // An unsigned v2 appears: refused once, v1 keeps serving.
    add_version(&dir.0, NAME, 2, "german_mlp", None);
    wait_for("the refusal", &|| watcher.refused() == 1);
    assert_eq!(d.current().version(), 1);
    // A signed v3 appears: published.
    add_version(&dir.0, NAME, 3, "german_mlp", Some(&test_key()));
    wait_for("v3", &|| d.current().version() == 3);
    assert_eq!((watcher.published(), watcher.refused()), (1, 1));
    drop(watcher);
    let audit = audit_lines(&dir.0);
    assert!(audit
        .iter()
        .any(|l| l["actor"] == "watcher" && l["outcome"] == "refused" && l["version"] == 2));
}
