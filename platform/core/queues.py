"""The Celery queues, one per latency class (the Celery app and the queue-depth metrics use it)."""

QUEUES = ("online", "batch", "training", "monitoring")
