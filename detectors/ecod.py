"""ECOD (PyOD): sum over features of the larger empirical tail probability's -log.

Per feature j: O_j = max(U_left, U_right, U_skew) where U = -log(ECDF tail) and U_skew picks
the tail the column's skewness points to (both tails summed when the skewness is exactly 0).
The score is sum_j O_j, exactly PyOD's ``ECOD.decision_function`` for one row; ``explain``
returns the O_j. The frozen machinery is in ``ecdf``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .ecdf import TailProbabilityDetector


class ECODDetector(TailProbabilityDetector):
    algorithm: ClassVar[str] = "ecod"
    reproduces: ClassVar[str] = "pyod ECOD.decision_function (one row)"
    _copod: ClassVar[bool] = False

    def _library_model(self) -> Any:
        from pyod.models.ecod import ECOD

        return ECOD(contamination=self.contamination)
