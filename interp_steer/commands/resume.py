"""What a study's subcommand does around its run: skip a finished run, resume an interrupted one.

A finished run leaves ``out/units/complete.json``: the run's key (model, data, config, code and library
versions) and the SHA-256 of every file it wrote. Running the same command again checks that marker
before loading the model (seconds) and stops; an interrupted run finds its finished work units in
``out/units`` and computes only the rest (``--fresh`` discards both).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interp_steer._io import write_json
from interp_steer.commands.arguments import backend_from_args, model_from_args
from interp_steer.execution import Execution
from interp_steer.units import device_type, fingerprint, run_key


def execution_from_args(args: Any, out: Path) -> Execution:
    """How a subcommand runs its study: progress bars, one printed line per stage, work units stored
    under ``out/units`` (resumable), the ``--backend`` and ``--fresh``."""
    return Execution(progress=True, log=lambda line: print(line, flush=True), store=Path(out) / "units",
                     backend=backend_from_args(args), fresh=bool(args.fresh))


COMPLETE = "complete.json"


def finished_run(out: Path, key: dict[str, Any]) -> bool:
    """True when ``out`` holds a finished run with this key whose output files are unchanged (what
    a CLI checks before loading the model, so that re-running a finished command does no work)."""
    try:
        marker = json.loads((out / "units" / COMPLETE).read_text())
        return marker["key_hash"] == fingerprint(key) and bool(marker["files"]) and all(
            _file_sha256(out / name) == digest for name, digest in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def already_finished(args: Any, out: Path, key: dict[str, Any]) -> bool:
    """True (and says so) when ``out`` holds the finished run of ``key`` and ``--fresh`` was not given."""
    if args.fresh or not finished_run(out, key):
        return False
    print(f"{out} already holds this finished run (same model, data, config, code and library versions); nothing "
          "to do. --fresh recomputes it.")
    return True


def mark_finished(out: Path, key: dict[str, Any], written: Mapping[str, Path]) -> None:
    """Record that the run with ``key`` wrote ``written`` under ``out`` (see :func:`finished_run`)."""
    files = {str(Path(path).relative_to(out)): _file_sha256(Path(path)) for path in written.values()}
    (out / "units").mkdir(parents=True, exist_ok=True)
    write_json(out / "units" / COMPLETE, {"key_hash": fingerprint(key), "files": files})


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resumable_command(args: Any, out: Path, config: Any, corpora: Mapping[str, Any],
                      run: Callable[..., Any]) -> tuple[Any, dict[str, Path]] | None:
    """What a study's CLI does around ``run(model, config, **corpora, ...)``: nothing when ``out``
    already holds this finished run (checked before the model is loaded, so it takes seconds);
    else load the model, run on the ``--backend`` with units under ``out/units`` (``--fresh``),
    save, and mark the run finished. Returns ``(result, written)``, or None when there was nothing
    to do."""
    from interp_steer.studies.personas import study_inputs

    data, _ = study_inputs(**corpora, max_passages=config.max_passages, max_prompts=config.max_prompts,
                           min_passages=config.folds)
    key = run_key((args.model, "float32", device_type(args.device)), config, data)
    if already_finished(args, out, key):
        return None
    started = time.perf_counter()
    model = model_from_args(args)
    print(f"model {model.name}: {model.n_layers} layers, d_model {model.d_model} (loaded in "
          f"{time.perf_counter() - started:.1f} s)", flush=True)
    result = run(model, config, **corpora, execution=execution_from_args(args, out))
    written = result.save(out)
    mark_finished(out, key, written)
    return result, written


__all__ = ["already_finished", "execution_from_args", "finished_run", "mark_finished", "resumable_command"]
