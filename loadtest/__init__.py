"""Load testing: replay clickstreams into Kafka, drive Recommend open-loop, probe freshness, write reports."""
