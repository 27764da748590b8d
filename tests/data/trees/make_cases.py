#!/usr/bin/env python3
"""Synthetic tree ensembles that exercise the ONNX-ML semantics converters
rarely emit, with onnxruntime's outputs as the reference.

Each case is a small random ensemble (fixed seed) over 4 features, written
as <case>.onnx with onnxruntime's full score output on the shared rows in
inputs.csv (integer-grid values so that thresholds tie, and NaNs) as
<case>.expected.csv. tests/tree_semantics.rs checks tickscore against them.
Node and tree ids are sparse. onnxruntime takes the first listed node of
each tree as its root, so nodes are listed in pre-order for its sake; the
ONNX-ML spec imposes no order, so all_modes_nan is also written with its
node list shuffled (all_modes_nan_shuffled.onnx, same expected outputs) to
check that tickscore does not depend on it.

    /tmp/ts-venv/bin/python tests/data/trees/make_cases.py   (models/requirements.txt)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
N_FEATURES = 4
# BRANCH_EQ is left out: onnxruntime 1.32 accepts it only where the false
# child is the next node (it folds EQ chains into set membership), which
# random trees do not satisfy. tickscore's EQ is covered by a unit test.
MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_NEQ"]


def random_trees(rng, n_trees, max_depth, n_outputs, modes, weights_per_leaf, positive):
    """Flat ONNX-ML node and weight lists for n_trees random trees."""
    nodes = []  # (tree, node, feature, mode, value, true, false, missing)
    weights = []  # (tree, node, target, weight)
    for t in range(n_trees):
        tree_id = 10 * (t + 1)
        next_id = [0]

        def new_id():
            next_id[0] += 1
            return 3 * next_id[0]

        def build(node_id, depth):
            if depth == max_depth or (depth > 0 and rng.random() < 0.3):
                nodes.append((tree_id, node_id, 0, "LEAF", 0.0, 0, 0, 0))
                targets = rng.choice(n_outputs, size=min(weights_per_leaf, n_outputs), replace=False)
                for target in sorted(targets):
                    # positive weights sum below 1 over the trees (PROBIT needs (0, 1))
                    w = rng.uniform(0.0, 1.0) / n_trees if positive else rng.normal(0.0, 1.0)
                    weights.append((tree_id, node_id, int(target), float(np.float32(w))))
                return
            left, right = new_id(), new_id()
            mode = modes[rng.integers(len(modes))]
            value = float(rng.integers(0, 8)) / 2.0
            nodes.append(
                (tree_id, node_id, int(rng.integers(N_FEATURES)), mode, value, left, right, int(rng.integers(2)))
            )
            build(left, depth + 1)
            build(right, depth + 1)

        build(new_id(), 0)
    return nodes, weights


def ensemble_node(op, nodes, weights, prefix, extra, as_tensor):
    cols = list(zip(*nodes))
    wcols = list(zip(*weights))
    attrs = {
        "nodes_treeids": list(cols[0]),
        "nodes_nodeids": list(cols[1]),
        "nodes_featureids": list(cols[2]),
        "nodes_modes": list(cols[3]),
        "nodes_truenodeids": list(cols[5]),
        "nodes_falsenodeids": list(cols[6]),
        "nodes_missing_value_tracks_true": list(cols[7]),
        f"{prefix}_treeids": list(wcols[0]),
        f"{prefix}_nodeids": list(wcols[1]),
        f"{prefix}_ids": list(wcols[2]),
    }
    values = np.array(cols[4], dtype=np.float32)
    ws = np.array(wcols[3], dtype=np.float32)
    if as_tensor:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(values, "nodes_values")
        # raw little-endian bytes for one, float_data for the other
        t = numpy_helper.from_array(ws, f"{prefix}_weights")
        attrs[f"{prefix}_weights_as_tensor"] = t
    else:
        attrs["nodes_values"] = values.tolist()
        attrs[f"{prefix}_weights"] = ws.tolist()
    base = extra.pop("base_values", None)
    if base is not None:
        if as_tensor:
            bt = helper.make_tensor("base_values", TensorProto.FLOAT, [len(base)], base)
            attrs["base_values_as_tensor"] = bt
        else:
            attrs["base_values"] = base
    attrs.update(extra)
    outputs = ["label", "scores"] if op == "TreeEnsembleClassifier" else ["scores"]
    return helper.make_node(op, ["x"], outputs, domain="ai.onnx.ml", name="ensemble", **attrs)


def make_model(node, n_outputs, classifier, ml_opset):
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, n_outputs])]
    if classifier:
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, [None]))
    graph = helper.make_graph(
        [node], "case", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, N_FEATURES])], outputs
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        producer_name="tickscore-make_cases",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cases():
    c = {}
    # name: (op, n_outputs, n_trees, depth, modes, weights per leaf, positive, extra, as_tensor)
    leq = ["BRANCH_LEQ"]
    labels3 = {"classlabels_int64s": [0, 1, 2]}
    labels2 = {"classlabels_int64s": [0, 1]}
    c["multiclass_softmax"] = ("C", 3, 6, 3, leq, 3, False, {**labels3, "post_transform": "SOFTMAX", "base_values": [0.1, -0.2, 0.3]}, False)
    c["multiclass_none"] = ("C", 3, 5, 3, leq, 2, False, {**labels3, "post_transform": "NONE"}, False)
    c["multiclass_logistic"] = ("C", 3, 5, 2, leq, 3, False, {**labels3, "post_transform": "LOGISTIC"}, False)
    c["multiclass_softmax_zero"] = ("C", 3, 4, 2, leq, 1, True, {**labels3, "post_transform": "SOFTMAX_ZERO"}, False)
    c["binary_one_class_none"] = ("C1", 2, 6, 3, leq, 1, True, {**labels2, "post_transform": "NONE"}, False)
    c["binary_one_class_logistic"] = ("C1", 2, 6, 3, leq, 1, False, {**labels2, "post_transform": "LOGISTIC", "base_values": [0.2]}, False)
    c["binary_one_class_probit"] = ("C1", 2, 4, 2, leq, 1, True, {**labels2, "post_transform": "PROBIT"}, False)
    c["binary_two_classes"] = ("C", 2, 5, 3, leq, 2, False, {**labels2, "post_transform": "LOGISTIC"}, False)
    c["binary_base_values_2"] = ("C1", 2, 5, 3, leq, 1, False, {**labels2, "post_transform": "LOGISTIC", "base_values": [0.25, -0.5]}, False)
    c["binary_class1_only_none"] = ("C1b", 2, 5, 3, leq, 1, False, {**labels2, "post_transform": "NONE"}, False)
    c["binary_class1_only_base2"] = ("C1b", 2, 5, 3, leq, 1, False, {**labels2, "post_transform": "LOGISTIC", "base_values": [0.25, -0.5]}, False)
    c["binary_two_classes_base2"] = ("C", 2, 5, 3, leq, 2, False, {**labels2, "post_transform": "NONE", "base_values": [0.25, -0.5]}, False)
    c["binary_one_class_mixed_none"] = ("C1", 2, 6, 3, leq, 1, False, {**labels2, "post_transform": "NONE", "base_values": [0.1]}, False)
    c["all_modes_nan"] = ("C1", 2, 8, 4, MODES, 1, False, {**labels2, "post_transform": "LOGISTIC"}, False)
    c["regressor_sum_2_targets"] = ("R", 2, 6, 3, leq, 2, False, {"n_targets": 2, "base_values": [1.5, -2.0]}, False)
    c["regressor_average"] = ("R", 1, 7, 3, leq, 1, False, {"n_targets": 1, "aggregate_function": "AVERAGE", "base_values": [0.5]}, False)
    c["regressor_min"] = ("R", 1, 6, 3, MODES[:4], 1, False, {"n_targets": 1, "aggregate_function": "MIN"}, False)
    c["regressor_max"] = ("R", 2, 6, 3, leq, 1, False, {"n_targets": 2, "aggregate_function": "MAX"}, False)
    c["regressor_logistic_1_target"] = ("R", 1, 5, 3, leq, 1, False, {"n_targets": 1, "post_transform": "LOGISTIC"}, False)
    c["regressor_softmax_3_targets"] = ("R", 3, 5, 3, leq, 2, False, {"n_targets": 3, "post_transform": "SOFTMAX"}, False)
    c["opset3_as_tensor_classifier"] = ("C", 3, 5, 3, MODES, 2, False, {**labels3, "post_transform": "SOFTMAX", "base_values": [0.0, 0.5, -0.5]}, True)
    c["opset3_as_tensor_regressor"] = ("R", 1, 5, 3, leq, 1, False, {"n_targets": 1, "base_values": [3.0]}, True)
    return c


def main():
    rng = np.random.default_rng(20261204)
    x = rng.integers(0, 8, size=(200, N_FEATURES)).astype(np.float32) / 2.0
    x[rng.random(x.shape) < 0.1] = np.nan
    x[::7, 0] += np.float32(0.25)  # some off-grid values too
    with (HERE / "inputs.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"f{j}" for j in range(N_FEATURES)])
        w.writerows([[format(float(v), ".9g") for v in row] for row in x])
    for name, (kind, n_out, n_trees, depth, modes, per_leaf, positive, extra, as_tensor) in cases().items():
        case_rng = np.random.default_rng(sum(map(ord, name)))  # stable per case (no hash())
        classifier = kind.startswith("C")
        # "C1"/"C1b": every weight on class id 0/1 (onnxruntime's binary case).
        nodes, weights = random_trees(case_rng, n_trees, depth, 1 if kind.startswith("C1") else n_out, modes, per_leaf, positive)
        if kind == "C1b":  # every weight on class id 1 instead
            weights = [(t, nd, 1, w) for (t, nd, _, w) in weights]
        op = "TreeEnsembleClassifier" if classifier else "TreeEnsembleRegressor"
        prefix = "class" if classifier else "target"
        node = ensemble_node(op, nodes, weights, prefix, dict(extra), as_tensor)
        model = make_model(node, n_out, classifier, 3 if as_tensor else 1)
        path = HERE / f"{name}.onnx"
        path.write_bytes(model.SerializeToString(deterministic=True))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        scores = np.asarray(sess.run(["scores"], {"x": x})[0], dtype=np.float32)
        with (HERE / f"{name}.expected.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([f"s{j}" for j in range(scores.shape[1])])
            w.writerows([[format(float(v), ".9g") for v in row] for row in scores])
        print(f"{name:32} {op:24} outputs {scores.shape[1]}  nodes {len(nodes)}")
        if name == "all_modes_nan":
            order = np.random.default_rng(7).permutation(len(nodes))
            shuffled = ensemble_node(op, [nodes[i] for i in order], weights, prefix, dict(extra), as_tensor)
            model = make_model(shuffled, n_out, classifier, 3 if as_tensor else 1)
            (HERE / f"{name}_shuffled.onnx").write_bytes(model.SerializeToString(deterministic=True))


if __name__ == "__main__":
    main()
