"""Built-in policy files, installed as ``agile.policies``; see ``agile.policy.builtin``."""
