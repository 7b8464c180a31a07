"""Layer analysis: per-state probe scores, learned layer weights, and a fast probe for sweeps.

- :mod:`hear_gura.analysis.fast_probe`: a linear (and, for scene tasks, kNN) probe on
  in-memory embeddings, scored with heareval's own metric functions. Its figures are
  *fast-probe* scores, never HEAR scores: every table it feeds says so.
- :mod:`hear_gura.analysis.layer_scores`: one member pass per task collects every
  state of each multi-state member; each state is probed.
- :mod:`hear_gura.analysis.learned_weights`: SUPERB's weighted sum of the states,
  trained with the probe; exported as a ``layers`` option.
- :mod:`hear_gura.analysis.report`: ``layers-fastprobe.{csv,md,png}``.
- :mod:`hear_gura.analysis.cli`: the ``hear-gura layers`` command.
"""
