#!/usr/bin/env python3
"""Build tickscore's bundled German-credit models and their reference outputs.

Reproducible: fixed seeds, single-threaded trainers, a stratified 70/30
split, and ONNX graphs canonicalised after conversion (node names, opset
order, doc strings), so that running this script twice gives byte-identical
files. Pinned versions: models/requirements.txt.

    python3 -m venv /tmp/ts-venv && /tmp/ts-venv/bin/pip install -r models/requirements.txt
    /tmp/ts-venv/bin/python models/make_models.py

Writes (all committed; the Rust tests never run Python):
    models/data/german_test.csv          test-split features, header = feature names in model order
    models/data/german_test_labels.csv   test-split labels (bad = 1)
    models/data/german_test_nan.csv      the test split with ~1 value in 6 set to NaN (deterministic)
    models/data/german_wide_test.csv     the same rows in the 119-feature encoding (+ _nan variant)
    models/<name>/model.onnx             the model
    models/<name>/reference.csv          score per test row, recorded from onnxruntime
                                         (P(bad) for classifiers, the prediction for regressors)
    models/<name>/reference_nan.csv      the same on the NaN rows (tree models only: they route
                                         NaN as "missing"; the others would only propagate it)
    models/<name>/target.csv             regressors: the true target per test row
    models/metrics.json                  AUC and KS (classifiers) or R² (regressors) of the
                                         reference scores, computed by scikit-learn

Every model reads its features by name (metadata `tickscore.feature_names`)
from the columns of german_test.csv: the classifiers read all 61, the
regressor the 60 other than the one it predicts.

One model is wider: german_wide_xgboost reads 119 features (the row width
the runtime's latency targets are stated for) from models/data/german_wide_test.csv:
the 61 above, then a feature-engineered block computed from the 7 numeric
attributes (see wide_features): for duration_in_month, credit_amount and
age_in_years, 10
decile-bin indicators each (cut points from the training split) = 30; the
21 pairwise products of the 7 numeric attributes; and ln(1 + x) of each = 7.
61 + 30 + 21 + 7 = 119.

Feature encoding (stable, documented): the 20 attributes in the CSV's column
order; a numeric attribute is one feature with its raw value; a categorical
attribute becomes one 0/1 feature per level, levels in sorted (byte) order,
named `<attribute>=<level>`. 7 numeric + 54 levels = 61 features.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from pathlib import Path

# OpenBLAS picks its kernels by CPU: on an Intel Xeon its AVX-512 kernels
# trained a logistic regression and MLP that differ in the last bits from
# the ones an AMD EPYC (Haswell kernels) trained. Fix the kernel family so
# that every x86-64 machine rebuilds the same bytes (must be set before numpy
# loads OpenBLAS).
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "german_credit.csv"
DATA_SHA256 = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"
SEED = 20261204
TARGET = "creditability"
CORE_OPSET = 17
ML_OPSET = 3
# onnxmltools 1.16 converts LightGBM and XGBoost up to opset 15 only.
TREE_CORE_OPSET = 15
REGRESSION_TARGET = "credit_amount"
TREE_MODELS = (
    "german_lightgbm",
    "german_xgboost",
    "german_forest",
    "german_gboost",
    "german_amount_lgbm",
    "german_wide_xgboost",
)


def load_dataset():
    digest = hashlib.sha256(DATA.read_bytes()).hexdigest()
    if digest != DATA_SHA256:
        sys.exit(f"{DATA}: sha256 {digest} != expected {DATA_SHA256}")
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    attributes = [c for c in rows[0].keys() if c != TARGET]
    numeric = []
    for a in attributes:
        try:
            for r in rows:
                float(r[a])
            numeric.append(a)
        except ValueError:
            pass
    names: list[str] = []
    encoders = []
    for a in attributes:
        if a in numeric:
            names.append(a)
            encoders.append((a, None))
        else:
            levels = sorted({r[a] for r in rows})
            names.extend(f"{a}={lv}" for lv in levels)
            encoders.append((a, levels))
    x = np.zeros((len(rows), len(names)), dtype=np.float32)
    for i, r in enumerate(rows):
        j = 0
        for a, levels in encoders:
            if levels is None:
                x[i, j] = float(r[a])
                j += 1
            else:
                x[i, j + levels.index(r[a])] = 1.0
                j += len(levels)
    y = np.array([1 if r[TARGET] == "bad" else 0 for r in rows], dtype=np.int64)
    return x, y, names


def canonicalise(model, names: list[str], kind: str, score: str):
    """Make converter output deterministic and self-describing."""
    g = model.graph
    for i, node in enumerate(g.node):
        node.name = f"n{i}_{node.op_type}"
        node.doc_string = ""
    g.doc_string = ""
    g.name = kind
    model.doc_string = ""
    model.producer_name = "tickscore-make_models"
    model.producer_version = "1"
    model.domain = ""
    model.model_version = 1
    # skl2onnx can list a domain twice; keep the highest version per domain.
    highest: dict[str, int] = {}
    for o in model.opset_import:
        highest[o.domain] = max(o.version, highest.get(o.domain, 0))
    opsets = sorted(highest.items())
    del model.opset_import[:]
    for domain, version in opsets:
        o = model.opset_import.add()
        o.domain = domain
        o.version = version
    del model.metadata_props[:]
    for key, value in (
        ("tickscore.feature_names", "\n".join(names)),
        ("tickscore.score", score),
        ("tickscore.model_kind", kind),
    ):
        p = model.metadata_props.add()
        p.key = key
        p.value = value
    return model


def convert_sklearn_model(est, width: int):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        est,
        initial_types=[("input", FloatTensorType([None, width]))],
        options={id(est): {"zipmap": False}},
        target_opset={"": CORE_OPSET, "ai.onnx.ml": ML_OPSET},
    )


def build_models(x_train, y_train, width):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    models = {}

    logreg = Pipeline(
        [("scale", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))]
    )
    logreg.fit(x_train, y_train)
    models["german_logreg"] = (convert_sklearn_model(logreg, width), "logistic regression")
    # Random forest and gradient boosting: scikit-learn's own tree ensembles.
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=100, max_depth=8, min_samples_leaf=3, random_state=SEED % 2**31, n_jobs=1
    )
    forest.fit(x_train, y_train)
    models["german_forest"] = (convert_sklearn_model(forest, width), "random forest 100 trees")
    boost = GradientBoostingClassifier(
        n_estimators=150, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=SEED % 2**31
    )
    boost.fit(x_train, y_train)
    models["german_gboost"] = (convert_sklearn_model(boost, width), "sklearn gradient boosting 150")

    mlp = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "mlp",
                MLPClassifier(
                    hidden_layer_sizes=(64, 32),
                    # Strong L2: 700 training rows, 6k weights.
                    alpha=10.0,
                    max_iter=1000,
                    random_state=SEED % 2**31,
                ),
            ),
        ]
    )
    mlp.fit(x_train, y_train)
    models["german_mlp"] = (convert_sklearn_model(mlp, width), "mlp 61-64-32-1")

    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    gbm = lgb.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=10,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=SEED % 2**31,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    gbm.fit(x_train, y_train)
    models["german_lightgbm"] = (
        convert_lightgbm(
            gbm,
            initial_types=[("input", FloatTensorType([None, width]))],
            zipmap=False,
            target_opset=TREE_CORE_OPSET,
        ),
        "lightgbm 300 trees",
    )

    models["german_xgboost"] = (xgboost_model(x_train, y_train, width), "xgboost 100 trees depth 4")
    return models


def build_regressor(x_train, names):
    """LightGBM regression of ln(credit_amount) on the other 60 features."""
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    target = names.index(REGRESSION_TARGET)
    keep = [j for j in range(len(names)) if j != target]
    reg = lgb.LGBMRegressor(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=10,
        random_state=SEED % 2**31,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    reg.fit(x_train[:, keep], np.log(x_train[:, target]))
    onx = convert_lightgbm(
        reg,
        initial_types=[("input", FloatTensorType([None, len(keep)]))],
        target_opset=TREE_CORE_OPSET,
    )
    return onx, keep, target


WIDE_BINNED = ("duration_in_month", "credit_amount", "age_in_years")


def wide_features(x: np.ndarray, names: list[str], x_train: np.ndarray):
    """The 119-feature encoding (see the module doc); cut points from x_train."""
    numeric = [j for j, n in enumerate(names) if "=" not in n]
    assert len(numeric) == 7, numeric
    cols = [x]
    wide_names = list(names)
    for attr in WIDE_BINNED:
        j = names.index(attr)
        cuts = np.quantile(x_train[:, j].astype(np.float64), np.arange(1, 10) / 10)
        b = np.searchsorted(cuts, x[:, j].astype(np.float64), side="left")
        onehot = np.zeros((len(x), 10), dtype=np.float32)
        onehot[np.arange(len(x)), b] = 1.0
        cols.append(onehot)
        wide_names.extend(f"{attr}:decile{k}" for k in range(10))
    for a in range(len(numeric)):
        for c in range(a + 1, len(numeric)):
            ja, jc = numeric[a], numeric[c]
            cols.append((x[:, ja] * x[:, jc]).astype(np.float32)[:, None])
            wide_names.append(f"{names[ja]}*{names[jc]}")
    for j in numeric:
        cols.append(np.log1p(x[:, j].astype(np.float64)).astype(np.float32)[:, None])
        wide_names.append(f"ln1p({names[j]})")
    wide = np.hstack(cols).astype(np.float32)
    assert wide.shape[1] == 119 == len(wide_names), wide.shape
    return wide, wide_names


def xgboost_model(x_train, y_train, width):
    """XGBoost, 100 trees of depth 4, as ONNX (german_xgboost and german_wide_xgboost)."""
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    xg = xgb.XGBClassifier(
        n_estimators=100,
        max_depth=4,
        learning_rate=0.1,
        subsample=0.8,
        colsample_bytree=0.8,
        tree_method="exact",
        random_state=SEED % 2**31,
        n_jobs=1,
    )
    xg.fit(x_train, y_train)
    return convert_xgboost(
        xg,
        initial_types=[("input", FloatTensorType([None, width]))],
        target_opset=TREE_CORE_OPSET,
    )


def with_nans(x: np.ndarray) -> np.ndarray:
    """Deterministically set about one value in six to NaN."""
    out = x.copy()
    rows, cols = np.indices(out.shape)
    out[(rows * 7 + cols * 13) % 6 == 0] = np.nan
    return out


def classification_extras(y, scores, threshold=0.5):
    """scikit-learn's figures for the metrics `tickscore eval` prints.

    Positive prediction: score >= threshold. Calibration: the rows sorted by
    score (stable), split into 10 groups as np.array_split does.
    """
    from sklearn.metrics import (
        brier_score_loss,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
    )

    pred = (scores >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    order = np.argsort(scores, kind="stable")
    deciles = [
        {"count": int(len(g)), "mean_score": float(scores[g].mean()), "observed_rate": float(y[g].mean())}
        for g in np.array_split(order, 10)
    ]
    return {
        "threshold": threshold,
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "confusion": {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)},
        "brier": float(brier_score_loss(y, scores)),
        "log_loss": float(log_loss(y, scores)),
        "calibration_deciles": deciles,
    }


def psi(baseline: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the baseline's decile bins.

    Edges: np.quantile(baseline, [0.1 .. 0.9]) (linear interpolation); a value
    goes to the first bin whose edge is >= it (np.searchsorted, side left);
    proportions are floored at 1e-4 so that an empty bin stays finite.
    """
    edges = np.quantile(baseline, np.arange(1, bins) / bins)
    b = np.bincount(np.searchsorted(edges, baseline, side="left"), minlength=bins) / len(baseline)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=bins) / len(current)
    b, c = np.maximum(b, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - b) * np.log(c / b)))


def predict(session, x: np.ndarray) -> np.ndarray:
    """The score: P(class 1) from a probability output, else the only output."""
    outs = session.get_outputs()
    prob = [o.name for o in outs if "prob" in o.name]
    name = prob[0] if prob else outs[0].name
    result = np.asarray(session.run([name], {session.get_inputs()[0].name: x})[0], dtype=np.float32)
    return result[:, 1] if prob else result.reshape(len(x), -1)[:, 0]


def write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def fmt(v) -> str:
    # 9 significant digits round-trip every float32 exactly.
    return format(float(v), ".9g")


def main() -> None:
    import onnx
    import onnxruntime as ort
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import train_test_split

    x, y, names = load_dataset()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=SEED % 2**31
    )
    data_dir = HERE / "data"
    write_csv(data_dir / "german_test.csv", names, ([fmt(v) for v in row] for row in x_test))
    write_csv(data_dir / "german_test_labels.csv", ["bad"], ([int(v)] for v in y_test))

    # Features, the label and the regression target in one file, for `tickscore eval`.
    amount = names.index(REGRESSION_TARGET)
    write_csv(
        data_dir / "german_test_labeled.csv",
        names + ["bad", "ln_credit_amount"],
        (
            [fmt(v) for v in row] + [int(y), format(float(np.log(np.float64(row[amount]))), ".17g")]
            for row, y in zip(x_test, y_test)
        ),
    )
    x_test_nan = with_nans(x_test)
    write_csv(data_dir / "german_test_nan.csv", names, ([fmt(v) for v in row] for row in x_test_nan))

    # name -> (onnx model, kind, feature columns used, score description, regression target)
    specs = {
        name: (model, kind, list(range(len(names))), "P(bad): probabilities column 1", None)
        for name, (model, kind) in build_models(x_train, y_train, len(names)).items()
    }
    reg, keep, target = build_regressor(x_train, names)
    specs["german_amount_lgbm"] = (reg, "lightgbm regressor 200 trees", keep, "ln(credit_amount)", target)

    # The 119-feature model, with its own test file (same rows, wider encoding).
    x_wide_train, wide_names = wide_features(x_train, names, x_train)
    x_wide_test, _ = wide_features(x_test, names, x_train)
    x_wide_test_nan = with_nans(x_wide_test)
    write_csv(data_dir / "german_wide_test.csv", wide_names, ([fmt(v) for v in row] for row in x_wide_test))
    write_csv(
        data_dir / "german_wide_test_nan.csv", wide_names, ([fmt(v) for v in row] for row in x_wide_test_nan)
    )
    specs["german_wide_xgboost"] = (
        xgboost_model(x_wide_train, y_train, len(wide_names)),
        "xgboost 100 trees depth 4, 119 features",
        list(range(len(wide_names))),
        "P(bad): probabilities column 1",
        None,
    )
    # name -> (test features, the same with NaNs, feature names) where not the 61 columns
    matrices = {"german_wide_xgboost": (x_wide_test, x_wide_test_nan, wide_names)}

    metrics = {}
    for name, (model, kind, cols, score, target) in specs.items():
        xt, xt_nan, nm = matrices.get(name, (x_test, x_test_nan, names))
        model = canonicalise(model, [nm[j] for j in cols], kind, score)
        onnx.checker.check_model(model)
        out_dir = HERE / name
        out_dir.mkdir(exist_ok=True)
        path = out_dir / "model.onnx"
        path.write_bytes(model.SerializeToString(deterministic=True))

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        p = predict(session, xt[:, cols])
        header = ["p_bad"] if target is None else ["score"]
        write_csv(out_dir / "reference.csv", header, ([fmt(v)] for v in p))
        if name in TREE_MODELS:
            p_nan = predict(session, xt_nan[:, cols])
            write_csv(out_dir / "reference_nan.csv", header, ([fmt(v)] for v in p_nan))
            # Population stability of the scores when ~1 value in 6 goes missing.
            psi_nan = psi(p.astype(np.float64), p_nan.astype(np.float64))

        scores = p.astype(np.float64)
        if target is None:
            fpr, tpr, _ = roc_curve(y_test, scores)
            metrics[name] = {
                "kind": kind,
                "auc": float(roc_auc_score(y_test, scores)),
                "ks": float(np.max(tpr - fpr)),
                "rows": int(len(y_test)),
            }
            metrics[name].update(classification_extras(y_test, scores))
            summary = f"AUC {metrics[name]['auc']:.4f}  KS {metrics[name]['ks']:.4f}"
        else:
            from sklearn.metrics import r2_score

            truth = np.log(x_test[:, target].astype(np.float64))
            # Full float64 precision: R² is checked against scikit-learn to 1e-9.
            write_csv(out_dir / "target.csv", ["target"], ([format(v, ".17g")] for v in truth))
            from sklearn.metrics import mean_absolute_error, mean_squared_error

            metrics[name] = {
                "kind": kind,
                "r2": float(r2_score(truth, scores)),
                "mae": float(mean_absolute_error(truth, scores)),
                "mse": float(mean_squared_error(truth, scores)),
                "rows": int(len(truth)),
            }
            summary = f"R2 {metrics[name]['r2']:.4f}"
        if name in TREE_MODELS:
            metrics[name]["psi_test_vs_nan_rows"] = float(psi_nan)
        print(f"{name:20} {kind:32} {summary}")

    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.sync()


if __name__ == "__main__":
    main()
