"""stream-mlops: streaming drift detection for machine-learning models in production.

The package is a pure core (events, join, signals, detectors, controller,
engine, replay) with no Kafka import, plus a thin Kafka edge in
``stream_mlops.kafka``. Services in ``consumers/`` and ``producers/`` only wire.
"""

__version__ = "0.1.0"
