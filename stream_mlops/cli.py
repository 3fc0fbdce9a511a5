"""The ``stream-mlops`` command line: argument parsing and dispatch only.

Every handler imports its implementation lazily, so ``stream-mlops --help``
and the broker commands start fast and do not need river or Kafka clients.
Each handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import stream_mlops

Handler = Callable[[argparse.Namespace], int]

# The Kafka client libraries (stream_mlops.kafka.backends.BACKENDS, spelled out
# so that parsing does not import the Kafka edge).
CLIENTS = ("kafka-python", "confluent-kafka")


def _broker(args: argparse.Namespace) -> int:
    from stream_mlops.kafka import broker

    return broker.command(args.action, data_dir=args.data_dir, nodes=args.nodes, secure=args.secure)


def _topics(args: argparse.Namespace) -> int:
    from stream_mlops.kafka import topics

    return topics.command(
        args.action, partitions=args.partitions, config_path=args.config, client=args.client
    )


def _acls(args: argparse.Namespace) -> int:
    from stream_mlops.kafka import acls

    return acls.command(
        args.config,
        bootstrap=args.bootstrap_server,
        command_config=args.command_config,
        roles=args.role,
        principals=args.principal or (),
    )


def _replay(args: argparse.Namespace) -> int:
    from stream_mlops import offline

    return offline.command(
        args.file,
        config_path=args.config,
        now=args.wall_clock,
        report_path=args.report,
        summary_path=args.summary_json,
        reference_path=args.reference,
    )


def _wall_clock(text: str) -> float:
    """``now`` (when the replay starts), epoch seconds, or ISO-8601 with a zone."""
    if text == "now":
        import time

        return time.time()
    from stream_mlops.models_cli import parse_time

    return parse_time(text)


def _schema(args: argparse.Namespace) -> int:
    from stream_mlops import events

    try:
        text = events.json_schemas(args.event)
    except ValueError as exc:
        sys.stderr.write(f"stream-mlops schema: {exc}\n")
        return 2
    sys.stdout.write(text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from consumers import engine

    # One process, or a pool of that many group members: the same flags.
    start = (
        engine.main if args.workers == 1 else functools.partial(engine.run_workers, args.workers)
    )
    return start(
        config_path=args.config,
        log_format=args.log_format,
        instance_id=args.instance_id,
        client=args.client,
        metrics_host=args.metrics_address,
        metrics_port=args.metrics_port,
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _simulate(args: argparse.Namespace) -> int:
    if args.system == "fraud":
        from producers import fraud

        return fraud.main(args.options)
    from producers import demand

    return demand.main(args.options)


def _tail(args: argparse.Namespace) -> int:
    from stream_mlops.config import ConfigError, load_settings
    from stream_mlops.kafka import tail
    from stream_mlops.kafka.bootstrap import connection_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"stream-mlops tail: {exc}\n")
        return 2
    kafka = connection_settings(settings, bootstrap_servers=args.bootstrap, client=args.client)
    return tail.command(
        args.topic or kafka.topics.drift_alerts,
        kafka=kafka,
        raw_json=args.json,
        from_beginning=args.from_beginning,
        max_events=args.max,
    )


def _demo(args: argparse.Namespace) -> int:
    from stream_mlops.plotting import PlottingUnavailableError, pyplot

    try:
        pyplot()  # now, not after a run of a minute and a half
    except PlottingUnavailableError as exc:
        print(f"stream-mlops demo: {exc}", file=sys.stderr)
        return 2
    if not args.no_ui:
        from stream_mlops.ui.command import UiUnavailableError, require_ui_extra

        try:
            require_ui_extra()
        except UiUnavailableError as exc:
            print(f"stream-mlops demo: {exc}; or run without the page: --no-ui", file=sys.stderr)
            return 2
    from stream_mlops.demo.run import DemoOptions, run_demo
    from stream_mlops.kafka.transport import TransportError

    if not 0 < args.drift_at < args.events:
        print(
            f"stream-mlops demo: --drift-at must be inside the run (0 < {args.drift_at} < "
            f"--events {args.events})",
            file=sys.stderr,
        )
        return 2
    try:
        return run_demo(
            DemoOptions(
                events=args.events,
                drift_at=args.drift_at,
                rate=args.rate,
                seed=args.seed,
                out=args.out,
                client=args.client,
                ui=not args.no_ui,
            )
        )
    except TransportError as exc:  # the cluster is unreachable, a topic is missing, ...
        print(f"stream-mlops demo: {exc}", file=sys.stderr)
        return 1


def _ui(args: argparse.Namespace) -> int:
    from stream_mlops.ui import command

    return command.main(
        args.config,
        host=args.host,
        port=args.port,
        registry=args.registry,
        client=args.client,
        log_format=args.log_format,
    )


def _retrainer(args: argparse.Namespace) -> int:
    from consumers import retrainer

    return retrainer.main(
        config_path=args.config,
        log_format=args.log_format,
        instance_id=args.instance_id,
        client=args.client,
        registry_dir=args.registry,
        metrics_host=args.metrics_address,
        metrics_port=args.metrics_port,
    )


def _notify(args: argparse.Namespace) -> int:
    from consumers import notifier

    return notifier.main(
        config_path=args.config,
        log_format=args.log_format,
        client=args.client,
        metrics_host=args.metrics_address,
        metrics_port=args.metrics_port,
    )


def _models(args: argparse.Namespace) -> int:
    from stream_mlops import models_cli as models
    from stream_mlops.registry import resolve_registry

    kafka_reproduce = args.models_command == "reproduce" and args.events is None
    settings = None
    if args.config is not None or kafka_reproduce:
        from stream_mlops.config import ConfigError, load_settings

        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            sys.stderr.write(f"stream-mlops models: {exc}\n")
            return 2
    configured = settings.retrainer.registry if settings is not None else None
    args.registry = resolve_registry(args.registry, configured)
    if not kafka_reproduce or settings is None:
        return models.command(args)
    # reproduce from Kafka: read the recorded offset ranges of labeled-events back.
    from stream_mlops.kafka.retrain_inputs import kafka_window_reader
    from stream_mlops.kafka.transport import TransportError

    try:
        with kafka_window_reader(settings) as read_window:
            return models.command(args, read_window=read_window)
    except TransportError as exc:  # the cluster is unreachable, the records are gone, ...
        sys.stderr.write(f"stream-mlops models: {exc}\n")
        return 1


def _add_log_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default="json",
        help="json: one object per line for machines (default); console: for people",
    )


def _add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        help=(
            "model registry directory (default: [retrainer] registry in the config, "
            "else $STREAM_MLOPS_REGISTRY, else ./registry)"
        ),
    )


def _add_service_options(parser: argparse.ArgumentParser, role: str) -> None:
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    _add_log_format_option(parser)
    parser.add_argument(
        "--instance-id",
        default=None,
        help=(
            f"this process's stable identity: part of its transactional id and its "
            f"group.instance.id (static membership); give each {role} process its own "
            "(default: $STREAM_MLOPS_INSTANCE_ID, else the host name)"
        ),
    )
    _add_client_option(parser)


def _add_metrics_options(parser: argparse.ArgumentParser, service: str) -> None:
    from stream_mlops.config import SERVICE_METRICS_PORTS

    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help=(
            "serve /metrics, /healthz and /readyz on this port (0: a free one, logged as "
            f"metrics.started); turns [metrics] on (default port: [metrics] port, else "
            f"{SERVICE_METRICS_PORTS[service]})"
        ),
    )
    parser.add_argument(
        "--metrics-address",
        default=None,
        metavar="HOST",
        help=(
            "the address they listen on (default: [metrics] host, else 127.0.0.1; "
            "0.0.0.0 for Kubernetes probes); turns [metrics] on"
        ),
    )


def _add_client_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default=None,
        help="Kafka client library (default: [kafka] client in the config, else kafka-python)",
    )


def _add_tail_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = sub.add_parser(
        "tail",
        help="follow a topic and print its events readably",
        description=(
            "Follows a topic with read_committed (only committed alerts, as downstream "
            "services see them) and prints one line per event."
        ),
    )
    tail.add_argument(
        "topic",
        nargs="?",
        default=None,
        help="default: [kafka.topics] drift_alerts in the config, else drift-alerts",
    )
    tail.add_argument("--json", action="store_true", help="print the raw events, one per line")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest event, not the newest"
    )
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N events")
    tail.add_argument(
        "--bootstrap",
        default=None,
        help=(
            "bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else [kafka] "
            "bootstrap_servers in the config, else the local broker)"
        ),
    )
    tail.add_argument(
        "--config", type=Path, default=None, help="TOML configuration file (its [kafka] settings)"
    )
    _add_client_option(tail)
    tail.set_defaults(handler=_tail)


def _add_broker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = sub.add_parser("broker", help="the managed local Apache Kafka broker")
    broker.add_argument("action", choices=["start", "stop", "status"])
    broker.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the broker keeps its config, data, pid and log (default: .kafka/)",
    )
    broker.add_argument(
        "--nodes",
        type=int,
        default=None,
        help=(
            "start: a KRaft cluster of N nodes, each its own JVM, on ports PORT+2k and "
            "CONTROLLER_PORT+2k; topics then get min(3, N) replicas (default: 1, or what "
            "the data dir holds; stop and status always cover every node)"
        ),
    )
    broker.add_argument(
        "--secure",
        action="store_true",
        default=None,
        help=(
            "start: SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS between nodes, ACLs; "
            "writes the CA, the users' passwords and client configs into the data dir "
            "(docs/security.md)"
        ),
    )
    broker.set_defaults(handler=_broker)


def _add_acls_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acls = sub.add_parser(
        "acls",
        help="print the kafka-acls.sh commands that grant the services their ACLs",
        description=(
            "The ACLs the engine, the retrainer, an operator (tail), a scoring service and "
            "the notifier need, from the topic names, group ids and transactional-id "
            "prefixes of the config, as kafka-acls.sh lines to run as an admin "
            "(docs/security.md)."
        ),
    )
    acls.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    acls.add_argument("--bootstrap-server", default="localhost:9093", help="for kafka-acls.sh")
    acls.add_argument(
        "--command-config",
        default="admin.properties",
        help="the admin's client properties file, for kafka-acls.sh",
    )
    acls.add_argument(
        "--role",
        action="append",
        choices=["engine", "retrainer", "operator", "scorer", "notifier"],
        help="only these roles (repeatable; default: all five)",
    )
    acls.add_argument(
        "--principal",
        action="append",
        metavar="ROLE=PRINCIPAL",
        help="a role's principal if not User:<role>, e.g. engine=User:svc-engine",
    )
    acls.set_defaults(handler=_acls)


def _add_replay_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="run the engine's core on a JSONL file of events, without a broker",
        description=(
            "Reads prediction and outcome events in file order, writes the alerts and "
            "retrain requests the engine would publish as JSONL on stdout and a summary "
            "on stderr (with progress while it runs, when stderr is a terminal). "
            "Deterministic: the same input (and --wall-clock) gives byte-identical output, "
            "with or without --report and --summary-json. Events the engine refuses (too "
            "far ahead in event time, over a limit, an unknown model) are reported by line "
            "and counted, as malformed lines are."
        ),
    )
    replay.add_argument("file", type=Path, help="JSONL file, one event per line ('-' for stdin)")
    replay.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    replay.add_argument(
        "--wall-clock",
        type=_wall_clock,
        default=None,
        metavar="TIME",
        help=(
            "judge events against this wall clock too ('now', epoch seconds or ISO-8601): "
            "an event later than it by more than [join] max_ahead_of_wall_clock_seconds "
            "is refused. Default: none, a file is judged by its own event time only"
        ),
    )
    replay.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE.html",
        help=(
            "also write a page: each model's signals over the input lines with a marker at "
            "each alert (needs matplotlib: the demo extra)"
        ),
    )
    replay.add_argument(
        "--summary-json",
        type=Path,
        default=None,
        metavar="FILE",
        help=(
            "also write the summary as JSON: counts, every alert and retrain request with its "
            "line, refused lines, alerts per signal, timings (docs/contract.md)"
        ),
    )
    replay.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help=(
            "pin every model's reference to this file of known-good prediction, outcome and "
            "labeled events (reference = {file = ...} in the configuration, for all models; "
            "docs/detection.md, 'A pinned reference')"
        ),
    )
    replay.set_defaults(handler=_replay)


def _add_notify_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = sub.add_parser(
        "notify",
        help="forward drift alerts and promotions to webhooks (Slack-compatible or JSON)",
        description=(
            "Reads drift-alerts and model-updates with read_committed as the consumer group "
            "[notify] group_id and POSTs each to the webhooks of [[notify.webhooks]] that want "
            "it, retrying with backoff; after [notify] max_attempts failures (or a refusal) it "
            "writes a dead letter. Offsets are committed after delivery: at least once, each "
            "request carrying the notification's id as Idempotency-Key (docs/notify.md)."
        ),
    )
    notify.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    _add_log_format_option(notify)
    _add_client_option(notify)
    _add_metrics_options(notify, "notifier")
    notify.set_defaults(handler=_notify)


def _add_ui_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = sub.add_parser(
        "ui",
        help="the live operator page: models, alerts, retraining, lag, dead letters",
        description=(
            "Serves one read-only web page that updates itself: each model's champion, "
            "lineage and promotions (from the registry), its signals and their detectors' "
            "state, the alerts with what moved, retrain requests and their outcome, the "
            "engine's and the retrainer's throughput and lag, and dead letters by reason. "
            "Reads the topics with read_committed. Loopback only unless --host says "
            "otherwise; the page has no login. Needs the ui extra."
        ),
    )
    ui.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    ui.add_argument(
        "--host", default=None, help="address to listen on (default: [ui] host, else 127.0.0.1)"
    )
    ui.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: [ui] port, else 8470; 0 picks a free one, logged as ui.started)",
    )
    _add_registry_option(ui)
    _add_log_format_option(ui)
    _add_client_option(ui)
    ui.set_defaults(handler=_ui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-mlops",
        description="Streaming drift detection for ML models in production, on Kafka.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {stream_mlops.__version__}",
        help="the installed version, and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_broker_parser(sub)
    _add_acls_parser(sub)

    topics = sub.add_parser("topics", help="create the topics of the interface contract")
    topics.add_argument("action", choices=["create"])
    topics.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions per topic (default: from the config, else 3)",
    )
    topics.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    _add_client_option(topics)
    topics.set_defaults(handler=_topics)

    _add_replay_parser(sub)

    schema = sub.add_parser("schema", help="print the JSON Schema of the events")
    schema.add_argument(
        "event",
        nargs="?",
        default=None,
        help="one event type (prediction, outcome, drift_alert, ...); default: all",
    )
    schema.set_defaults(handler=_schema)

    run = sub.add_parser("run", help="the drift engine, as a Kafka consumer-group member")
    _add_service_options(run, "engine")
    _add_metrics_options(run, "engine")
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help=(
            "run N engine processes as members of the group, one per core (instance ids "
            "<id>-0 .. <id>-N-1, metrics ports PORT .. PORT+N-1); more than the input "
            "topics' partition count leaves some idle; if one exits, all stop and the "
            "command exits non-zero (default 1)"
        ),
    )
    run.set_defaults(handler=_run)

    retrainer = sub.add_parser(
        "retrainer",
        help="the retraining service: retrain requests + labeled events -> model updates",
    )
    _add_service_options(retrainer, "retrainer")
    _add_metrics_options(retrainer, "retrainer")
    _add_registry_option(retrainer)
    retrainer.set_defaults(handler=_retrainer)

    _add_notify_parser(sub)

    models = sub.add_parser(
        "models", help="the model registry: list, show, search, reproduce, experiments"
    )
    models.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration file ([retrainer] registry; Kafka for reproduce)",
    )
    from stream_mlops.models_cli import add_arguments as add_models_arguments

    add_models_arguments(models)
    # None means "not given", so [retrainer] registry in the config can apply.
    models.set_defaults(registry=None, handler=_models)

    simulate = sub.add_parser(
        "simulate",
        help="an example scoring system publishing predictions and outcomes, with drift",
        description=(
            "Runs the fraud or demand example system. Its options follow the system's name; "
            "see 'stream-mlops simulate fraud --help'."
        ),
    )
    simulate.add_argument("system", choices=["fraud", "demand"])
    simulate.add_argument(
        "options", nargs=argparse.REMAINDER, help="options of the system (see its --help)"
    )
    simulate.set_defaults(handler=_simulate)

    _add_tail_parser(sub)
    _add_ui_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="the whole closed loop on the local broker, with a report",
        description=(
            "Starts the local broker if none answers, runs the engine, the retrainer and the "
            "fraud scoring service with an abrupt drift at a known transaction, shows progress, "
            "serves the operator page on a free loopback port (its address is printed), "
            "and ends with a summary and demo-report.html (error rate over time, drift, alerts, "
            "promotion). Exit 0 when the drift was detected and a new version promoted."
        ),
    )
    demo.add_argument("--events", type=int, default=24_000, help="transactions (default 24000)")
    demo.add_argument(
        "--drift-at", type=int, default=9_000, help="transaction where the drift starts"
    )
    demo.add_argument("--rate", type=float, default=500.0, help="transactions per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, default=Path("demo-report.html"), help="report file")
    demo.add_argument(
        "--client",
        choices=CLIENTS,
        default="kafka-python",
        help="Kafka client library of every client the demo runs (default kafka-python)",
    )
    demo.add_argument(
        "--no-ui",
        action="store_true",
        help="do not serve the operator page (by default its address is printed at the start)",
    )
    demo.set_defaults(handler=_demo)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
