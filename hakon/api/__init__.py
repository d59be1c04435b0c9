"""HTTP: routing, auth, rate limits and error mapping. Adapts requests to the
modules beneath and decides nothing itself."""
