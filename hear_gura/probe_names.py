"""Names the two probes' reports share, in one place with no imports (the harness and the analysis both read them).

- :data:`LOWER_IS_BETTER`: heareval's metrics where lower is better (every other one is maximised);
- :data:`FAST_TITLE_TAG` / :data:`FAST_FILE_TAG`: put in every title / file name of fast-probe figures, which are
  never HEAR scores.
"""

LOWER_IS_BETTER = frozenset({"segment_1s_er"})
FAST_TITLE_TAG = "fast probe, not HEAR scores"
FAST_FILE_TAG = "fastprobe"
