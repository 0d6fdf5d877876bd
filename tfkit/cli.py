"""`tfkit` command line: parses arguments and calls the library, nothing more.

    tfkit list
    tfkit run NAME [--quick] [--out DIR] [--data-dir DIR] [--seed N] [--set key=value ...]
    tfkit run NAME [--quick] [--set key=value ...] --print-config
    tfkit demo [--out DIR] [--only NAME,...]
    tfkit eval robustness --model PATH --data cifar10 --suite corruptions,adversarial,...
        [--import MODULE]
    tfkit fedmd worker --port P
    tfkit export savedmodel RUN_DIR_OR_MODEL --out saved_models/NAME/VERSION [--import MODULE]
    tfkit export tflite RUN_DIR_OR_MODEL --out DIR [--import MODULE]
    tfkit bench [NAME ...]

TensorFlow's C++ log is off below its fatal level (TF 2.14 prints three harmless "Unable to
register cuDNN/cuFFT/cuBLAS factory" errors at every start); TF_CPP_MIN_LOG_LEVEL=0 shows it.
TensorFlow's "N out of the last M calls to <function ...> triggered tf.function retracing"
warnings are dropped too: the evaluators build one compiled function per perturbation (a removed
block, an attack strength), each traced once, which that heuristic counts as retracing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _add_import_option(parser: argparse.ArgumentParser) -> None:
    """`--import MODULE` (repeatable) for the commands that load a user's model file."""
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help="import this module before loading the model, e.g. the one that "
                             "registers its custom layers (keras.utils."
                             "register_keras_serializable): a module name (found from the "
                             "current folder too) or a path to a .py file; repeatable")


def build_parser() -> argparse.ArgumentParser:
    from tfkit import __version__

    parser = argparse.ArgumentParser(prog="tfkit", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tfkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the registered experiments")

    run = sub.add_parser("run", help="run one experiment into a run directory")
    run.add_argument("name", help="experiment name (see `tfkit list`)")
    run.add_argument("--quick", action="store_true", help="the reduced-size preset")
    run.add_argument("--out", type=Path, help="run directory (re-using one resumes it)")
    run.add_argument("--data-dir", help="folder with the dataset files (else $TFKIT_DATA_DIR)")
    run.add_argument("--seed", type=int, help="random seed (default: the config's)")
    run.add_argument("--workers", help="FedMD: comma-separated TFF worker addresses host:port")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set epochs=3 (repeatable); "
                          "`--print-config` lists the fields")
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved config (every field --set accepts, with the "
                          "value this command would use; data_dir null: $TFKIT_DATA_DIR, else "
                          "a download) as JSON and exit without running")

    demo = sub.add_parser("demo", help="every experiment at its smallest size on embedded data")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--only", help="comma-separated subset of experiments")
    demo.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("eval", help="evaluate a user's model")
    ev_sub = ev.add_subparsers(dest="evaluation", required=True)
    rob = ev_sub.add_parser("robustness", help="robustness suites on a Keras model / SavedModel")
    rob.add_argument("--model", required=True, help=".keras file or SavedModel directory")
    rob.add_argument("--data", default="cifar10", help="dataset name (tfkit.datasets)")
    rob.add_argument("--suite", default="corruptions,adversarial,spatial,patch",
                     help="comma-separated suites: corruptions,adversarial,spatial,patch,layers")
    rob.add_argument("--data-dir")
    rob.add_argument("--limit", type=int, default=1000, help="test examples to use")
    rob.add_argument("--out", type=Path, help="write results.json here")
    rob.add_argument("--seed", type=int, default=0)
    _add_import_option(rob)

    fed = sub.add_parser("fedmd", help="FedMD deployment helpers")
    fed_sub = fed.add_subparsers(dest="fedmd_command", required=True)
    worker_help = ("serve one TFF worker. It has no authentication: any host that reaches the "
                   "port can run TensorFlow graphs on it. Without --bind it listens on ALL "
                   "interfaces (TFF's worker_binary): pass --bind with a private interface's "
                   "address, or firewall the port (ufw deny PORT, or iptables and ip6tables -I "
                   "INPUT -p tcp --dport PORT ! -i lo -j DROP) and reach it over an SSH tunnel "
                   "(docs/fedmd.md)")
    worker = fed_sub.add_parser("worker", help=worker_help, description=worker_help)
    worker.add_argument("--port", type=int, required=True, help="TCP port")
    worker.add_argument("--bind", metavar="ADDR",
                        help="listen on this IPv4 address of the host only (e.g. 10.0.0.5 on a "
                             "private network, or 127.0.0.1 behind an SSH tunnel); needs Linux "
                             "and a C compiler (tfkit.federated.bind). Default: every interface")

    export = sub.add_parser("export", help="export a trained model")
    exp_sub = export.add_subparsers(dest="format", required=True)
    sm = exp_sub.add_parser("savedmodel", help="SavedModel with explicit serving signatures")
    sm.add_argument("source", help="run directory or model file")
    sm.add_argument("--out", type=Path, required=True, help="e.g. saved_models/NAME/1")
    sm.add_argument("--data-dir", help="folder with the test data for the parity check (else "
                                       "$TFKIT_DATA_DIR, else a download, else random images)")
    _add_import_option(sm)
    tfl = exp_sub.add_parser("tflite", help="float32 / float16 / int8 TFLite with parity table")
    tfl.add_argument("source", help="run directory or model file")
    tfl.add_argument("--out", type=Path, required=True)
    tfl.add_argument("--data-dir")
    _add_import_option(tfl)

    bench = sub.add_parser("bench", help="run benchmarks/ and refresh docs/RESULTS.md")
    bench.add_argument("names", nargs="*", help="benchmark names (default: all)")
    return parser


def _cmd_list() -> int:
    from tfkit.experiments import SUMMARIES

    width = max(map(len, SUMMARIES))
    for name, summary in SUMMARIES.items():
        print(f"{name:<{width}}  {summary}")
    return 0


def _experiment(name: str):
    """The registered experiment; its unknown-name KeyError as a one-line CLI error (other
    KeyErrors are bugs and keep their traceback)."""
    from tfkit import experiments
    from tfkit.errors import TfkitError

    try:
        return experiments.get(name)
    except KeyError as e:
        if name in experiments.names():
            raise
        raise TfkitError(e.args[0]) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from tfkit import experiments

    exp = _experiment(args.name)
    overrides = list(args.overrides)
    if args.workers:
        overrides.append(f"workers={args.workers}")
    cfg = exp.config("quick" if args.quick else "full", overrides,
                     seed=args.seed, data_dir=args.data_dir)
    if args.print_config:
        from tfkit.config import to_dict

        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    out = args.out or _default_out(args.name)
    print(f"tfkit run {args.name}: writing to {out}", flush=True)
    experiments.run_experiment(exp, cfg, out)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tfkit import experiments
    from tfkit.experiments.base import set_aside_other_run
    from tfkit.runs import atomic_write_text, markdown_table

    names = args.only.split(",") if args.only else experiments.names()
    rows, failed, t_start = [], [], time.time()
    for name in names:
        exp = _experiment(name)
        out = args.out / name
        print(f"\n=== demo: {name} -> {out}", flush=True)
        t0 = time.time()
        try:
            cfg = exp.config("demo", seed=args.seed)
            moved = set_aside_other_run(exp, cfg, out)
            if moved:  # e.g. made by an older tfkit whose demo preset differed
                print(f"{out} held a demo of another config; moved it to {moved}", flush=True)
            results = experiments.run_experiment(exp, cfg, out)
            h = exp.headline(results)
            rows.append([name, h.metric, h.ours, h.paper, f"{time.time() - t0:.0f}s",
                         str(out / "report.md")])
        except Exception as e:  # keep going: one broken experiment must not hide the others
            failed.append(name)
            rows.append([name, "FAILED", f"{type(e).__name__}: {e}", "", "", ""])
    table = markdown_table(rows, ["experiment", "headline", "ours", "paper", "time", "report"])
    atomic_write_text(args.out / "summary.md", f"# tfkit demo\n\n{table}")
    print(f"\n{table}\nall demos: {time.time() - t_start:.0f}s; summary: {args.out}/summary.md")
    return 1 if failed else 0


def _import_modules(specs: Sequence[str]) -> None:
    """Imports each `--import` spec: a module name (the current folder is searched too, as by
    `python -m`) or a path to a .py file (its folder goes on sys.path, for its own imports).
    A spec that fails to import is a TfkitError naming it and the error it raised."""
    from tfkit.errors import TfkitError

    for spec in specs:
        is_path = spec.endswith(".py") or os.sep in spec
        folder = str(Path(spec).parent.resolve()) if is_path else os.getcwd()
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            if not is_path:
                importlib.import_module(spec)
                continue
            if not Path(spec).is_file():
                raise FileNotFoundError(f"no such file: {spec}")
            name = Path(spec).stem
            module_spec = importlib.util.spec_from_file_location(name, spec)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        except Exception as e:  # noqa: BLE001  whatever the user's module raises
            raise TfkitError(f"--import {spec}: cannot import it ({type(e).__name__}: "
                             f"{e})") from e


def _not_retracing_warning(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads; see above
    # TFF's google.rpc imports pkg_resources, which warns on every run; nothing a user can act
    # on (setuptools<81 is pinned on purpose, tensorflow-text needs pkg_resources).
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    logging.getLogger("tensorflow").addFilter(_not_retracing_warning)  # see above (idempotent)
    from tfkit.errors import TfkitError

    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "eval":
            from tfkit.robustness.cli import eval_command

            _import_modules(args.imports)
            return eval_command(model=args.model, data=args.data, suites=args.suite.split(","),
                                data_dir=args.data_dir, limit=args.limit, out=args.out,
                                seed=args.seed)
        if args.command == "fedmd":
            from tfkit.federated.serve import serve_worker

            return serve_worker(args.port, bind=args.bind)
        if args.command == "export":
            from tfkit.export import cli as export_cli

            _import_modules(args.imports)
            if args.format == "savedmodel":
                return export_cli.export_savedmodel(args.source, args.out,
                                                    data_dir=args.data_dir)
            return export_cli.export_tflite(args.source, args.out, data_dir=args.data_dir)
        if args.command == "bench":
            from tfkit.bench import run_benchmarks

            return run_benchmarks(args.names)
    except KeyboardInterrupt:  # Ctrl-C: one line, not TF's traceback; workers stop at exit
        again = (" (the same --out): it resumes from the last finished stage and checkpoint"
                 if args.command in ("run", "demo") else "")
        print(f"\ntfkit: interrupted; run the same command again{again}", file=sys.stderr)
        return 130
    except (TfkitError, OSError) as e:  # user-fixable: a bad value, a missing/unwritable path
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e  # no repr quotes
        print(f"tfkit: error: {msg}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
