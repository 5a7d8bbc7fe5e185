"""Derives the Winograd F(2x2, RxR) transforms that cpp/conv/winograd.h holds (WinoF2<R>) and checks them.

Toom-Cook with the interpolation points 0, 1, -1 (and 2, -2 for R = 5) and infinity, the Lagrange scaling
put in G: A^T[i][j] = a_j^i, G[j][k] = a_j^k / prod_{l != j}(a_j - a_l), the point at infinity taking the
leading coefficients; B^T is then the solution of the 1-D identity y_i = sum_k g_k d_{i+k}. Prints the three
matrices and the largest error of A^T [(G g G^T) . (B^T d B)] A against the direct 2-D correlation.

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
    for r, points in ((3, [0, 1, -1]), (5, [0, 1, -1, 2, -2])):
        at, g, bt = transforms(r, points)
        a = r + 1
        d, w = rng.standard_normal((a, a)), rng.standard_normal((r, r))
        y = at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T
        want = np.array([[np.sum(w * d[i:i + r, j:j + r]) for j in range(2)] for i in range(2)])
        print(f"F(2x2, {r}x{r}), points {points} and infinity\nB^T =\n{bt}\nG =\n{g}\nA^T =\n{at}")
        print(f"largest error against the direct sum: {np.abs(y - want).max():.1e}\n")


if __name__ == "__main__":
    main()
