"""The real-outcome benchmark of the push predictor (docs/prune.md).

Continuous-training histories in which every blessing and push comes from training a model and
evaluating it against the deployed one on the pipeline's drifting data: ``specs`` draws the
pipelines from a seed, ``streams`` their data, ``lab`` trains and scores every candidate,
``tfx_store`` writes the history into MLMD as TFX would, ``closed_loop`` replays a policy with
the evaluations redone against the model it would have deployed.
"""
