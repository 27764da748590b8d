//! ONNX-ML tree ensembles (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`,
//! ai.onnx.ml opsets 1 and 3), with onnxruntime's semantics.
//!
//! tract's own classifier is ~250× slower than onnxruntime and allocates per
//! tree, and tract has no regressor; tickscore replaces both. A parsed
//! [`TreeEnsemble`] is a flat array of 16-byte nodes, each tree laid out in
//! pre-order (the true child directly follows its parent), thresholds as f32
//! exactly as stored. Parsing validates every id, mode and target; the
//! layout guarantees that every child index is greater than its parent's and
//! inside the array, so a walk always ends at a leaf after at most
//! `nodes.len()` steps, and no malformed file can make it read out of bounds.
//!
//! The same [`TreeEnsemble::eval_row`] serves tract's tier (as a tract op,
//! [`TreeEnsembleOp`]) and the lowered tier (a plan step).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// Register tickscore's tree operators with tract's ONNX registry.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register
        .insert("TreeEnsembleClassifier", |_, node| parse(node, true));
    onnx.op_register
        .insert("TreeEnsembleRegressor", |_, node| parse(node, false));
}

// Node modes (3 bits in `Node::packed`).
const LEQ: u32 = 0;
const LT: u32 = 1;
const GTE: u32 = 2;
const GT: u32 = 3;
const EQ: u32 = 4;
const NEQ: u32 = 5;
const LEAF: u32 = 6;
/// Marker for "read the mode from each node".
const ANY_MODE: u32 = 7;
/// Trees walked in lockstep.
const LANES: usize = 8;

const FEATURE_BITS: u32 = 27;
const FEATURE_MASK: u32 = (1 << FEATURE_BITS) - 1;
const MISSING_TRUE: u32 = 1 << 31;
/// A node waiting to be placed: (ONNX node id, (parent index, is the true
/// child) to patch, depth).
type Pending = (i64, Option<(usize, bool)>, u32);

/// Most nodes an ensemble may have (indices are u32).
const MAX_NODES: usize = 1 << 26;

/// A node while the ensemble is laid out (both children explicit).
#[derive(Debug, Clone, Copy, PartialEq)]
struct BuildNode {
    threshold: f32,
    /// feature (27 bits) | mode << 27 (3 bits) | missing-tracks-true << 31
    packed: u32,
    next_true: u32,
    next_false: u32,
}

impl BuildNode {
    #[inline(always)]
    fn mode(&self) -> u32 {
        (self.packed >> FEATURE_BITS) & 7
    }
}

/// One node as walked: 12 bytes. Pre-order layout puts a branch's true
/// child right after it, so only the false child is stored. A leaf
/// compares `x <= NaN` (always false, NaN included, missing-tracks-true
/// clear) and its false child is itself: a walk may take more steps than
/// a path is long without leaving it, which lets trees be walked in
/// lockstep, branch-free.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f32,
    /// feature (27 bits) | mode << 27 (3 bits) | missing-tracks-true << 31
    packed: u32,
    next_false: u32,
}

impl Node {
    #[inline(always)]
    fn mode(&self) -> u32 {
        (self.packed >> FEATURE_BITS) & 7
    }
    #[inline(always)]
    fn feature(&self) -> usize {
        (self.packed & FEATURE_MASK) as usize
    }
}

/// How leaf weights of different trees combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum (classifiers always sum).
    Sum,
    /// Mean over trees.
    Average,
    /// Smallest.
    Min,
    /// Largest.
    Max,
}

/// Transform applied to the aggregated scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    /// Raw scores.
    None,
    /// 1 / (1 + e^-x) per score.
    Logistic,
    /// Softmax over the scores.
    Softmax,
    /// Softmax over the non-zero scores.
    SoftmaxZero,
    /// √2 · erfinv(2x − 1) per score.
    Probit,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Regressor,
    Classifier {
        labels: Box<[i64]>,
        /// Two labels and one class id carrying weights (ORT's binary case).
        binary_case: bool,
        all_positive: bool,
    },
}

/// A validated, flattened tree ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    nodes: Box<[Node]>,
    roots: Box<[u32]>,
    leaf_target: Box<[u32]>,
    leaf_weight: Box<[f32]>,
    /// Per node: (start, count) of its weights in `leaf_*` (leaves only).
    leaf_span: Box<[(u32, u32)]>,
    /// Per group of `LANES` trees: the longest root-to-leaf path.
    group_depth: Box<[u32]>,
    /// The ensemble's tree index of each entry of `roots`. Trees are walked
    /// sorted by depth (so a lockstep group wastes few steps on shallow
    /// trees) and their leaves summed in the ensemble's order (so results
    /// are bit-identical to onnxruntime's).
    tree_of_root: Box<[u32]>,
    /// Sorting changed nothing: leaves are added as each group is walked.
    walk_in_tree_order: bool,
    /// The comparison every branch uses, when they all use the same one.
    uniform_mode: Option<u32>,
    /// 1 + the largest feature index any node reads.
    n_features: usize,
    /// Classes (classifier) or targets (regressor).
    n_outputs: usize,
    base_values: Box<[f32]>,
    aggregate: Aggregate,
    post: PostTransform,
    kind: Kind,
}

/// Why a tree ensemble was refused; travels inside tract's error chain and
/// becomes [`LoadError::InvalidTreeEnsemble`](crate::LoadError::InvalidTreeEnsemble).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TreeError(pub String);

fn err<T>(msg: String) -> TractResult<T> {
    Err(TreeError(msg).into())
}

fn parse(node: &NodeProto, classifier: bool) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ensemble = Arc::new(TreeEnsemble::from_node(node, classifier)?);
    Ok((
        expand(TreeEnsembleExpansion {
            ensemble,
            classifier,
        }),
        vec![],
    ))
}

/// Read a float list given as `name` or as `name_as_tensor` (opset 3).
fn floats(node: &NodeProto, name: &str) -> TractResult<Option<Vec<f32>>> {
    if let Some(v) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(v));
    }
    let tensor_name = format!("{name}_as_tensor");
    let Some(t) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? else {
        return Ok(None);
    };
    // FLOAT (1) and DOUBLE (11), inline or raw little-endian; never external.
    let raw = &t.raw_data;
    let v: Vec<f32> = match t.data_type {
        1 if !t.float_data.is_empty() => t.float_data.clone(),
        1 if raw.len() % 4 == 0 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        11 if !t.double_data.is_empty() => t.double_data.iter().map(|&d| d as f32).collect(),
        11 if raw.len() % 8 == 0 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return err(format!(
                "{tensor_name}: unsupported tensor type {other} or size"
            ))
        }
    };
    Ok(Some(v))
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
}

impl TreeEnsemble {
    /// Parse and validate a `TreeEnsembleClassifier` or `TreeEnsembleRegressor` node.
    pub fn from_node(node: &NodeProto, classifier: bool) -> TractResult<TreeEnsemble> {
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let feature_ids = ints(node, "nodes_featureids")?;
        let true_ids = ints(node, "nodes_truenodeids")?;
        let false_ids = ints(node, "nodes_falsenodeids")?;
        let missing = ints(node, "nodes_missing_value_tracks_true")?;
        let values = floats(node, "nodes_values")?.unwrap_or_default();
        let modes: Vec<String> = node
            .get_attr_opt_vec::<String>("nodes_modes")?
            .unwrap_or_default();
        let n = tree_ids.len();
        if n == 0 {
            return err("tree ensemble has no nodes".into());
        }
        if n > MAX_NODES {
            return err(format!(
                "tree ensemble has {n} nodes, more than {MAX_NODES}"
            ));
        }
        for (what, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
            ("nodes_values", values.len()),
            ("nodes_modes", modes.len()),
        ] {
            if len != n {
                return err(format!("{what} has {len} entries for {n} nodes"));
            }
        }
        if !missing.is_empty() && missing.len() != n {
            return err(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                missing.len()
            ));
        }

        let prefix = if classifier { "class" } else { "target" };
        let w_trees = ints(node, &format!("{prefix}_treeids"))?;
        let w_nodes = ints(node, &format!("{prefix}_nodeids"))?;
        let w_ids = ints(node, &format!("{prefix}_ids"))?;
        let w_values = floats(node, &format!("{prefix}_weights"))?.unwrap_or_default();
        let m = w_trees.len();
        if w_nodes.len() != m || w_ids.len() != m || w_values.len() != m {
            return err(format!(
                "{prefix}_* weight attributes have different lengths"
            ));
        }

        let (n_outputs, kind, aggregate) = if classifier {
            let labels: Vec<i64> = match node.get_attr_opt_vec::<i64>("classlabels_int64s")? {
                Some(l) => l,
                // String labels: the label output carries class indices.
                None => match node.get_attr_opt_vec::<String>("classlabels_strings")? {
                    Some(s) => (0..s.len() as i64).collect(),
                    None => return err("classifier without class labels".into()),
                },
            };
            if labels.len() < 2 {
                return err(format!("classifier with {} class label(s)", labels.len()));
            }
            let mut ids: Vec<i64> = w_ids.clone();
            ids.sort_unstable();
            ids.dedup();
            let kind = Kind::Classifier {
                binary_case: labels.len() == 2 && ids.len() == 1,
                all_positive: w_values.iter().all(|&w| w >= 0.0),
                labels: labels.clone().into(),
            };
            (labels.len(), kind, Aggregate::Sum)
        } else {
            let n_targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1);
            if !(1..=1 << 20).contains(&n_targets) {
                return err(format!("n_targets {n_targets} out of range"));
            }
            let aggregate = match node
                .get_attr_opt::<String>("aggregate_function")?
                .as_deref()
            {
                None | Some("SUM") => Aggregate::Sum,
                Some("AVERAGE") => Aggregate::Average,
                Some("MIN") => Aggregate::Min,
                Some("MAX") => Aggregate::Max,
                Some(other) => return err(format!("unknown aggregate_function {other:?}")),
            };
            (n_targets as usize, Kind::Regressor, aggregate)
        };
        let post = match node.get_attr_opt::<String>("post_transform")?.as_deref() {
            None | Some("NONE") => PostTransform::None,
            Some("LOGISTIC") => PostTransform::Logistic,
            Some("SOFTMAX") => PostTransform::Softmax,
            Some("SOFTMAX_ZERO") => PostTransform::SoftmaxZero,
            Some("PROBIT") => PostTransform::Probit,
            Some(other) => return err(format!("unknown post_transform {other:?}")),
        };
        let base_values = floats(node, "base_values")?.unwrap_or_default();
        if !base_values.is_empty() && base_values.len() != n_outputs {
            let binary_single = classifier && n_outputs == 2 && base_values.len() == 1;
            if !binary_single {
                return err(format!(
                    "{} base_values for {n_outputs} outputs",
                    base_values.len()
                ));
            }
        }

        // Leaf weights by (tree, node).
        let mut weights: HashMap<(i64, i64), Vec<(u32, f32)>> = HashMap::new();
        for i in 0..m {
            let target = w_ids[i];
            if target < 0 || target as usize >= n_outputs {
                return err(format!(
                    "{prefix}_ids[{i}] = {target} outside 0..{n_outputs}"
                ));
            }
            weights
                .entry((w_trees[i], w_nodes[i]))
                .or_default()
                .push((target as u32, w_values[i]));
        }

        // Nodes by tree, then by id.
        let mut trees: BTreeMap<i64, HashMap<i64, usize>> = BTreeMap::new();
        for i in 0..n {
            if trees
                .entry(tree_ids[i])
                .or_default()
                .insert(node_ids[i], i)
                .is_some()
            {
                return err(format!(
                    "tree {} has node id {} twice",
                    tree_ids[i], node_ids[i]
                ));
            }
        }

        let mut out = TreeEnsemble {
            nodes: Box::new([]),
            roots: Box::new([]),
            leaf_target: Box::new([]),
            leaf_weight: Box::new([]),
            leaf_span: Box::new([]),
            group_depth: Box::new([]),
            tree_of_root: Box::new([]),
            walk_in_tree_order: true,
            uniform_mode: None,
            // Leaves read feature 0 (and ignore it): at least one feature.
            n_features: 1,
            n_outputs,
            base_values: base_values.into(),
            aggregate,
            post,
            kind,
        };
        let mut nodes: Vec<BuildNode> = Vec::with_capacity(n);
        let mut roots = Vec::with_capacity(trees.len());
        let mut depths: Vec<u32> = Vec::with_capacity(trees.len());
        let mut leaf_span: Vec<(u32, u32)> = Vec::with_capacity(n);
        let mut modes_seen: Vec<u32> = Vec::new();
        let (mut leaf_target, mut leaf_weight) = (Vec::new(), Vec::new());
        let mut used_weights = 0usize;
        for (&tree, by_id) in &trees {
            // The root is the node no other node of the tree points to.
            let mut is_child: HashMap<i64, ()> = HashMap::new();
            for &i in by_id.values() {
                if modes[i] != "LEAF" {
                    is_child.insert(true_ids[i], ());
                    is_child.insert(false_ids[i], ());
                }
            }
            let candidates: Vec<i64> = by_id
                .keys()
                .copied()
                .filter(|id| !is_child.contains_key(id))
                .collect();
            let root_id = match candidates.as_slice() {
                [one] => *one,
                [] => return err(format!("tree {tree} has no root (cyclic)")),
                _ => return err(format!("tree {tree} has {} roots", candidates.len())),
            };
            roots.push(nodes.len() as u32);
            // Iterative pre-order walk; `patch` remembers where to write a
            // child's new index once it is placed.
            let mut stack: Vec<Pending> = vec![(root_id, None, 0)];
            let mut placed = 0usize;
            let mut tree_depth = 0u32;
            while let Some((id, patch, depth)) = stack.pop() {
                let Some(&i) = by_id.get(&id) else {
                    return err(format!(
                        "tree {tree}: node {id} is referenced but does not exist"
                    ));
                };
                placed += 1;
                if placed > by_id.len() {
                    return err(format!(
                        "tree {tree} is not a tree (a node is reached twice)"
                    ));
                }
                let new_ix = nodes.len() as u32;
                if let Some((parent, is_true)) = patch {
                    if is_true {
                        nodes[parent].next_true = new_ix;
                    } else {
                        nodes[parent].next_false = new_ix;
                    }
                }
                let mode = match modes[i].as_str() {
                    "BRANCH_LEQ" => LEQ,
                    "BRANCH_LT" => LT,
                    "BRANCH_GTE" => GTE,
                    "BRANCH_GT" => GT,
                    "BRANCH_EQ" => EQ,
                    "BRANCH_NEQ" => NEQ,
                    "LEAF" => LEAF,
                    other => return err(format!("tree {tree} node {id}: unknown mode {other:?}")),
                };
                let missing_true = missing.get(i).copied().unwrap_or(0) != 0;
                if mode == LEAF {
                    let w = weights.get(&(tree, id)).map(Vec::as_slice).unwrap_or(&[]);
                    used_weights += w.len();
                    let start = leaf_target.len() as u32;
                    for &(t, v) in w {
                        leaf_target.push(t);
                        leaf_weight.push(v);
                    }
                    tree_depth = tree_depth.max(depth);
                    nodes.push(BuildNode {
                        threshold: 0.0,
                        packed: LEAF << FEATURE_BITS,
                        next_true: new_ix,
                        next_false: new_ix,
                    });
                    leaf_span.push((start, w.len() as u32));
                } else {
                    let f = feature_ids[i];
                    if !(0..=i64::from(FEATURE_MASK)).contains(&f) {
                        return err(format!(
                            "tree {tree} node {id}: feature id {f} out of range"
                        ));
                    }
                    out.n_features = out.n_features.max(f as usize + 1);
                    if !modes_seen.contains(&mode) {
                        modes_seen.push(mode);
                    }
                    leaf_span.push((0, 0));
                    nodes.push(BuildNode {
                        threshold: values[i],
                        packed: f as u32
                            | mode << FEATURE_BITS
                            | if missing_true { MISSING_TRUE } else { 0 },
                        // Both are overwritten when the children are placed.
                        next_true: 0,
                        next_false: 0,
                    });
                    let me = new_ix as usize;
                    // Pushed last, popped first: the true child follows its parent.
                    stack.push((false_ids[i], Some((me, false)), depth + 1));
                    stack.push((true_ids[i], Some((me, true)), depth + 1));
                }
            }
            depths.push(tree_depth);
        }
        if used_weights != m {
            return err(format!(
                "{} {prefix} weights point at nodes that are not leaves of the ensemble",
                m - used_weights
            ));
        }
        // Every branch's children were placed after it (pre-order) and inside
        // the array, and every leaf points at itself: re-check, since the walk
        // relies on it.
        for (i, node) in nodes.iter().enumerate() {
            let ok = if node.mode() == LEAF {
                node.next_true as usize == i && node.next_false as usize == i
            } else {
                let after = |c: u32| (c as usize) > i && (c as usize) < nodes.len();
                node.next_true as usize == i + 1 && after(node.next_false)
            };
            if !ok {
                return err(format!("internal layout error at node {i}"));
            }
        }
        // Walk order: by depth (stable), so lockstep groups are even.
        let mut order: Vec<u32> = (0..roots.len() as u32).collect();
        order.sort_by_key(|&t| depths[t as usize]);
        out.group_depth = order
            .chunks(LANES)
            .map(|g| g.iter().map(|&t| depths[t as usize]).max().unwrap_or(0))
            .collect();
        let roots: Vec<u32> = order.iter().map(|&t| roots[t as usize]).collect();
        out.walk_in_tree_order = order.iter().enumerate().all(|(i, &t)| i == t as usize);
        out.tree_of_root = order.into();
        out.uniform_mode = match modes_seen.as_slice() {
            // NEQ is true against a leaf's NaN threshold: walk it per node.
            [one] if *one != NEQ => Some(*one),
            _ => None,
        };
        out.leaf_span = leaf_span.into();
        out.nodes = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if n.mode() == LEAF {
                    Node {
                        threshold: f32::NAN,
                        packed: LEQ << FEATURE_BITS,
                        next_false: i as u32,
                    }
                } else {
                    Node {
                        threshold: n.threshold,
                        packed: n.packed,
                        next_false: n.next_false,
                    }
                }
            })
            .collect();
        out.roots = roots.into();
        out.leaf_target = leaf_target.into();
        out.leaf_weight = leaf_weight.into();
        Ok(out)
    }

    /// Values written per row (classifier: one per class; regressor: per target).
    pub fn output_width(&self) -> usize {
        self.n_outputs
    }

    /// Features a row must have at least.
    pub fn min_input_width(&self) -> usize {
        self.n_features
    }

    /// Scratch floats [`TreeEnsemble::eval_row`] needs: scores and
    /// has-a-value flags per output, then (when trees are walked out of
    /// order) each tree's leaf, as bits.
    pub fn scratch_len(&self) -> usize {
        let leaves = if self.walk_in_tree_order {
            0
        } else {
            self.roots.len()
        };
        2 * self.n_outputs + leaves
    }

    /// Number of trees.
    pub fn tree_count(&self) -> usize {
        self.roots.len()
    }

    /// One step of a walk: the child `row` goes to (a leaf stays put).
    /// `MODE` is the comparison all branches share, or `ANY_MODE`.
    #[inline(always)]
    fn step<const MODE: u32>(&self, i: u32, row: &[f32]) -> u32 {
        debug_assert!((i as usize) < self.nodes.len());
        // SAFETY: `i` is a root (placed in the array at load), a branch's
        // i + 1 or next_false (both checked in bounds at load), or a leaf's
        // own index (a leaf compares `x <= NaN`, false under every `MODE`
        // this is instantiated with: LEQ, LT, GTE, GT, or ANY_MODE, where a
        // leaf's own mode is LEQ; NEQ never is, see `accumulate_any`, and
        // the leaf's missing-tracks-true bit is clear): always in bounds.
        let n = unsafe { self.nodes.get_unchecked(i as usize) };
        debug_assert!(n.feature() < row.len());
        // SAFETY: every node reads a feature < n_features, and
        // `accumulate_any` (the only way here) asserts rows are at least
        // n_features wide.
        let x = unsafe { *row.get_unchecked(n.feature()) };
        let t = n.threshold;
        let mode = if MODE == ANY_MODE { n.mode() } else { MODE };
        let cmp = match mode {
            LEQ => x <= t,
            LT => x < t,
            GTE => x >= t,
            GT => x > t,
            EQ => x == t,
            _ => x != t,
        };
        // onnxruntime: a NaN goes to the true branch iff missing-tracks-true
        // (or if the comparison itself holds, as `NaN != t` does).
        let go_true = cmp | ((n.packed & MISSING_TRUE != 0) & x.is_nan());
        // Branch-free select (a branch here mispredicts half the time).
        let take_true = 0u32.wrapping_sub(u32::from(go_true));
        ((i + 1) & take_true) | (n.next_false & !take_true)
    }

    /// Walk group `g`'s trees (`LANES` at a time, in lockstep: the walks
    /// are independent, so their loads overlap and no branch depends on the
    /// data) and record each tree's leaf in `leaves` (by tree index, as bits).
    #[inline(always)]
    fn walk_group<const MODE: u32>(&self, g: usize, row: &[f32], leaves: &mut [f32]) {
        let span = g * LANES..((g + 1) * LANES).min(self.roots.len());
        let roots = &self.roots[span.clone()];
        let mut idx = [roots[0]; LANES];
        idx[..roots.len()].copy_from_slice(roots);
        for _ in 0..self.group_depth[g] {
            for i in idx.iter_mut() {
                *i = self.step::<MODE>(*i, row);
            }
        }
        for (&tree, &leaf) in self.tree_of_root[span].iter().zip(&idx) {
            leaves[tree as usize] = f32::from_bits(leaf);
        }
    }

    /// Add every tree's leaf weights to `acc` (scores, then flags), in the
    /// ensemble's tree order.
    #[inline(always)]
    fn sum_leaves(&self, acc: &mut [f32], leaves: &[f32]) {
        for leaf in leaves {
            self.add_leaf(acc, leaf.to_bits());
        }
    }

    /// Walk group `g` and add its leaves to `acc` at once: for ensembles
    /// whose walk order is the tree order (no leaf buffer needed).
    #[inline(always)]
    fn add_group<const MODE: u32>(&self, g: usize, row: &[f32], acc: &mut [f32]) {
        let roots = &self.roots[g * LANES..((g + 1) * LANES).min(self.roots.len())];
        let mut idx = [roots[0]; LANES];
        idx[..roots.len()].copy_from_slice(roots);
        for _ in 0..self.group_depth[g] {
            for i in idx.iter_mut() {
                *i = self.step::<MODE>(*i, row);
            }
        }
        for &leaf in &idx[..roots.len()] {
            self.add_leaf(acc, leaf);
        }
    }

    /// Aggregate one leaf's weights into `acc` (scores, then flags).
    #[inline(always)]
    fn add_leaf(&self, acc: &mut [f32], leaf: u32) {
        let (scores, has) = acc.split_at_mut(self.n_outputs);
        {
            let (start, count) = self.leaf_span[leaf as usize];
            let range = start as usize..(start + count) as usize;
            for (&t, &w) in self.leaf_target[range.clone()]
                .iter()
                .zip(&self.leaf_weight[range])
            {
                let t = t as usize;
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => scores[t] += w,
                    Aggregate::Min => {
                        if has[t] == 0.0 || w < scores[t] {
                            scores[t] = w
                        }
                    }
                    Aggregate::Max => {
                        if has[t] == 0.0 || w > scores[t] {
                            scores[t] = w
                        }
                    }
                }
                has[t] = 1.0;
            }
        }
    }

    /// Accumulate every tree for `rows` (each `width` long; one `scratch_len()`
    /// accumulator per row in `acc`), trees outer and rows inner so that a
    /// group's nodes stay in cache across the rows. Per row, leaves are added
    /// in tree order, exactly as for a single row.
    #[inline(always)]
    fn accumulate<const MODE: u32>(&self, rows: &[f32], width: usize, acc: &mut [f32]) {
        let per_row = self.scratch_len();
        let sums = 2 * self.n_outputs;
        if self.walk_in_tree_order {
            for g in 0..self.group_depth.len() {
                for (row, a) in rows.chunks_exact(width).zip(acc.chunks_exact_mut(per_row)) {
                    self.add_group::<MODE>(g, row, a);
                }
            }
            return;
        }
        for g in 0..self.group_depth.len() {
            for (row, a) in rows.chunks_exact(width).zip(acc.chunks_exact_mut(per_row)) {
                self.walk_group::<MODE>(g, row, &mut a[sums..]);
            }
        }
        for a in acc.chunks_exact_mut(per_row) {
            let (sum, leaves) = a.split_at_mut(sums);
            self.sum_leaves(sum, leaves);
        }
    }

    fn accumulate_any(&self, rows: &[f32], width: usize, acc: &mut [f32]) {
        // The walk reads features without bounds checks: this is its guard.
        assert!(
            width >= self.n_features,
            "rows of {width} features, the ensemble reads {}",
            self.n_features
        );
        acc.fill(0.0);
        match self.uniform_mode {
            Some(LEQ) => self.accumulate::<LEQ>(rows, width, acc),
            Some(LT) => self.accumulate::<LT>(rows, width, acc),
            Some(GTE) => self.accumulate::<GTE>(rows, width, acc),
            Some(GT) => self.accumulate::<GT>(rows, width, acc),
            _ => self.accumulate::<ANY_MODE>(rows, width, acc),
        }
    }

    /// Score one row (`row.len() >= min_input_width()`) into `out`
    /// (`output_width()` values), using `scratch` (`scratch_len()` floats).
    /// Returns the predicted class index for classifiers (0 for regressors).
    #[inline]
    pub fn eval_row(&self, row: &[f32], scratch: &mut [f32], out: &mut [f32]) -> usize {
        self.accumulate_any(row, row.len(), scratch);
        self.finalize(scratch, out)
    }

    /// Score `n` rows of `width` features stored back to back into `out`
    /// (`output_width()` values per row), using `scratch` (`scratch_len()`
    /// floats per row). Same results as [`TreeEnsemble::eval_row`] per row.
    pub fn eval_rows(&self, rows: &[f32], width: usize, scratch: &mut [f32], out: &mut [f32]) {
        self.accumulate_any(rows, width, scratch);
        let k = self.n_outputs;
        let per_row = self.scratch_len();
        for (acc, o) in scratch
            .chunks_exact_mut(per_row)
            .zip(out.chunks_exact_mut(k))
        {
            self.finalize(acc, o);
        }
    }

    /// Turn accumulated leaf weights into outputs; the class index for classifiers.
    fn finalize(&self, acc: &mut [f32], out: &mut [f32]) -> usize {
        let k = self.n_outputs;
        let (scores, has) = acc.split_at_mut(k);
        if self.aggregate == Aggregate::Average {
            let trees = self.roots.len() as f32;
            scores.iter_mut().for_each(|s| *s /= trees);
        }
        match &self.kind {
            Kind::Regressor => {
                if self.base_values.len() == k {
                    scores
                        .iter_mut()
                        .zip(self.base_values.iter())
                        .for_each(|(s, b)| *s += b);
                }
                write_scores(scores, self.post, -1, out);
                0
            }
            Kind::Classifier {
                binary_case,
                all_positive,
                ..
            } if k == 2 => self.finalize_binary(scores, has, *binary_case, *all_positive, out),
            Kind::Classifier { .. } => {
                if self.base_values.len() == k {
                    scores
                        .iter_mut()
                        .zip(self.base_values.iter())
                        .for_each(|(s, b)| *s += b);
                }
                let mut best = 0;
                for c in 1..k {
                    if scores[c] > scores[best] {
                        best = c;
                    }
                }
                write_scores(scores, self.post, -1, out);
                best
            }
        }
    }

    /// onnxruntime's two-class finalisation (`TreeAggregatorClassifier`).
    fn finalize_binary(
        &self,
        scores: &mut [f32],
        has: &[f32],
        binary_case: bool,
        all_positive: bool,
        out: &mut [f32],
    ) -> usize {
        let (has0, has1) = (has[0] != 0.0, has[1] != 0.0);
        let mut two = true;
        match self.base_values.len() {
            2 => {
                if has1 {
                    scores[1] = self.base_values[1] + scores[0];
                    scores[0] = -scores[1];
                } else {
                    scores[1] += self.base_values[1];
                    scores[0] += self.base_values[0];
                }
            }
            1 => {
                scores[0] += self.base_values[0];
                two = has1;
            }
            _ => two = has1,
        }
        if two {
            // onnxruntime 1.32 writes 0 for a class no leaf scored, whatever
            // the base values did to it (measured: tests/data/trees/binary_*).
            for (score, &h) in scores.iter_mut().zip(has.iter()) {
                if h == 0.0 {
                    *score = 0.0;
                }
            }
        }
        let pos = if two && has1 {
            scores[1]
        } else if has0 {
            scores[0]
        } else {
            0.0
        };
        let (second, class) = if binary_case {
            if all_positive {
                if pos > 0.5 {
                    (0, 1)
                } else {
                    (1, 0)
                }
            } else if pos > 0.0 {
                (2, 1)
            } else {
                (3, 0)
            }
        } else {
            (-1, usize::from(pos > 0.0))
        };
        if two {
            write_scores(scores, self.post, second, out);
        } else {
            write_binary(scores[0], self.post, second, out);
        }
        class
    }
}

fn logistic(x: f32) -> f32 {
    // onnxruntime's ComputeLogistic: symmetric, stable for large |x|.
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

fn probit(x: f32) -> f32 {
    // onnxruntime's ComputeProbit: √2 · ErfInv(2x − 1), ErfInv approximated.
    let x = 2.0 * x - 1.0;
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    std::f32::consts::SQRT_2 * sgn * v3.sqrt()
}

/// onnxruntime's `write_scores` for two or more scores.
fn write_scores(scores: &mut [f32], post: PostTransform, second: i32, out: &mut [f32]) {
    if scores.len() == 1 {
        return write_binary(scores[0], post, second, out);
    }
    match post {
        PostTransform::None => out.copy_from_slice(scores),
        PostTransform::Logistic => out
            .iter_mut()
            .zip(scores.iter())
            .for_each(|(o, &s)| *o = logistic(s)),
        PostTransform::Probit => out
            .iter_mut()
            .zip(scores.iter())
            .for_each(|(o, &s)| *o = probit(s)),
        PostTransform::Softmax => super::kernels::softmax(scores, out),
        PostTransform::SoftmaxZero => {
            let max = scores.iter().copied().fold(f32::MIN, f32::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0.0;
            for (o, &s) in out.iter_mut().zip(scores.iter()) {
                if s.abs() > 1e-7 {
                    *o = (s - max).exp();
                    sum += *o;
                } else {
                    *o = s * exp_neg_max;
                }
            }
            out.iter_mut().for_each(|o| *o /= sum);
        }
    }
}

/// onnxruntime's `write_binary_scores`: one aggregated score, two outputs.
fn write_binary(s: f32, post: PostTransform, second: i32, out: &mut [f32]) {
    if post == PostTransform::Probit {
        out[0] = probit(s);
        // onnxruntime leaves a second column unwritten here; NaN makes it
        // deterministic and visibly undefined.
        if let Some(second) = out.get_mut(1) {
            *second = f32::NAN;
        }
        return;
    }
    let pair = match second {
        0 | 1 => [1.0 - s, s],
        2 | 3 if post == PostTransform::Logistic => [logistic(-s), logistic(s)],
        // Measured on onnxruntime 1.32: [-s, s] whichever class wins (older
        // sources wrote [s, -s] when the negative class won).
        2 | 3 => [-s, s],
        _ => {
            out[0] = s;
            return;
        }
    };
    let n = out.len().min(2);
    out[..n].copy_from_slice(&pair[..n]);
}

/// The ONNX node, for tract's inference: one output for regressors,
/// (label, probabilities) for classifiers.
#[derive(Debug, Clone)]
struct TreeEnsembleExpansion {
    ensemble: Arc<TreeEnsemble>,
    classifier: bool,
}

impl Expansion for TreeEnsembleExpansion {
    fn name(&self) -> StaticName {
        if self.classifier {
            "TreeEnsembleClassifier"
        } else {
            "TreeEnsembleRegressor"
        }
        .into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.classifier { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, if self.classifier { 2 } else { 1 })?;
        s.equals(&inputs[0].rank, 2)?;
        let scores = &outputs[outputs.len() - 1];
        s.equals(&scores.datum_type, DatumType::F32)?;
        s.equals(&scores.rank, 2)?;
        s.equals(&scores.shape[0], &inputs[0].shape[0])?;
        s.equals(
            &scores.shape[1],
            (self.ensemble.output_width() as i64).to_dim(),
        )?;
        if self.classifier {
            s.equals(&outputs[0].datum_type, DatumType::I64)?;
            s.equals(&outputs[0].rank, 1)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let width = fact.shape.last().and_then(|d| d.to_usize().ok());
        match width {
            Some(w) if w >= self.ensemble.min_input_width() => {}
            _ => bail!(
                "tree ensemble reads feature {} but the input has {width:?} features",
                self.ensemble.min_input_width().saturating_sub(1)
            ),
        }
        let x = super::onnx_ml::wire_as_f32(prefix, model, inputs[0])?;
        let op = |labels| TreeEnsembleOp {
            ensemble: self.ensemble.clone(),
            labels,
        };
        let scores = model.wire_node(format!("{prefix}.scores"), op(false), &[x])?[0];
        if self.classifier {
            let labels = model.wire_node(format!("{prefix}.labels"), op(true), &[x])?[0];
            Ok(tvec!(labels, scores))
        } else {
            Ok(tvec!(scores))
        }
    }
}

/// tickscore's tree ensemble as a typed tract op: scores `[N, width]` f32,
/// or (with `labels`) predicted class labels `[N]` i64.
#[derive(Debug, Clone)]
pub struct TreeEnsembleOp {
    /// The ensemble.
    pub ensemble: Arc<TreeEnsemble>,
    /// Whether this node computes labels rather than scores.
    pub labels: bool,
}

impl PartialEq for TreeEnsembleOp {
    fn eq(&self, other: &Self) -> bool {
        self.labels == other.labels && Arc::ptr_eq(&self.ensemble, &other.ensemble)
    }
}
impl Eq for TreeEnsembleOp {}
impl std::hash::Hash for TreeEnsembleOp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.ensemble).hash(state);
        self.labels.hash(state);
    }
}

impl Op for TreeEnsembleOp {
    fn name(&self) -> StaticName {
        "TickscoreTreeEnsemble".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} nodes, {} outputs",
            self.ensemble.tree_count(),
            self.ensemble.nodes.len(),
            self.ensemble.output_width()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for TreeEnsembleOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let shape = input.shape();
        ensure!(shape.len() == 2 && shape[1] >= self.ensemble.min_input_width());
        let (n, w) = (shape[0], shape[1]);
        let k = self.ensemble.output_width();
        let mut scratch = vec![0f32; self.ensemble.scratch_len()];
        let mut scores = vec![0f32; n * k];
        let mut classes = vec![0i64; n];
        for (i, row) in x.chunks_exact(w).enumerate() {
            let c = self
                .ensemble
                .eval_row(row, &mut scratch, &mut scores[i * k..(i + 1) * k]);
            if let Kind::Classifier { labels, .. } = &self.ensemble.kind {
                classes[i] = labels[c];
            }
        }
        if self.labels {
            Ok(tvec!(tensor1(&classes).into_tvalue()))
        } else {
            Ok(tvec!(Tensor::from_shape(&[n, k], &scores)?.into_tvalue()))
        }
    }
}

impl TypedOp for TreeEnsembleOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        if self.labels {
            Ok(tvec!(i64::fact([n])))
        } else {
            Ok(tvec!(f32::fact([n, self.ensemble.output_width().to_dim()])))
        }
    }

    as_op!();
}
