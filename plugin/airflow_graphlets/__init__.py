"""airflow-graphlets: record Airflow task runs into ML Metadata, understand model graphlets,
and prune training runs that will not be deployed."""

__version__ = "0.1.0"
