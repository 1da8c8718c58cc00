"""Airflow local settings for the continuous-training backfill (scripts/ct_backfill.py).

Airflow imports ``airflow_local_settings`` in each of its processes at start-up. Importing the
pipelines' heavy libraries here, in the scheduler, means the LocalExecutor's workers and the task
processes they fork start with scikit-learn and river already loaded, instead of each task
spending about two seconds of CPU importing them again. The same trick serves any deployment
whose tasks share heavy imports. Nothing else is changed.
"""

import sklearn.ensemble
import sklearn.linear_model
import sklearn.pipeline
import sklearn.preprocessing  # noqa: F401
from river.datasets import synth  # noqa: F401
