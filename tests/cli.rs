//! The `tickscore` binary end to end: `score` reproduces onnxruntime's
//! scores from the bundled CSV, and bad input stops it with an error that
//! names the line and column.

mod common;

use std::process::Command;

fn tickscore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tickscore"))
        .args(args)
        .output()
        .expect("runs the tickscore binary")
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickscore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn score_writes_one_full_precision_score_per_row() {
    for name in ["german_logreg", "german_xgboost"] {
        let model = common::model_path(name);
        let input = common::models_dir().join("data/german_test.csv");
        let out = tickscore(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("score"));
        let scores: Vec<f32> = lines.map(|l| l.parse().expect("a number")).collect();
        let reference = common::reference(name);
        assert_eq!(scores.len(), reference.len());
        for (i, (s, r)) in scores.iter().zip(&reference).enumerate() {
            assert!((s - r).abs() <= 1e-5, "{name} row {i}: {s} vs {r}");
        }
    }
}

#[test]
fn bad_rows_name_line_and_column_and_fail_the_run() {
    let model = common::model_path("german_logreg");
    let header =
        std::fs::read_to_string(common::models_dir().join("data/german_test.csv")).unwrap();
    let mut lines = header.lines();
    let (head, row) = (lines.next().unwrap(), lines.next().unwrap());

    let mut fields: Vec<&str> = row.split(',').collect();
    fields[4] = "12x";
    let bad_number = temp_file(
        "bad_number.csv",
        &format!("{head}\n{row}\n{}\n", fields.join(",")),
    );
    fields[4] = "NaN";
    let nan = temp_file("nan.csv", &format!("{head}\n{}\n", fields.join(",")));
    let short = temp_file("short.csv", &format!("{head}\n{row}\n1,2,3\n"));

    for (path, expect) in [
        (
            &bad_number,
            "line 3, column 5 (duration_in_month): not a number",
        ),
        (&nan, "line 2, column 5 (duration_in_month): NaN rejected"),
        (&short, "line 3: 3 fields, the model takes 61 features"),
    ] {
        let out = tickscore(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: accepted", path.display());
        assert!(stderr.contains(expect), "{}: {stderr}", path.display());
        assert!(out.stdout.is_empty(), "no partial output");
    }
}

#[test]
fn missing_model_fails_with_a_message() {
    let out = tickscore(&[
        "score",
        "--model",
        "/nonexistent.onnx",
        "--input",
        "/nonexistent.csv",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read model file"));
}

#[test]
fn eval_prints_the_metrics_and_writes_the_curves() {
    let out_dir = std::env::temp_dir().join(format!("tickscore-eval-{}", std::process::id()));
    let data = common::models_dir().join("data/german_test_labeled.csv");
    let out = tickscore(&[
        "eval",
        "--model",
        "german_lightgbm",
        "--data",
        data.to_str().unwrap(),
        "--label",
        "bad",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same figures scikit-learn recorded in models/metrics.json.
    for expected in [
        "AUC        0.798889",
        "KS         0.452381",
        "confusion  TP 43  FP 24  TN 186  FN 47",
        "Brier      0.159458",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    for svg in ["german_lightgbm-roc.svg", "german_lightgbm-ks.svg"] {
        let body = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(
            body.starts_with("<svg") && body.contains("<polyline"),
            "{svg}"
        );
    }
    let out = tickscore(&[
        "eval",
        "--model",
        "german_amount_lgbm",
        "--data",
        data.to_str().unwrap(),
        "--label",
        "ln_credit_amount",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("R²   0.569052"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tickscore(&[
        "eval",
        "--model",
        "german_lightgbm",
        "--data",
        data.to_str().unwrap(),
        "--label",
        "nope",
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// keygen → sign → verify → publish → rollback through the binary, a
/// tampered version refused with its step, and the bundled example
/// registry verifying against the committed development key.
#[test]
fn registry_commands_end_to_end() {
    let dir = common::TempDir::new("cli-registry");
    let root = dir.0.join("reg");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let ok = |args: &[&str]| {
        let out = tickscore(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let key = dir.0.join("k");
    ok(&["keygen", "--out", &s(&key)]);
    let again = tickscore(&["keygen", "--out", &s(&key)]);
    assert!(!again.status.success(), "keygen must not overwrite a key");
    for (v, m) in [(1, "german_logreg"), (2, "german_mlp")] {
        let vdir = root.join("credit").join(v.to_string());
        std::fs::create_dir_all(&vdir).unwrap();
        std::fs::copy(common::model_path(m), vdir.join("model.onnx")).unwrap();
        let out = ok(&[
            "sign",
            "--dir",
            &s(&vdir),
            "--key",
            &s(&key.with_extension("key")),
        ]);
        assert!(out.contains("signed by key"), "{out}");
    }
    let reg = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|c| c.to_string()).collect();
        v.extend([
            "--root".into(),
            s(&root),
            "--trusted".into(),
            s(&key.with_extension("pub")),
        ]);
        v
    };
    let run = |args: Vec<String>| tickscore(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(reg(&["verify", "--model", "credit", "--version", "2"]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("credit v2: OK"));
    assert!(run(reg(&[
        "registry",
        "publish",
        "--model",
        "credit",
        "--version",
        "1"
    ]))
    .status
    .success());
    assert!(run(reg(&[
        "registry",
        "publish",
        "--model",
        "credit",
        "--version",
        "2"
    ]))
    .status
    .success());
    assert_eq!(
        std::fs::read_to_string(root.join("credit/CURRENT")).unwrap(),
        "1\n2\n"
    );
    let out = run(reg(&["registry", "rollback", "--model", "credit"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back from v2 to v1"));
    assert_eq!(
        std::fs::read_to_string(root.join("credit/CURRENT")).unwrap(),
        "1\n"
    );
    // Tamper with v2: refused at the integrity step, CURRENT unchanged.
    let model = root.join("credit/2/model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let out = run(reg(&[
        "registry",
        "publish",
        "--model",
        "credit",
        "--version",
        "2",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused at step integrity"), "{err}");
    assert_eq!(
        std::fs::read_to_string(root.join("credit/CURRENT")).unwrap(),
        "1\n"
    );
    let audit = std::fs::read_to_string(root.join("audit.jsonl")).unwrap();
    assert!(audit
        .lines()
        .last()
        .unwrap()
        .contains("\"outcome\":\"refused\""));
    // Without --trusted (and without --allow-unsigned) nothing opens.
    let out = tickscore(&["registry", "list", "--root", &s(&root)]);
    assert!(!out.status.success());
    // The bundled example registry verifies against the dev key.
    let bundled = common::models_dir().join("registry");
    let audit = common::TempDir::new("cli-bundled-audit");
    for (m, v) in [
        ("german_credit", "1"),
        ("german_credit", "2"),
        ("german_credit_trees", "2"),
    ] {
        // Audit into a temp copy so the repository stays clean.
        let copy = audit.0.join(m).join(v);
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["model.onnx", "manifest.toml"] {
            std::fs::copy(bundled.join(m).join(v).join(f), copy.join(f)).unwrap();
        }
        let out = tickscore(&[
            "verify",
            "--root",
            &s(&audit.0),
            "--trusted",
            &s(&common::models_dir().join("keys/dev.pub")),
            "--model",
            m,
            "--version",
            v,
        ]);
        assert!(
            out.status.success(),
            "{m} v{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Run the binary, killing it (and failing) if it takes longer than
/// `limit`: a hang must fail the suite, not stall it.
fn tickscore_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickscore"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs the tickscore binary");
    let start = std::time::Instant::now();
    while child.try_wait().expect("child status").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("tickscore {args:?} ran over {limit:?} (hung?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("child output")
}

/// The main job, briefly: every bundled model scores, inline and through
/// the ring, and its report files are written. (A main job that pinned its
/// thread before starting the engine once put the busy-spinning worker on
/// the same core and took minutes per model.)
#[test]
fn the_main_job_runs_every_model_through_both_paths() {
    let out_dir = std::env::temp_dir().join(format!("tickscore-run-{}", std::process::id()));
    let out = tickscore_within(
        &[
            "run",
            "--seconds",
            "0.05",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        std::time::Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in common::bundled_models() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
        assert!(!line.contains("FAILED"), "{line}");
        for ext in ["-inline.hgrm", "-ring.hgrm", ".svg", ".json"] {
            let f = out_dir.join(format!("{name}{ext}"));
            assert!(f.is_file(), "{} missing", f.display());
        }
        // Not a speed target: a sanity bound ~30x above the 0.5-4 µs this
        // takes, which a worker time-sharing the caller's core cannot meet
        // (the caller spins ~200 µs before it parks and lets the worker
        // run: 200+ µs a request that way).
        let json = std::fs::read_to_string(out_dir.join(format!("{name}.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let ring_p50 = v["ring"]["p50_ns"].as_u64().expect("ring p50");
        assert!(
            ring_p50 < 100_000,
            "{name}: ring p50 {ring_p50} ns: worker and caller share a core?"
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `bench --path compare` prints both arms and the added latency, and its
/// JSON carries them; `--aa-control` runs two inline arms.
#[test]
fn bench_compare_reports_the_added_latency() {
    let out_dir = std::env::temp_dir().join(format!("tickscore-compare-{}", std::process::id()));
    for extra in [
        &[][..],
        &["--reclaim-after", "2"][..],
        &["--aa-control"][..],
    ] {
        let mut args = vec![
            "bench",
            "--model",
            "german_logreg",
            "--path",
            "compare",
            "--rate",
            "100000",
            "--requests",
            "20000",
            "--block",
            "1000",
            "--idle",
            "busy",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = tickscore_within(&args, std::time::Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for label in ["inline", "ring", "added"] {
            assert!(
                stdout.lines().any(|l| l.trim_start().starts_with(label)),
                "{label}:\n{stdout}"
            );
        }
        let json =
            std::fs::read_to_string(out_dir.join("german_logreg-compare-open.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["inline"]["count"], 20_000, "{json}");
        assert_eq!(v["ring"]["count"], 20_000, "{json}");
        assert!(v["added_p50_ns"].is_number(), "{json}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
