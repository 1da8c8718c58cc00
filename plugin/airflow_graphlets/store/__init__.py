"""MLMD access: connect, TFX schema names, writes and reads. Imports nothing from Airflow."""
