"""The shortest useful emp_kan script: data in, pruned KAN and formula out.

Run: ``.venv/bin/python examples/01_quickstart.py`` (about a minute here).
"""

import numpy as np

import emp_kan

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(400, 2))
y = np.exp(X[:, 0]) + X[:, 1] ** 2  # the law we pretend not to know

est = emp_kan.EMPKANRegressor(hidden=(3,), steps=40, round_steps=15, rounds=2).fit(X, y)
print("formula:", est.sympy())
print("R^2 of the pruned KAN:", round(est.score(X, y), 5))
print("R^2 of the formula:", round(est.formula_.test_r2, 5), "(held-out rows)")
print("edges kept:", est.result_.edges_alive, "of", 2 * 3 + 3)
