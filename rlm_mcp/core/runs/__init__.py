"""``rlm_query`` runs: the RLM loop, how root replies are read, nested runs, resuming, and run control."""
