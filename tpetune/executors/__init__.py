"""Where trials run: the Executor protocol, serial, worker processes and Spark."""
