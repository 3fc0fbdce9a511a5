"""``stream-mlops demo``: the whole closed loop on the local broker, with a report."""
