"""The evaluation harness: deterministic triplets, metrics, baselines, runner, report."""
