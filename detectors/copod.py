"""COPOD (PyOD): copula-based tail probabilities, ECOD's predecessor.

Per feature j: O_j = max(U_skew, (U_left + U_right) / 2), U = -log(ECDF tail) and U_skew the
tail the column's skewness points to (sum of both when it is exactly 0). The score is
sum_j O_j, exactly PyOD's ``COPOD.decision_function`` for one row; ``explain`` returns the O_j.
The frozen machinery is in ``ecdf``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .ecdf import TailProbabilityDetector


class COPODDetector(TailProbabilityDetector):
    algorithm: ClassVar[str] = "copod"
    reproduces: ClassVar[str] = "pyod COPOD.decision_function (one row)"
    _copod: ClassVar[bool] = True

    def _library_model(self) -> Any:
        from pyod.models.copod import COPOD

        return COPOD(contamination=self.contamination)
