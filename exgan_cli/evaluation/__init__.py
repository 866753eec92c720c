"""`exgan evaluate`: the paper's protocol, baselines, metrics and the closed-eyes evaluation."""
