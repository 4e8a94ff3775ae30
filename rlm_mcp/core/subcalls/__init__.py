"""Sub-calls from the sandbox: the broker that sends them, their budget, and the cache that never pays twice."""
