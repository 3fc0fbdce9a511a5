"""The live operator page (``stream-mlops ui``): one read-only page over a deployment.

Pure parts, testable without a broker or a browser:

* ``view``: the view model, ``OperatorView``: what the page shows;
* ``digest``: ``StreamDigest`` folds topic records and sampled events into it,
  in bounded memory;
* ``throughput``: lag and rates of a consumer group from sampled offsets;
* ``registry_view``: what the model registry says about each model;
* ``charts`` and ``render``: the panels' HTML and SVG charts.

The edge: ``feed`` (``TopicFeed``: the topics, through the transport, and the
registry directory, in one thread), ``app`` (the Starlette application) and
``command`` (the command: the socket, uvicorn, the feed thread). The web stack
is the optional ``ui`` extra; importing this package needs none of it.
"""
