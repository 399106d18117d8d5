"""The dev stack's external parts: Apache Kafka fetched from Maven Central and run as KRaft nodes."""
