"""Operations: what people on call see and receive (the notifier: ``notify_*``)."""
