"""scikit-learn's own estimator checks pass for both estimators, on tiny real KANs.

No check is skipped or expected to fail. scikit-learn itself skips ``check_array_api_input``
unless ``SCIPY_ARRAY_API`` is set: the estimators convert their input to numpy float64 and
make no claim about other array libraries.
"""

from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from emp_kan import EMPKANClassifier, EMPKANRegressor

# Small enough to run each check in about a second; the classifier's 30 steps are what
# check_classifiers_train needs to reach its accuracy bar (10 do not).
_ESTIMATORS = [
    EMPKANRegressor(hidden=(2,), steps=2, rounds=1),
    EMPKANClassifier(hidden=(3,), steps=30, rounds=1),
]


@parametrize_with_checks(_ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # pykan's own numpy/torch warnings on the checks' degenerate data (constant columns)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)
