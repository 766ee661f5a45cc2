"""Every numba-compiled scoring kernel, in one module on purpose.

numba's on-disk cache revalidates a compiled function against the timestamp of the file that
defines it, not of the files defining the functions it calls. With kernels spread over
modules, editing a shared helper (say the pairwise sum) could leave a stale compiled caller
in the cache. One module means one timestamp: any edit recompiles everything.

All kernels are pure (they read their arguments, allocate their outputs) and run without the
GIL, so a frozen detector can be scored from many threads at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._jit import kernel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]
IndexArray = NDArray[np.int64]
Int8Array = NDArray[np.int8]

# ---------------------------------------------------------------------------- shared helpers


@kernel
def _block_sum(a: FloatArray, start: int, n: int) -> float:
    """numpy's pairwise-sum leaf (n <= 128): a plain loop below 8 terms, else 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[start + i]
        return res
    r0 = a[start]
    r1 = a[start + 1]
    r2 = a[start + 2]
    r3 = a[start + 3]
    r4 = a[start + 4]
    r5 = a[start + 5]
    r6 = a[start + 6]
    r7 = a[start + 7]
    i = 8
    limit = n - n % 8
    while i < limit:
        r0 += a[start + i]
        r1 += a[start + i + 1]
        r2 += a[start + i + 2]
        r3 += a[start + i + 3]
        r4 += a[start + i + 4]
        r5 += a[start + i + 5]
        r6 += a[start + i + 6]
        r7 += a[start + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@kernel
def pairwise_sum(a: FloatArray, start: int, n: int) -> float:
    """``np.sum`` of ``a[start:start + n]`` bit for bit.

    numpy reduces a contiguous float64 run by pairwise summation: leaves of <= 128 terms
    (``_block_sum``), above that a split at half the length rounded down to a multiple of 8.
    The libraries sum per-feature terms with ``.sum(axis=1)``; following the same order makes
    frozen scores equal theirs exactly, not just to the last bit. The recursion is unrolled
    onto an explicit stack (numba's cache cannot link recursive functions).
    """
    if n <= 128:
        return _block_sum(a, start, n)
    frame_start = np.empty(128, dtype=np.int64)
    frame_n = np.empty(128, dtype=np.int64)
    frame_combine = np.zeros(128, dtype=np.bool_)
    partial = np.empty(128)
    top = 0
    held = 0
    frame_start[0] = start
    frame_n[0] = n
    frame_combine[0] = False
    top = 1
    while top > 0:
        top -= 1
        s = frame_start[top]
        k = frame_n[top]
        if frame_combine[top]:
            partial[held - 2] = partial[held - 2] + partial[held - 1]
            held -= 1
        elif k <= 128:
            partial[held] = _block_sum(a, s, k)
            held += 1
        else:
            half = k // 2
            half -= half % 8
            # Evaluate left, then right, then add them (left + right, as numpy does).
            frame_start[top] = s
            frame_n[top] = k
            frame_combine[top] = True
            frame_start[top + 1] = s + half
            frame_n[top + 1] = k - half
            frame_combine[top + 1] = False
            frame_start[top + 2] = s
            frame_n[top + 2] = half
            frame_combine[top + 2] = False
            top += 3
    return partial[0]


@kernel
def count_less(a: NDArray[np.float64], lo: int, hi: int, x: float) -> int:
    """Number of values < x in the sorted run ``a[lo:hi]`` (``searchsorted`` side='left')."""
    start = lo
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo - start


@kernel
def count_less_equal(a: NDArray[np.float64], lo: int, hi: int, x: float) -> int:
    """Number of values <= x in the sorted run ``a[lo:hi]`` (``searchsorted`` side='right')."""
    start = lo
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - start


# ---------------------------------------------------------------------------- isolation forest


@kernel
def forest_path_lengths(
    X: FloatArray,
    roots: IntArray,
    children: IntArray,
    feature: IntArray,
    split: FloatArray,
    leaf_value: FloatArray,
    steps: int,
) -> FloatArray:
    """Sum over trees of the leaf path lengths of each row; NaN marks a non-finite row.

    Branch-free lockstep walk: leaves are self-loops (feature 0, split +inf, both children
    the leaf itself), so every tree takes exactly ``steps`` (the deepest leaf's depth) steps
    and the next node is ``children[2 * node + (x > split)]``. Eight trees advance together:
    eight independent load chains for the CPU to overlap and no mispredicted branches, which
    is what dominates a naive walk (~3x slower on distinct rows).
    """
    m, d = X.shape
    out = np.empty(m)
    x32 = np.empty(d)
    lanes = np.empty(8, dtype=np.int64)
    n_trees = roots.shape[0]
    for i in range(m):
        finite = True
        for j in range(d):
            v = X[i, j]
            if not np.isfinite(v):
                finite = False
            # sklearn's trees see the row as float32 (its input validation casts it) and go
            # left iff x <= threshold, i.e. right iff x > threshold.
            x32[j] = np.float64(np.float32(v))
        if not finite:
            out[i] = np.nan
            continue
        depth = 0.0
        for t0 in range(0, n_trees, 8):
            width = min(8, n_trees - t0)
            for k in range(width):
                lanes[k] = roots[t0 + k]
            for _ in range(steps):
                for k in range(width):
                    node = lanes[k]
                    lanes[k] = children[2 * node + np.int64(x32[feature[node]] > split[node])]
            for k in range(width):  # tree order, like sklearn's accumulation
                depth += leaf_value[lanes[k]]
        out[i] = depth
    return out


# ---------------------------------------------------------------------------- ECOD / COPOD


@kernel
def skew_sign(x: float, st: FloatArray, n: float, exact_mean: bool) -> int:
    """Sign of scipy's skew of (training column + x) as PyOD uses it, or UNKNOWN (2)."""
    eps = 2.220446049250313e-16
    big_n = n + 1.0
    c = (st[0] + x) / big_n  # scipy's mean of the concatenation (exactly so in exact_mean mode)
    delta = c - st[1]
    ad = abs(delta)
    s1 = st[2]
    s2 = st[3]
    s3 = st[4]
    a1 = st[5]
    a3 = st[6]
    ex = x - c
    # Central moments of train + x about c from the training moments about mu = st[1].
    m2 = (s2 - 2.0 * delta * s1 + n * delta * delta + ex * ex) / big_n
    m3 = (s3 - 3.0 * delta * s2 + 3.0 * delta * delta * s1 - n * delta * delta * delta + ex * ex * ex) / big_n
    # Magnitudes the rounding errors (numpy's sums and this evaluation) scale with.
    scale2 = (s2 + 2.0 * ad * a1 + n * ad * ad + ex * ex) / big_n
    scale3 = (a3 + 3.0 * ad * s2 + 3.0 * ad * ad * a1 + n * ad * ad * ad + abs(ex) ** 3) / big_n
    if not (1e-200 < scale2 < 1e200 and 1e-290 < scale3 < 1e290):  # also catches NaN
        return 2  # extreme magnitudes (overflow/underflow in scipy): decide exactly
    err2 = 8.0 * (big_n + 4.0) * eps * scale2
    err3 = 8.0 * (big_n + 4.0) * eps * scale3
    thr_err = 0.0
    if not exact_mean:
        # scipy's mean is only known to within numpy's summation error bound.
        # (twice numpy's worst-case bound (N - 1) * eps / 2 * sum|a| / N for a running sum)
        mean_err = eps * (st[8] + abs(x))
        maxdev = st[7] + ad + abs(ex) + mean_err
        err2 += 8.0 * (2.0 * np.sqrt(scale2) * mean_err + mean_err * mean_err)
        err3 += 8.0 * (3.0 * scale2 * mean_err + 3.0 * maxdev * mean_err * mean_err + mean_err**3)
        thr_err = 4.0 * eps * eps * (abs(c) + mean_err) * mean_err
    zero_threshold = (eps * c) ** 2  # scipy: m2 <= (eps * mean)**2 -> NaN skew -> sign 0
    if abs(m2 - zero_threshold) <= err2 + thr_err:
        return 2
    if m2 <= zero_threshold:
        return 0
    if abs(m3) <= err3:
        return 2
    if not (abs(m3) / m2**1.5 > 1e-280):  # scipy's m3 / m2**1.5 could underflow to 0
        return 2
    return 1 if m3 > 0.0 else -1


@kernel
def skew_signs_for_values(values: FloatArray, st: FloatArray, n: float, exact_mean: bool) -> Int8Array:
    out = np.empty(values.shape[0], dtype=np.int8)
    for k in range(values.shape[0]):
        out[k] = skew_sign(values[k], st, n, exact_mean)
    return out


@kernel
def sequential_column_sums(train: FloatArray) -> FloatArray:
    """Row-by-row accumulation (what numpy's axis-0 reduction of a C-ordered matrix does)."""
    acc = train[0].copy()
    for i in range(1, train.shape[0]):
        for j in range(train.shape[1]):
            acc[j] += train[i, j]
    return acc


@kernel
def tail_scores(
    X: FloatArray,
    sorted_cols: FloatArray,
    neglog: FloatArray,
    stats: FloatArray,
    exact_mean: bool,
    cache_values: FloatArray,
    cache_signs: Int8Array,
    cache_ptr: NDArray[np.int64],
    copod: bool,
    forced: Int8Array,
) -> tuple[FloatArray, FloatArray, Int8Array]:
    """Scores, per-feature terms and a status per row (0 ok, 1 non-finite, 2 sign unknown).

    ``forced`` (shape (m, d), or (0, d) for none) overrides the skewness signs: the caller
    passes exactly computed signs for rows that came back with status 2.
    """
    m, d = X.shape
    n = sorted_cols.shape[1]
    n_float = float(n)
    contrib = np.zeros((m, d))
    scores = np.empty(m)
    status = np.zeros(m, dtype=np.int8)
    use_forced = forced.shape[0] == m
    for i in range(m):
        for j in range(d):
            x = X[i, j]
            if not np.isfinite(x):
                status[i] = 1
                break
            if use_forced:
                s = forced[i, j]
            else:
                s = skew_sign(x, stats[j], n_float, exact_mean)
                if s == 2:
                    lo = cache_ptr[j]
                    hi = cache_ptr[j + 1]
                    k = lo + count_less(cache_values, lo, hi, x)
                    if k < hi and cache_values[k] == x:
                        s = cache_signs[k]
                    else:
                        status[i] = 2
                        break
            col = sorted_cols[j]
            u_l = neglog[count_less_equal(col, 0, n, x)]
            u_r = neglog[n - count_less(col, 0, n, x)]
            # PyOD: U_skew = U_l * -1 * sign(s - 1) + U_r * sign(s + 1)
            if s > 0:
                u_skew = u_r
            elif s < 0:
                u_skew = u_l
            else:
                u_skew = u_l + u_r
            if copod:
                contrib[i, j] = max(u_skew, (u_l + u_r) / 2.0)
            else:
                contrib[i, j] = max(u_skew, max(u_l, u_r))
        if status[i] == 0:
            scores[i] = pairwise_sum(contrib[i], 0, d)
        else:
            scores[i] = np.nan
    return scores, contrib, status


# ---------------------------------------------------------------------------- HBOS


@kernel
def log2_shifted(hist: FloatArray, alpha: float) -> FloatArray:
    """``np.log2(hist + alpha)`` as PyOD's numba-compiled static-bins path computes it."""
    return np.log2(hist + alpha)


@kernel
def histogram_scores(
    X: FloatArray,
    edges: FloatArray,
    edge_ptr: IndexArray,
    log_density: FloatArray,
    bin_ptr: IndexArray,
    min_log_density: FloatArray,
    tol: float,
) -> tuple[FloatArray, FloatArray]:
    """Scores (NaN for a non-finite row) and per-feature contributions of the rows of X."""
    m, d = X.shape
    scores = np.empty(m)
    contrib = np.zeros((m, d))
    values = np.empty(d)
    for i in range(m):
        finite = True
        for j in range(d):
            x = X[i, j]
            if not np.isfinite(x):
                finite = False
                break
            e0 = edge_ptr[j]
            b0 = bin_ptr[j]
            n_bins = bin_ptr[j + 1] - b0
            k = count_less(edges, e0, e0 + n_bins + 1, x)  # np.digitize(x, edges, right=True)
            if k == 0:
                dist = edges[e0] - x
                width = edges[e0 + 1] - edges[e0]
                v = log_density[b0] if dist <= width * tol else min_log_density[j]
            elif k == n_bins + 1:
                dist = x - edges[e0 + n_bins]
                width = edges[e0 + n_bins] - edges[e0 + n_bins - 1]
                v = log_density[b0 + n_bins - 1] if dist <= width * tol else min_log_density[j]
            else:
                v = log_density[b0 + k - 1]
            values[j] = v
            contrib[i, j] = -v
        scores[i] = -pairwise_sum(values, 0, d) if finite else np.nan  # invert_order(sum)
    return scores, contrib
