"""A model-free estimate of the label noise: half the mean squared difference between each row's
label and its nearest neighbour's (in inputs scaled to unit spread)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["neighbour_noise"]


def neighbour_noise(x: np.ndarray, y: np.ndarray) -> float:
    """The labels' noise standard deviation as nearest neighbours see it.

    Parameters
    ----------
    x : ndarray, ``(n, d)``
        Inputs; each column is divided by its standard deviation first.
    y : ndarray, ``(n,)``
        Labels.

    Returns
    -------
    float
        ``sqrt(mean((y_i - y_j(i))**2) / 2)``, ``j(i)`` the nearest other row of ``i``: for
        independent noise of standard deviation ``sigma`` it is ``sigma`` plus what the law
        itself changes between neighbours, so an upper bound that tightens with more rows and
        fewer inputs. NaN with fewer than 2 rows.
    """
    from scipy.spatial import cKDTree

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape[0] < 2:
        return math.nan
    spread = x.std(axis=0)
    scaled = x / np.where(spread > 0, spread, 1.0)
    _, index = cKDTree(scaled).query(scaled, k=2)
    differences = y - y[index[:, 1]]
    return float(np.sqrt(np.mean(differences**2) / 2))
