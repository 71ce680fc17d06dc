"""Package data: the embedded default study (``ketamine_default.toml``) run by ``ketacore run``."""
