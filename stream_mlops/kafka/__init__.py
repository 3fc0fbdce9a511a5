"""The thin Kafka edge: the managed local broker, topic setup, and (later) the
consume-process-produce loop. Nothing in the pure core imports from here."""
