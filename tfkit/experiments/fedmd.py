"""FedMD (Li & Wang 2019): heterogeneous federated learning via model distillation, on TFF.

    uv run tfkit run fedmd --quick --out runs/fedmd-quick     # TFKIT_DATA_DIR=../shared/data
    uv run tfkit run fedmd --quick --workers 127.0.0.1:8000,127.0.0.1:8001   # over TFF workers
    uv run tfkit demo --only fedmd                             # embedded digits, ~1 min

Stages: `transfer` (each party: public data, then its private data -> round-0 accuracy),
`upper_bound` (each model from its public weights on the pooled private data), `fedmd_to_round_N`
(the rounds, checkpointed per round by `tff.program.FileProgramStateManager`), `report`.
Re-running into the same --out with a larger `rounds` (`--set rounds=10`) continues from the
last finished round; a smaller `rounds` than the rounds already finished there is refused
(finished rounds cannot be undone). Folders made before the rounds stage was renamed (a `fedmd`
stage record) are reused as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tfkit.config import ConfigError
from tfkit.experiments.base import Experiment, Headline
from tfkit.federated.fedmd.report import write_report
from tfkit.runs import RunDir

__all__ = ["Config", "run", "headline", "EXPERIMENT"]


@dataclass(frozen=True)
class Config:
    """FedMD on MNIST (public) -> FEMNIST letters a-f (private), ten paper CNNs.

    Full: `uv run tfkit run fedmd` — the paper reports round-0 mean 0.747 -> 0.878 after 13
    rounds, pooled upper bound 0.930. Quick (`--quick`: CNNs at 1/8 width, 10k public samples,
    5000-sample alignment, 4 rounds of 3 digest + 8 revisit epochs, BatchNorm on moving
    statistics while digesting; ~16 CPU-minutes): expect mean accuracy 0.438 -> 0.543
    (`mean_gain` +0.105), 10/10 parties above round 0, pooled upper bound 0.627 (gap 0.084;
    measured, see docs/RESULTS.md). Continued to 13 rounds (`--quick --set rounds=13`, same
    --out): 0.561 (+0.123, gap 0.066), a plateau at 0.553-0.565 from round 6. With the paper's
    public pretraining (`--quick --set public_size=0 --set public_epochs=10 --set rounds=13`,
    ~53 CPU-minutes, most of it pretraining): 0.479 -> 0.631 (+0.152), bound 0.689, gap 0.058,
    10/10 parties above round 0 (seed 0; other seeds in docs/RESULTS.md).
    """

    scenario: Literal["femnist", "digits"] = "femnist"  # digits = embedded demo data
    setting: Literal["balanced", "writers"] = "balanced"  # the paper's balanced 10 x 6 x 3
    num_parties: int = 10  # the paper's ten CNNs
    samples_per_class: int = 3  # the paper: 3 private samples of each letter per party
    width: float = 1.0  # filter multiplier of the paper CNNs (1.0 = the paper's sizes)
    public_size: int = 0  # public samples used (0 = all 60,000 MNIST train images)
    public_epochs: int = 10  # transfer learning on public data (the authors: up to 20, early stop)
    private_epochs: int = 25  # transfer learning on private data (the authors' code: 25)
    rounds: int = 13  # the paper's FEMNIST figure runs 13+ rounds
    alignment_size: int = 5000  # fresh random public subset per round (the paper: 5000)
    digest_epochs: int = 1  # the paper: 1 epoch of logit matching per round
    revisit_epochs: int = 4  # "a few" private epochs per round
    upper_bound_epochs: int = 25  # epochs on the pooled private data (as private_epochs)
    private_batch_size: int = 5  # the authors' per-party private batch size
    public_batch_size: int = 128  # public pretraining batch size
    digest_batch_size: int = 256  # the paper's logit-matching batch size
    learning_rate: float = 1e-3  # Adam 1e-3 throughout (the paper)
    bn_momentum: float = 0.99  # Keras' default (the paper's); short runs need ~0.9 (see below)
    # BatchNorm while digesting: "batch" = Keras fit (the authors' code); "moving" = the moving
    # statistics that produced the communicated logits (no round-by-round logit inflation when
    # public and private images differ, see docs/fedmd.md)
    digest_batch_norm: Literal["batch", "moving"] = "batch"
    # split each digest batch into micro-batches of this many images, same update (only with
    # "moving"; 1/4-width 2-layer CNNs digest 1.3-1.4x faster at 16; None = the whole batch)
    digest_micro_batch_size: int | None = None
    # dropout masks from 8 or 16 random bits per unit while parties train (faster digest; the
    # rate rounded to a multiple of 2**-bits, e.g. 0.2 -> 0.1992 at 8); None = Keras' draws
    dropout_bits: Literal[8, 16] | None = None
    party_weights: tuple[float, ...] | None = None  # per-party weights of the consensus mean
    # (one positive number per party; None = the paper's plain mean)
    # parties trained at once (transfer learning, upper bound, rounds), each in a thread
    max_parallel_parties: int = 1  # (same numbers for every value)
    deadline_s: float = 0.0  # per-party deadline for the communicate stage (0 = none)
    jit_compile: bool = False  # XLA-compile party steps (on CPU the digest ran 1.9x slower)
    seed: int = 0
    data_dir: str | None = None
    workers: str | None = None  # comma-separated TFF worker addresses host:port (else local)

    def __post_init__(self) -> None:
        if self.party_weights is not None and (
                len(self.party_weights) != self.num_parties or min(self.party_weights) <= 0):
            raise ConfigError(f"party_weights must be {self.num_parties} positive numbers (one "
                              f"per party), got {self.party_weights}")
        if self.digest_micro_batch_size is not None and (
                self.digest_micro_batch_size < 1 or self.digest_batch_norm != "moving"):
            raise ConfigError("digest_micro_batch_size must be a positive integer and needs "
                              "digest_batch_norm=moving (batch statistics depend on the batch), "
                              f"got {self.digest_micro_batch_size} with "
                              f"{self.digest_batch_norm!r}")
        if self.dropout_bits not in (None, 8, 16):
            raise ConfigError(f"dropout_bits must be 8, 16 or None, got {self.dropout_bits!r}")
        if self.max_parallel_parties < 1:
            raise ConfigError(f"max_parallel_parties must be >= 1, got "
                              f"{self.max_parallel_parties}")
        if self.rounds < 1 or self.alignment_size < 1:
            raise ConfigError(f"rounds and alignment_size must be >= 1, got {self.rounds} and "
                              f"{self.alignment_size}")
        if self.workers:
            from tfkit.federated.runtime import check_worker_address

            try:
                for address in self.worker_addresses or [""]:
                    check_worker_address(address)
            except ValueError:
                raise ConfigError(f"workers must be comma-separated TFF worker addresses "
                                  f"host:port, got {self.workers!r}") from None

    @property
    def worker_addresses(self) -> list[str]:
        """`workers` as a list of `host:port` (empty: simulate with a local worker)."""
        return [a.strip() for a in (self.workers or "").split(",") if a.strip()]


def _scenario(config: Config):
    from tfkit.federated.fedmd import digits_split, femnist_letters

    if config.scenario == "digits":
        return digits_split(config.num_parties, config.samples_per_class, config.seed)
    return femnist_letters(config.data_dir, config.setting, config.num_parties,
                           config.samples_per_class, config.public_size or None, config.seed)


def _parties(config: Config, data, weights_from: Path | None, suffix: str):
    from tfkit.federated.fedmd import Party, client_arrays, paper_cnns

    models = paper_cnns(config.num_parties, data.num_classes, data.input_shape, config.width,
                        config.seed, config.bn_momentum)
    parties = []
    for i, (cid, model) in enumerate(zip(data.party_ids, models, strict=True)):
        x, y = client_arrays(data.private, cid)
        party = Party(cid, model, x, y, learning_rate=config.learning_rate,
                      private_batch_size=config.private_batch_size,
                      digest_batch_size=config.digest_batch_size,
                      digest_batch_norm=config.digest_batch_norm,
                      digest_micro_batch_size=config.digest_micro_batch_size,
                      dropout_bits=config.dropout_bits, jit_compile=config.jit_compile,
                      seed=config.seed * 1000 + i)
        if weights_from is not None:
            model.load_weights(weights_from / f"{cid}_{suffix}.weights.h5")
        parties.append(party)
    return parties


def _save_progress(path: Path, party, epoch: int) -> None:
    """The party's whole state (`Party.get_state`: weights, both optimizers, shuffling, and
    with them dropout mask generators and loss scales) after `epoch` epochs, atomically."""
    arrays = {}
    for key, value in party.get_state().items():
        if isinstance(value, list):  # one array per weight / slot / generator
            arrays.update({f"list.{key}.{i}": v for i, v in enumerate(value)})
        else:
            arrays[f"value.{key}"] = np.asarray(value)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, epoch=epoch, **arrays)
    tmp.replace(path)


def _load_progress(path: Path, party) -> int:
    """Restores a `_save_progress` file into `party`; returns its epoch (0: no file)."""
    if not path.exists():
        return 0
    with np.load(path) as f:
        if "value.rng" not in f.files:  # written before the whole state was kept
            state = {key: [f[f"{key}_{i}"] for i in range(sum(
                k.startswith(f"{key}_") for k in f.files))]
                for key in ("model", "class_optimizer", "digest_optimizer")}
            state["rng"] = str(f["rng"])
        else:
            state = {}
            for name in f.files:
                if name == "epoch":
                    continue
                kind, key, *index = name.split(".")
                if kind == "value":
                    state[key] = str(f[name]) if key == "rng" else f[name]
                elif kind == "list":
                    state.setdefault(key, {})[int(index[0])] = f[name]
            state = {key: [value[i] for i in range(len(value))] if isinstance(value, dict)
                     else value for key, value in state.items()}
        party.set_state(state)
        return int(f["epoch"])


def _pretrain(config: Config, data, party, progress: Path, public: Path, run_dir: RunDir
              ) -> None:
    """Public pretraining of one party, resumable per epoch: its state is saved after every
    epoch (`progress`), so an interrupted run continues at its last finished epoch with the
    optimizer and shuffling state of an uninterrupted one (the full run's public epochs take
    minutes each). Leaves the pretrained weights in `public`."""
    done = _load_progress(progress, party)
    if not done and public.exists():  # a folder from before per-epoch progress files
        party.model.load_weights(public)
        return
    if done:
        run_dir.log(f"transfer: {party.name} resumes public pretraining after epoch {done}")
    for epoch in range(done, config.public_epochs):  # the same batches as one multi-epoch fit
        party.fit_labels(data.public_x, data.public_y, 1, config.public_batch_size)
        _save_progress(progress, party, epoch + 1)
        run_dir.log(f"transfer: {party.name} public epoch {epoch + 1}/{config.public_epochs}")
    if not public.exists():
        party.model.save_weights(public)


def _transfer(config: Config, data, run_dir: RunDir) -> dict:
    """Each party: public pretraining, then private training (checkpointed per party), for
    `max_parallel_parties` parties at a time (each party's randomness is its own, so the
    weights do not depend on how many run at once)."""
    from tfkit.federated.fedmd.stages import map_parties

    folder = run_dir.checkpoint_dir("transfer")
    parties = _parties(config, data, None, "")

    def transfer(party) -> float:
        public = folder / f"{party.name}_public.weights.h5"
        final = folder / f"{party.name}_transfer.weights.h5"
        if not final.exists():
            progress = folder / f"{party.name}_public_progress.npz"
            _pretrain(config, data, party, progress, public, run_dir)
            party.train_private(config.private_epochs)
            party.model.save_weights(final)
            progress.unlink(missing_ok=True)
        else:
            party.model.load_weights(final)
        accuracy = party.accuracy(data.test_x, data.test_y)
        run_dir.log(f"transfer: {party.name} ({party.model.name}) round-0 accuracy "
                    f"{accuracy:.4f}, public accuracy "
                    f"{party.accuracy(data.public_x[:2000], data.public_y[:2000]):.4f}")
        return accuracy

    round0 = map_parties(parties, transfer, config.max_parallel_parties, "transfer")
    return {"round0": round0, "models": [p.model.name for p in parties],
            "parameters": [p.num_parameters() for p in parties]}


def _upper_bound(config: Config, data, run_dir: RunDir) -> list[float]:
    """Each model from its public weights, trained on the pooled private data of all parties
    (`max_parallel_parties` at a time)."""
    from tfkit.federated.fedmd import client_arrays
    from tfkit.federated.fedmd.stages import map_parties

    pooled = [client_arrays(data.private, cid) for cid in data.party_ids]
    x = np.concatenate([p[0] for p in pooled])
    y = np.concatenate([p[1] for p in pooled])
    parties = _parties(config, data, run_dir.checkpoint_dir("transfer"), "public")

    def bound(party) -> float:
        party.fit_labels(x, y, config.upper_bound_epochs, 32)  # pooled: the authors' batch 32
        return party.accuracy(data.test_x, data.test_y)

    return map_parties(parties, bound, config.max_parallel_parties, "upper-bound")


def _fedmd(config: Config, data, run_dir: RunDir) -> list[dict]:
    import tensorflow_federated as tff

    from tfkit.federated import runtime
    from tfkit.federated.fedmd import build_fedmd_process, run_program

    parties = _parties(config, data, run_dir.checkpoint_dir("transfer"), "transfer")
    process = build_fedmd_process(
        parties, data.public_x, alignment_size=config.alignment_size,
        digest_epochs=config.digest_epochs, revisit_epochs=config.revisit_epochs,
        party_weights=config.party_weights, deadline_s=config.deadline_s or None,
        test_data=(data.test_x, data.test_y), seed=config.seed,
        max_parallel_parties=config.max_parallel_parties, log=run_dir.log)
    releases = [tff.program.CSVFileReleaseManager(str(run_dir.file("metrics.csv")))]
    if config.workers:
        context = runtime.remote_context(config.worker_addresses)
    else:
        context = runtime.local_context(log_dir=run_dir.checkpoints)
    with context:
        return run_program(process, config.rounds, run_dir.checkpoint_dir("fedmd_state"),
                           releases, run_dir.log)


LEGACY_STAGE = "fedmd"  # the rounds stage's name before it became `fedmd_to_round_N`


def _finished_rounds(run_dir: RunDir) -> int:
    """Rounds already finished in `run_dir`: its newest program state or rounds stage record."""
    versions = [int(m.group(1)) for p in run_dir.checkpoint_dir("fedmd_state").iterdir()
                if (m := re.fullmatch(r"program_state_(\d+)", p.name))]
    records = [int(m.group(1)) for p in (run_dir.path / "stages").glob("fedmd_to_round_*.json")
               if (m := re.fullmatch(r"fedmd_to_round_(\d+)", p.stem))]
    if run_dir.is_done(LEGACY_STAGE):
        records.append(len(run_dir.read_json(f"stages/{LEGACY_STAGE}.json")["result"]))
    return max(versions + records, default=0)


def _check_rounds(config: Config, run_dir: RunDir) -> None:
    """Refuses a `rounds` below the rounds this folder already finished (they cannot be undone:
    its program state, metrics.csv and party models are past them)."""
    finished = _finished_rounds(run_dir)
    if config.rounds >= finished:
        return
    # The driver already wrote this run's config.json; make it describe the folder again, so
    # that a later `--set rounds=N` logs "continuing with rounds <finished> -> N".
    run_dir.write_json("config.json", {**run_dir.read_json("config.json"), "rounds": finished})
    raise ConfigError(
        f"{run_dir.path} already holds {finished} finished FedMD rounds, more than rounds="
        f"{config.rounds}: finished rounds cannot be undone; re-run with --set rounds={finished} "
        "(or more) to resume or extend this run, or use another --out")


def _rounds(config: Config, data, run_dir: RunDir) -> list[dict]:
    """The rounds stage, one record per round count (see `run`)."""
    name = f"fedmd_to_round_{config.rounds}"
    if not run_dir.is_done(name) and run_dir.is_done(LEGACY_STAGE):
        legacy = run_dir.read_json(f"stages/{LEGACY_STAGE}.json")["result"]
        if len(legacy) == config.rounds:  # a folder made before the rename: same rounds, reuse
            run_dir.log(f"stage {LEGACY_STAGE} (the rounds stage's old name) holds "
                        f"{len(legacy)} rounds: reusing it as {name}")
            return run_dir.stage(name, lambda: legacy)
    # Re-running with more `rounds` (an `extendable` field) finds no record, and the program
    # state in checkpoints/fedmd_state resumes at the last finished round.
    return run_dir.stage(name, lambda: _fedmd(config, data, run_dir))


def run(config: Config, run_dir: RunDir) -> dict:
    from tfkit.backend import set_seed

    _check_rounds(config, run_dir)
    if config.workers and _finished_rounds(run_dir) < config.rounds:
        from tfkit.federated import runtime

        # before transfer learning (minutes to hours), not after it
        runtime.wait_for_workers(config.worker_addresses)
    set_seed(config.seed)
    data = _scenario(config)
    run_dir.log(f"public {data.public_x.shape}, {len(data.party_ids)} parties, "
                f"test {data.test_x.shape}, classes {data.num_classes}")
    transfer = run_dir.stage("transfer", lambda: _transfer(config, data, run_dir))
    upper = run_dir.stage("upper_bound", lambda: _upper_bound(config, data, run_dir))
    history = _rounds(config, data, run_dir)
    round0 = transfer["round0"]
    final = history[-1]["accuracy"]
    results = {
        "rounds": [{k: h[k] for k in ("round", "accuracy", "participated", "bytes_up",
                                      "bytes_down", "fedavg_bytes_up", "fedavg_bytes_down",
                                      "seconds", "stage_seconds")} for h in history],
        "round0": round0,
        "upper_bound": upper,
        "final": final,
        "mean_round0": float(np.mean(round0)),
        "mean_final": float(np.mean(final)),
        "mean_upper_bound": float(np.mean(upper)),
        "mean_gain": float(np.mean(final) - np.mean(round0)),
        "gap_to_upper_bound": float(np.mean(upper) - np.mean(final)),
        # float32 round metrics vs float64 round-0 accuracies: equal counts must not compare as >
        "parties_improved": int(sum(f > r + 1e-6 for f, r in zip(final, round0, strict=True))),
        "models": transfer["models"],
        "parameters": transfer["parameters"],
        "workers": config.workers,
    }
    write_report(results, config, run_dir)
    return results


def headline(results: dict) -> Headline:
    return Headline("FedMD mean accuracy, round 0 -> last round",
                    f"{results['mean_round0']:.3f} -> {results['mean_final']:.3f} "
                    f"(+{results['mean_gain']:.3f})",
                    "0.747 -> 0.878 (+0.131), FEMNIST")


EXPERIMENT = Experiment(
    name="fedmd",
    config_cls=Config,
    run=run,
    headline=headline,
    # Acceptance run: ten paper CNNs at 1/8 width, 10k public MNIST for 2 epochs (MNIST
    # accuracy 0.89-0.98 before the private step; 2k images left some parties at 0.4), the
    # paper's 5000-sample alignment (20 digest steps per round; 500 gave 2 steps, which barely
    # moved the models), 6 rounds. BN momentum 0.9: with ~150 training steps, 0.99's moving
    # statistics stay near their initial values and inference is at chance level. Digest with
    # the moving BN statistics: with Keras' batch statistics the MNIST consensus is ~1.4x larger
    # than what each model outputs in the digest, so the logits inflate every round (mean |logit|
    # 11 -> 27 by round 6) and accuracy falls after round 5; "moving" keeps it at 10-11.
    # 3 digest epochs and 8 revisit epochs per round: chosen on held-out FEMNIST train letters
    # (no party's) over 3 rounds: gain +0.054 (1 and 4, the old preset), +0.068 (1 and 8), +0.087
    # (2 and 8), +0.113 (3 and 8); the 1/8-width CNNs absorb the consensus (0.70 there) slowly.
    # 4 rounds keep the run in budget (a 3-epoch digest costs ~2.3x a 1-epoch round) and stop
    # before the consensus scale, which grows slowly with 3 digest epochs, can inflate.
    quick={"width": 0.125, "public_size": 10000, "public_epochs": 2, "rounds": 4,
           "alignment_size": 5000, "digest_epochs": 3, "revisit_epochs": 8,
           "upper_bound_epochs": 10, "bn_momentum": 0.9, "digest_batch_norm": "moving"},
    # Embedded digits: public 0-4, private/test 5-9; four tiny CNNs; under a minute.
    demo={"scenario": "digits", "num_parties": 4, "samples_per_class": 3, "width": 0.125,
          "public_epochs": 5, "private_epochs": 10, "upper_bound_epochs": 10, "rounds": 5,
          "alignment_size": 300, "revisit_epochs": 4, "bn_momentum": 0.9},
    # Re-running into the same --out with more rounds continues from the last finished round;
    # the workers only run the aggregation (bitwise the same as local) and parties at once give
    # the same numbers as one at a time, so those two may change too.
    extendable=("rounds", "workers", "max_parallel_parties"),
)
