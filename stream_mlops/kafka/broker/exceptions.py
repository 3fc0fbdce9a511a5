"""The one error type of the local-broker edge."""


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started or stopped.

    The message is one line saying why; ``log_tail`` holds the last lines of the
    broker's own log when the JVM got far enough to write one.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
