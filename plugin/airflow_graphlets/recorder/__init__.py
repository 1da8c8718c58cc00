"""Recording task runs: records, spool, writer, and the Airflow listener edge."""
