"""Building blocks of the continuous-training example DAGs (``dags/continuous_training.py``).

``streams``: drifting data streams from river, cut into daily spans. ``components``: what each
TFX-shaped component computes, as plain functions over files. ``pipelines``: the example
pipelines and the releases of each. Nothing here imports Airflow; the DAG file wires it up.
"""
