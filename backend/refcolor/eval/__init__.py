"""The evaluation harness: deterministic triplets, metrics, baselines, runner, report."""

# What `refcolor eval --reference-ablation` can put in place of a triplet's reference
# (refcolor.eval.triplets.ablate_reference); here so the CLI's parser needs no numpy.
REFERENCE_ABLATIONS = ("flat", "truth")
