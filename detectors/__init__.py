"""Scoring only: no Flask, no database, no Redis, and no import of ``riskctl`` or ``api``."""
