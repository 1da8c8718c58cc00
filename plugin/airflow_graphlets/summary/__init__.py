"""The UI's summary: what the Graphlets pages show, precomputed from an MLMD store into tables of
our own, so a page aggregates a few hundred thousand small rows in SQL instead of extracting every
graphlet of a paper-scale store (``docs/ui.md``)."""
