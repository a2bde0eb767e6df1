"""The estimators' hyperparameters, derived from the settings table.

scikit-learn reads an estimator's hyperparameters from the signature of its ``__init__`` and
expects ``__init__`` to store them as given. :func:`keyword_init` builds such an ``__init__``
(keyword-only, no logic) from :mod:`emp_kan.discovery.config`'s settings, with the estimator's
own defaults where they differ and its own extra settings; :func:`parameters_doc` writes the
numpydoc section from the same table, and :func:`checked_params` validates in ``fit``.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from emp_kan.discovery.config import Setting, checked_settings, settings_for

__all__ = ["checked_params", "estimator_params", "keyword_init", "parameters_doc"]

Params = dict[str, tuple[Any, Setting]]


def estimator_params(
    names: list[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    extra: Params | None = None,
) -> Params:
    """The table's estimator settings (all, or ``names`` in that order), with ``defaults``
    overridden and ``extra`` settings of the estimator's own appended."""
    table = settings_for("estimator")
    chosen = {name: table[name] for name in (names if names is not None else table)}
    for name, default in (defaults or {}).items():
        chosen[name] = (default, chosen[name][1])
    chosen.update(extra or {})
    return chosen


def keyword_init(params: Params) -> Callable[..., None]:
    """An ``__init__(self, *, name=default, ...)`` that stores every parameter as given."""
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, (default, _) in params.items()
        ]
    )

    def __init__(self: Any, **given: Any) -> None:
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword(s) "
                f"{', '.join(unknown)}; see help({type(self).__name__})"
            )
        for name, (default, _) in params.items():
            setattr(self, name, given.get(name, default))

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


def parameters_doc(params: Params) -> str:
    """The numpydoc ``Parameters`` section for ``params`` (indented for a class docstring)."""
    lines = ["Parameters", "----------"]
    for name, (default, setting) in params.items():
        lines.append(f"{name} : {setting.check.describe()}, default {default!r}")
        lines += textwrap.wrap(
            setting.help + ".", width=88, initial_indent="    ", subsequent_indent="    "
        )
    return textwrap.indent("\n".join(lines), "    ")


def checked_params(estimator: Any, params: Params) -> dict[str, Any]:
    """The estimator's parameters in their canonical types, or ValueError naming the first
    that cannot work (called at the start of ``fit``, before any training)."""
    return checked_settings(estimator, params)
