//! Numeric kernels of the lowered tier. Pure functions over slices: no
//! allocation, no locks, no panics for the lengths [`Plan`](super::plan::Plan)
//! validates at build time.
//!
//! Dense layers keep weights input-major (`w[k * n + j]`): each input is
//! broadcast across a contiguous row of outputs, so the compiler vectorises
//! across outputs without reordering any float reduction. A layer with one
//! output is a dot product instead, computed with eight independent
//! accumulators (a fixed, deterministic summation order).

/// Instruction set the dense kernels were compiled for, chosen once per plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Whatever the build target guarantees (SSE2 on x86-64).
    Baseline,
    /// x86-64 with AVX2 and FMA, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The best instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Baseline
    }
}

/// `y = x · W` with `W` input-major, `x.len() * y.len() == w.len()`.
#[inline]
pub fn dense(isa: Isa, x: &[f32], w: &[f32], y: &mut [f32]) {
    match isa {
        Isa::Baseline => dense_generic(x, w, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2Fma` is only constructed by `Isa::detect` after
        // the CPU reported both features.
        Isa::Avx2Fma => unsafe { dense_avx2(x, w, y) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_avx2(x: &[f32], w: &[f32], y: &mut [f32]) {
    dense_generic(x, w, y)
}

#[inline(always)]
fn dense_generic(x: &[f32], w: &[f32], y: &mut [f32]) {
    let n = y.len();
    if n == 1 {
        y[0] = dot(x, w);
        return;
    }
    // Accumulate a block of outputs in registers across every input, then
    // store it once: reloading and storing `y` per input would bind the loop
    // on store-to-load forwarding.
    let mut j0 = 0;
    while j0 + 32 <= n {
        dense_block::<32>(x, w, n, j0, y);
        j0 += 32;
    }
    while j0 + 8 <= n {
        dense_block::<8>(x, w, n, j0, y);
        j0 += 8;
    }
    while j0 < n {
        dense_block::<1>(x, w, n, j0, y);
        j0 += 1;
    }
}

/// Outputs `j0..j0 + B` of `x · W`.
#[inline(always)]
fn dense_block<const B: usize>(x: &[f32], w: &[f32], n: usize, j0: usize, y: &mut [f32]) {
    let mut acc = [0f32; B];
    for (&xk, row) in x.iter().zip(w.chunks_exact(n)) {
        let block: &[f32; B] = match row[j0..].first_chunk() {
            Some(b) => b,
            None => return, // unreachable: j0 + B <= n
        };
        for b in 0..B {
            acc[b] += xk * block[b];
        }
    }
    y[j0..j0 + B].copy_from_slice(&acc);
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += xa[i] * xb[i];
        }
    }
    let mut tail = 0f32;
    for (p, q) in ra.iter().zip(rb) {
        tail += p * q;
    }
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// Binary arithmetic the lowering understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// max(a, b), NaN-propagating like tract
    Max,
    /// min(a, b), NaN-propagating like tract
    Min,
}

impl BinOp {
    /// Map a tract binary mini-op name.
    pub fn from_tract_name(name: &str) -> Option<BinOp> {
        Some(match name {
            "Add" => BinOp::Add,
            "Sub" => BinOp::Sub,
            "Mul" => BinOp::Mul,
            "Div" => BinOp::Div,
            "Max" => BinOp::Max,
            "Min" => BinOp::Min,
            _ => return None,
        })
    }

    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            // ORT and tract propagate NaN through Max/Min (f32::max would
            // not); written as selects so loops over them vectorise.
            BinOp::Max => {
                if a >= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinOp::Min => {
                if a <= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
        }
    }
}

/// Element-wise functions the lowering understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh(x)
    Tanh,
    /// e^x
    Exp,
    /// natural log
    Ln,
    /// |x|
    Abs,
    /// -x
    Neg,
    /// 1 / x
    Recip,
    /// √x
    Sqrt,
    /// x²
    Square,
}

impl UnaryOp {
    /// Map a tract element-wise mini-op name.
    pub fn from_tract_name(name: &str) -> Option<UnaryOp> {
        Some(match name {
            "Sigmoid" => UnaryOp::Sigmoid,
            "Tanh" => UnaryOp::Tanh,
            "Exp" => UnaryOp::Exp,
            "Ln" => UnaryOp::Ln,
            "Abs" => UnaryOp::Abs,
            "Neg" => UnaryOp::Neg,
            "Recip" => UnaryOp::Recip,
            "Sqrt" => UnaryOp::Sqrt,
            "Square" => UnaryOp::Square,
            _ => return None,
        })
    }

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Ln => x.ln(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Neg => -x,
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
        }
    }
}

/// One element-wise step applied in place: a function, or arithmetic with a
/// constant (one value, or one per element).
#[derive(Debug, Clone, PartialEq)]
pub enum ElemOp {
    /// `v = f(v)`
    Unary(UnaryOp),
    /// `v = v op c` (or `c op v` when `const_left`).
    WithConst {
        /// The arithmetic.
        op: BinOp,
        /// One value for all elements, or one per element.
        c: Box<[f32]>,
        /// Whether the constant is the left operand.
        const_left: bool,
    },
}

impl ElemOp {
    /// Apply in place to `y`. Constants have length 1 or `y.len()` (checked
    /// when the plan is built).
    #[inline]
    pub fn apply(&self, y: &mut [f32]) {
        match self {
            // One monomorphised loop per function and per operator, so the
            // dispatch is hoisted out of the element loop and it vectorises.
            ElemOp::Unary(f) => match f {
                UnaryOp::Sigmoid => unary(y, |x| UnaryOp::Sigmoid.apply(x)),
                UnaryOp::Tanh => unary(y, |x| UnaryOp::Tanh.apply(x)),
                UnaryOp::Exp => unary(y, |x| UnaryOp::Exp.apply(x)),
                UnaryOp::Ln => unary(y, |x| UnaryOp::Ln.apply(x)),
                UnaryOp::Abs => unary(y, |x| UnaryOp::Abs.apply(x)),
                UnaryOp::Neg => unary(y, |x| UnaryOp::Neg.apply(x)),
                UnaryOp::Recip => unary(y, |x| UnaryOp::Recip.apply(x)),
                UnaryOp::Sqrt => unary(y, |x| UnaryOp::Sqrt.apply(x)),
                UnaryOp::Square => unary(y, |x| UnaryOp::Square.apply(x)),
            },
            ElemOp::WithConst { op, c, const_left } => {
                let left = *const_left;
                match op {
                    BinOp::Add => with_const(y, c, left, |a, b| BinOp::Add.apply(a, b)),
                    BinOp::Sub => with_const(y, c, left, |a, b| BinOp::Sub.apply(a, b)),
                    BinOp::Mul => with_const(y, c, left, |a, b| BinOp::Mul.apply(a, b)),
                    BinOp::Div => with_const(y, c, left, |a, b| BinOp::Div.apply(a, b)),
                    BinOp::Max => with_const(y, c, left, |a, b| BinOp::Max.apply(a, b)),
                    BinOp::Min => with_const(y, c, left, |a, b| BinOp::Min.apply(a, b)),
                }
            }
        }
    }
}

#[inline(always)]
fn unary(y: &mut [f32], f: impl Fn(f32) -> f32) {
    y.iter_mut().for_each(|v| *v = f(*v));
}

#[inline(always)]
fn with_const(y: &mut [f32], c: &[f32], const_left: bool, f: impl Fn(f32, f32) -> f32) {
    match (c, const_left) {
        ([k], false) => y.iter_mut().for_each(|v| *v = f(*v, *k)),
        ([k], true) => y.iter_mut().for_each(|v| *v = f(*k, *v)),
        (_, false) => y.iter_mut().zip(c).for_each(|(v, &k)| *v = f(*v, k)),
        (_, true) => y.iter_mut().zip(c).for_each(|(v, &k)| *v = f(k, *v)),
    }
}

/// `y = a op b`, each operand of length 1 or `y.len()`.
#[inline]
pub fn binary(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    match (a.len(), b.len()) {
        (1, 1) => y.iter_mut().for_each(|v| *v = op.apply(a[0], b[0])),
        (1, _) => y
            .iter_mut()
            .zip(b)
            .for_each(|(v, &q)| *v = op.apply(a[0], q)),
        (_, 1) => y
            .iter_mut()
            .zip(a)
            .for_each(|(v, &p)| *v = op.apply(p, b[0])),
        _ => y
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(v, (&p, &q))| *v = op.apply(p, q)),
    }
}

/// Numerically stable softmax over the whole slice.
#[inline]
pub fn softmax(x: &[f32], y: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (v, &p) in y.iter_mut().zip(x) {
        *v = (p - max).exp();
        sum += *v;
    }
    y.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_matches_naive_for_every_isa() {
        let (k, n) = (13, 7);
        let x: Vec<f32> = (0..k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let mut want = vec![0f32; n];
        for j in 0..n {
            want[j] = (0..k).map(|i| x[i] * w[i * n + j]).sum();
        }
        for isa in [Isa::Baseline, Isa::detect()] {
            let mut y = vec![9f32; n];
            dense(isa, &x, &w, &mut y);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{isa:?}: {y:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn dot_handles_remainders() {
        for len in [1usize, 7, 8, 9, 61] {
            let a: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let b = vec![2f32; len];
            let mut y = [0f32];
            dense(Isa::Baseline, &a, &b, &mut y);
            assert_eq!(y[0], (len * (len - 1)) as f32, "len {len}");
        }
    }

    #[test]
    fn max_propagates_nan_like_onnx() {
        let mut y = [f32::NAN, -1.0, 2.0];
        ElemOp::WithConst {
            op: BinOp::Max,
            c: Box::new([0.0]),
            const_left: false,
        }
        .apply(&mut y);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 2.0]);
    }

    #[test]
    fn softmax_sums_to_one() {
        let x = [1.0f32, 2.0, 3.0, 1000.0];
        let mut y = [0f32; 4];
        softmax(&x, &mut y);
        assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(y[3] > 0.99);
    }
}
