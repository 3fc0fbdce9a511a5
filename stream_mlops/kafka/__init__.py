"""The thin Kafka edge: broker management, topics, transport backends and the
consume-process-produce runtime. Nothing in the pure core imports this package."""
