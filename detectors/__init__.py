"""Scoring only: no Flask, no database, no Redis, and no import of ``riskctl`` or ``api``.

Anomaly detectors trained with scikit-learn / PyOD and scored from what they learned, frozen
into numpy arrays: single-row cost in microseconds and independent of the training-set size,
scores equal to the library's, thread-safe, saved in a versioned pickle-free envelope.

* ``base``         the Detector interface (fit / score / probability / explain / save / load)
* ``registry``     ``ALGORITHMS``, ``build(algorithm, **params)``, ``load_detector(path)``
* ``iforest``      scikit-learn IsolationForest and PyOD IForest
* ``ecod``/``copod``  PyOD ECOD and COPOD, on the shared ECDF machinery of ``ecdf``
* ``hbos``         PyOD HBOS
* ``calibration``  raw score -> [0, 1] (empirical CDF of the training scores) and threshold
* ``persistence``  the model file envelope and content hash
* ``_kernels``     the numba-compiled scoring loops (``_jit``: numba or plain Python)

Import the submodules you need; this package module imports nothing heavy.
"""
