"""riskctl core: events, features, velocity, rules, decisions, storage. No Flask here."""

__version__ = "0.1.0"
