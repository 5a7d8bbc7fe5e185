"""Derives the Winograd F(MxM, RxR) transforms that cpp/conv/winograd.h holds (WinoF<M, R>) and checks them.

Toom-Cook with the interpolation points 0, 1, -1 (and 2, -2 for alpha = M + R - 1 = 6; 2, -2, 1/2, -1/2 for
alpha = 8) and infinity, the Lagrange scaling
put in G: A^T[i][j] = a_j^i, G[j][k] = a_j^k / prod_{l != j}(a_j - a_l), the point at infinity taking the
leading coefficients; B^T is then the solution of the 1-D identity y_i = sum_k g_k d_{i+k}. Prints the three
matrices, the largest error of A^T [(G g G^T) . (B^T d B)] A against the direct 2-D correlation, and the
float32 rounding of the transforms relative to the sum of |terms| (2000 random patches, NumPy float32
products: an estimate of the C++ kernels' rounding, whose sums run in another order).

    python scripts/winograd_matrices.py
"""
import numpy as np


def transforms(r, points, m=2):
    a = len(points) + 1
    f = [np.prod([p - q for q in points if q != p]) for p in points]
    at, g = np.zeros((m, a)), np.zeros((a, r))
    for j, p in enumerate(points):
        at[:, j] = [p ** i for i in range(m)]
        g[j] = [p ** k / f[j] for k in range(r)]
    at[m - 1, a - 1] = g[a - 1, r - 1] = 1
    bt = np.zeros((a, a))
    for col in range(a):  # sum_j AT[i, j] G[j, k] BT[j, col] = [col == i + k] for every i, k
        rows = [at[i] * g[:, k] for i in range(m) for k in range(r)]
        rhs = [float(col == i + k) for i in range(m) for k in range(r)]
        bt[:, col] = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return at, g, np.round(bt, 12)


def main():
    np.set_printoptions(precision=6, suppress=True, linewidth=120)
    rng = np.random.default_rng(0)
    for m, r, points in ((2, 3, [0, 1, -1]), (2, 5, [0, 1, -1, 2, -2]), (4, 3, [0, 1, -1, 2, -2]),
                         (4, 5, [0, 1, -1, 2, -2, 0.5, -0.5])):
        at, g, bt = transforms(r, points, m)
        a = m + r - 1
        d, w = rng.standard_normal((a, a)), rng.standard_normal((r, r))
        y = at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T
        want = np.array([[np.sum(w * d[i:i + r, j:j + r]) for j in range(m)] for i in range(m)])
        print(f"F({m}x{m}, {r}x{r}), points {points} and infinity\nB^T =\n{bt}\nG =\n{g}\nA^T =\n{at}")
        print(f"largest error against the direct sum: {np.abs(y - want).max():.1e}")
        at32, g32, bt32 = (m.astype(np.float32) for m in (at, g, bt))
        worst = 0.0
        for _ in range(2000):
            d = rng.uniform(-1, 1, (a, a)).astype(np.float32)
            w = rng.uniform(-1, 1, (r, r)).astype(np.float32)
            y = at32 @ ((g32 @ w @ g32.T) * (bt32 @ d @ bt32.T)) @ at32.T
            exact = np.array([[np.sum(w.astype(np.float64) * d[i:i + r, j:j + r]) for j in range(m)] for i in range(m)])
            terms = np.array([[np.sum(np.abs(w) * np.abs(d[i:i + r, j:j + r])) for j in range(m)] for i in range(m)])
            worst = max(worst, float((np.abs(y - exact) / terms).max()))
        print(f"float32: largest error / sum of |terms| over 2000 patches: {worst:.1e}\n")


if __name__ == "__main__":
    main()
