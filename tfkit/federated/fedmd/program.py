"""The FedMD federated program: rounds, metric releases and checkpointed program state.

`run_program` drives a process built by `build_fedmd_process` for a number of rounds. After every
finished round it releases the metrics to `tff.program` release managers (key = round) and saves
the program state (server state + every party's model and optimizer state) with
`tff.program.FileProgramStateManager`, so a crashed run resumes at its last finished round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.config import ConfigError
from tfkit.runs import atomic_write_text

__all__ = ["run_program", "to_python"]


def to_python(value: Any) -> Any:
    """Nested numpy / TFF structures -> plain Python lists, numbers and dicts."""
    if hasattr(value, "items"):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _program_state(state: Any, parties: Sequence[Any], history: list[dict]) -> dict:
    import json

    return {"round": np.int32(state["round"]),
            "parties": [p.get_state() for p in parties],
            "history": json.dumps(history)}  # finished rounds' metrics, for the results


def run_program(process: Any, rounds: int, state_dir: str | Path,
                release_managers: Sequence[Any] = (), log: Callable[[str], None] = print
                ) -> list[dict]:
    """Runs `rounds` rounds of `process`, resuming from the last state saved in `state_dir`.

    Args:
        process: from `build_fedmd_process` (its `parties` are restored on resume).
        rounds: total rounds wanted (rounds already finished in `state_dir` are not redone;
            fewer than finished there raise `ConfigError`).
        state_dir: where `tff.program.FileProgramStateManager` keeps the program state.
        release_managers: `tff.program.ReleaseManager`s (or one) that receive each round's
            metrics, keyed by round.
        log: progress messages.

    Returns:
        The metrics of every round 1..rounds as plain Python dicts (with a `round` key).
    """
    import json

    import tensorflow_federated as tff

    if isinstance(release_managers, tff.program.ReleaseManager):  # one, not in a list
        release_managers = [release_managers]
    parties = process.parties
    manager = tff.program.FileProgramStateManager(str(state_dir), keep_total=1,
                                                  keep_first=False)
    state = process.initialize()
    history: list[dict] = []
    structure = _program_state(state, parties, history)
    try:
        saved, version = asyncio.run(manager.load_latest(structure))
    except ValueError as e:  # another number of parties, or of weights per model
        raise _other_federation(state_dir, len(parties)) from e
    if saved is not None and _shapes(saved["parties"]) != _shapes(structure["parties"]):
        raise _other_federation(state_dir, len(parties))  # checked before any party is changed
    _check_party_names(state_dir, parties, saved is not None)
    if saved is not None:
        if int(saved["round"]) > rounds:  # its models are further along than asked for
            raise ConfigError(
                f"{state_dir} holds the program state of round {int(saved['round'])}, more than "
                f"rounds={rounds}: finished rounds cannot be undone; ask for rounds >= "
                f"{int(saved['round'])} or use a new state_dir")
        for party, party_state in zip(parties, saved["parties"], strict=True):
            party.set_state(party_state)
        state = {"round": np.int32(saved["round"])}
        history = json.loads(_text(saved["history"]))
        log(f"resumed from the checkpoint of round {version} in {state_dir}")
    for round_num in range(int(state["round"]) + 1, rounds + 1):
        state, metrics = process.next(state)
        record = {"round": round_num, **to_python(metrics)}
        history.append(record)
        for release_manager in release_managers:
            asyncio.run(release_manager.release(metrics, key=round_num))
        asyncio.run(manager.save(_program_state(state, parties, history), version=round_num))
        acc = np.asarray(record["accuracy"])
        log(f"round {round_num}: mean accuracy {acc.mean():.4f} (min {acc.min():.4f}), "
            f"{record['seconds']:.1f}s, {sum(record['participated'])}/{len(parties)} parties")
    return history[:rounds]


def _shapes(value: Any) -> Any:
    """The nested structure of `value` with every leaf replaced by its shape."""
    if hasattr(value, "items"):
        return {k: _shapes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shapes(v) for v in value]
    return tuple(np.shape(value))


PARTY_NAMES = "party_names.json"  # beside the program states: whose state is which


def _check_party_names(state_dir: str | Path, parties: Sequence[Any], resuming: bool) -> None:
    """Refuses to restore the saved states into parties of other names or another order (the
    shapes cannot tell parties with one architecture apart: each would silently get another's
    weights); records the names when none are recorded (state saved by an older tfkit)."""
    import json

    names = [getattr(p, "name", None) for p in parties]
    if None in names:  # not Party objects: nothing to compare
        return
    path = Path(state_dir) / PARTY_NAMES
    if resuming and path.is_file():
        saved = json.loads(path.read_text())
        if saved != names:
            raise ConfigError(
                f"{state_dir} holds the program state of parties {saved}, not of these parties "
                f"{names}: pass the same parties in the same order to resume, or use a new "
                "state_dir")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(names))


def _other_federation(state_dir: str | Path, num_parties: int) -> ConfigError:
    return ConfigError(
        f"{state_dir} holds the program state of another federation: its parties' models or "
        f"optimizers do not match these {num_parties} parties' (number of parties, layers or "
        "weight shapes); resume with the same parties and models, or use a new state_dir")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _text(value.item())
    return str(value)
