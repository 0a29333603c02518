"""Resumable work units, run in this process or on a pool of Ray actors, with the same results.

A study's heavy phase is a list of **units**: small, self-contained pieces of work (a chunk of
prompts of the collision grid, one prompt of a patching run) whose results are JSON. Each unit has
an id and a **key**: the hash of everything that determines its result (the model, the data, the
config, the library version, the unit's own inputs). :class:`UnitStore` keeps finished units under
``DIR/units/``, each written atomically (temporary file, then rename) with its key and a checksum,
so that re-running the same command after a crash or Ctrl-C skips what is done, and a store made
with another config, or a damaged file, is never trusted.

:func:`run_units` runs the missing units on a backend and returns every unit's result in order:

- :class:`LocalBackend` runs them one after another on the caller's model;
- :class:`RayBackend` runs them on a pool of Ray actors (:mod:`ray`, the optional ``distributed``
  extra), each loading the model once from its spec. Failed tasks are retried and dead actors
  restarted by Ray itself (``max_task_retries``, ``retry_exceptions``, ``max_restarts``); the
  driver stores each result as it arrives.

A stored unit also keeps its compute time (``seconds``, outside its checksum), so a resumed run
says what it reused: :func:`run_units` logs it, :meth:`UnitStore.reuse_timings` is what a result's
``timings_s`` records, and :func:`run_time_text` words it for a report's "Run time" line.

Results take one path whatever their origin: a result is encoded to JSON before it is used, so a
unit computed now and one read back from the store give the study the same numbers, and a resumed
run writes the same final files as an uninterrupted one. Arrays travel as ``{"__array__": dtype,
"shape": [...], "data": [...]}`` with NaN and infinities as strings (strict JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.data import reject_bare_string

UnitFn = Callable[[Any, Any, Any], dict[str, Any]]
"""``fn(model, shared, item) -> result``: a module-level function (Ray sends it by reference)."""

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# ----------------------------------------------------------------------------- encoding


def to_json(value: Any) -> Any:
    """``value`` as strict-JSON data: numpy arrays and scalars tagged, non-finite floats as strings."""
    if isinstance(value, np.ndarray):
        flat = [to_json(float(x)) if value.dtype.kind == "f" else x.item() for x in value.ravel()]
        return {"__array__": str(value.dtype), "shape": list(value.shape), "data": flat}
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": "NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"a unit result holds a {type(value).__name__}, which has no JSON form; return lists, "
                    "dicts, numbers, strings or numpy arrays")


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`."""
    if isinstance(value, dict):
        if "__array__" in value:
            data = [from_json(x) for x in value["data"]]
            return np.array(data, dtype=value["__array__"]).reshape(value["shape"])
        if "__float__" in value:
            return _NONFINITE[value["__float__"]]
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """One JSON text per value (sorted keys, no spaces): what keys and checksums are taken of."""
    return json.dumps(to_json(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def fingerprint(value: Any) -> str:
    """SHA-256 of :func:`canonical`."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def text_hash(texts: Sequence[str]) -> str:
    """SHA-256 of a list of texts (each length-prefixed, so boundaries count)."""
    reject_bare_string(texts, "texts")
    digest = hashlib.sha256()
    for text in texts:
        data = str(text).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def run_key(model: Any, config: Any, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What determines a study run's units: the model (:func:`model_identity`), the config (its
    ``to_dict()``), the data (hashes), the library version, and any ``extra`` inputs. ``model`` is a
    loaded model or a ``(spec, dtype)`` pair, so a run's key can be known before loading it."""
    from interp_steer import __version__

    return {"model": model_identity(model), "config": config.to_dict() if hasattr(config, "to_dict") else config,
            "data": data, "library_version": __version__, "code": code_fingerprint(), "stack": _stack(), **extra}


def code_fingerprint() -> str:
    """SHA-256 of the package's Python sources: a unit made by other code (an edited checkout, a
    release with the same version number) is never reused."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stack() -> dict[str, str]:
    """Versions of the libraries whose numerics a unit's result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "transformer-lens", "scikit-learn", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def model_identity(model: Any) -> dict[str, Any] | list[Any]:
    """The model part of a key: its normalised spec, dtype, and for local files their names, sizes
    and modification times. A model built in memory from weights no spec names is keyed by name and
    source (its units are still stored, but nothing else can tell two such models apart)."""
    from interp_steer.models import model_files, normalise_spec

    if isinstance(model, list):  # several models (a study comparing them)
        return [model_identity(m) for m in model]
    if isinstance(model, dict):  # an identity already
        return model
    if isinstance(model, tuple):  # (spec, dtype[, device type]) before loading
        spec, dtype = normalise_spec(model[0]), str(model[1] or "float32")
        device = device_type(model[2] if len(model) > 2 else None)
    else:
        spec, dtype, device = model.spec, str(model.dtype), model.device.type
        if spec is None:
            return {"name": model.name, "source": model.source, "dtype": dtype.removeprefix("torch."), "device": device}
    return {"spec": spec, "dtype": dtype.removeprefix("torch."), "device": device, "files": model_files(spec)}


def device_type(device: Any = None) -> str:
    """The device type a model loaded with ``device`` runs on (None: what
    :func:`~interp_steer.load_model` picks, CUDA when available)."""
    import torch

    if device is not None:
        return torch.device(device).type
    return "cuda" if torch.cuda.is_available() else "cpu"


def numeric(obj: Any) -> Any:
    """The numbers that make up ``obj`` (tensors, arrays, mappings, dataclasses such as vectors,
    fields and probes, modules by their state, fitted scikit-learn objects by their attributes), as
    arrays and plain values: what a unit's key hashes of its computed inputs. Anything else (a
    function, an open file) raises, rather than being hashed by a ``repr`` that may hide numbers."""
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a torch tensor
        return obj.detach().cpu().double().numpy()
    if isinstance(obj, (np.ndarray, np.generic)) or obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): numeric(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [numeric(v) for v in obj]
        return sorted(items, key=canonical) if isinstance(obj, (set, frozenset)) else items
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return numeric(obj.state_dict())
    if hasattr(obj, "__dataclass_fields__"):
        return {name: numeric(getattr(obj, name)) for name in obj.__dataclass_fields__}
    if hasattr(obj, "__dict__") and not callable(obj):  # e.g. a fitted scikit-learn pipeline
        return {"__type__": type(obj).__qualname__, **{k: numeric(v) for k, v in vars(obj).items()}}
    raise TypeError(f"cannot key a unit on a {type(obj).__name__}: give its numbers instead")


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two keys differ, as dotted paths (the first few)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            where = f"{path}.{k}" if path else str(k)
            if k not in old or k not in new:
                out.append(where)
            else:
                out += _differences(old[k], new[k], where)
        return out
    return [] if old == new else [path or "(whole key)"]


# ----------------------------------------------------------------------------- store


class UnitStore:
    """Finished units of one run under ``directory`` (``manifest.json`` and one JSON file per unit).

    ``key`` is the run's key (:func:`run_key`). A store last used with another key keeps nothing:
    its unit files are removed and ``log`` is told which parts of the key differ. ``fresh=True``
    removes every unit file first. A unit file that does not parse, whose checksum does not match
    or whose key is not this unit's is recomputed (and ``log`` says so), never trusted.
    """

    MANIFEST = "manifest.json"

    def __init__(self, directory: str | Path, key: dict[str, Any], *, fresh: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.directory = Path(directory)
        self.key = json.loads(canonical(key))
        self.key_hash = fingerprint(self.key)
        self.log = log or (lambda _line: None)
        self.computed: list[str] = []
        self.reused: list[str] = []
        self.reused_seconds: dict[str, float | None] = {}  # unit id -> its compute time when it was made
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = self._read_manifest()
        stale = previous is not None and previous.get("key_hash") != self.key_hash
        if fresh or stale:
            removed = self._clear()
            if stale and removed:
                where = ", ".join(_differences(previous.get("key"), self.key)[:6]) or "the key's format"
                self.log(f"not reusing {removed} unit(s) in {self.directory}: they were made with a different "
                         f"{where}")
            elif fresh and removed:
                self.log(f"--fresh: removed {removed} finished unit(s) from {self.directory}")
        _write_atomically(self.directory / self.MANIFEST, {"key_hash": self.key_hash, "key": self.key})

    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.directory / self.MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"key_hash": None, "key": None}

    def _clear(self) -> int:
        removed = 0
        for path in self.directory.glob("*.unit.json"):
            path.unlink()
            removed += 1
        return removed

    def path(self, unit_id: str) -> Path:
        if not unit_id or any(c in unit_id for c in "/\\") or unit_id.startswith("."):
            raise ValueError(f"unit id {unit_id!r} must be a plain file name")
        return self.directory / f"{unit_id}.unit.json"

    def unit_key(self, unit_id: str, inputs: Any) -> str:
        return fingerprint({"run": self.key_hash, "unit": unit_id, "inputs": inputs})

    def load(self, unit_id: str, inputs: Any) -> dict[str, Any] | None:
        """The stored result of a unit, or None when it is absent or cannot be trusted."""
        path = self.path(unit_id)
        if not path.exists():
            return None
        try:
            stored = json.loads(path.read_text())
            body = canonical(stored["result"])
            trusted = (stored.get("key") == self.unit_key(unit_id, inputs)
                       and stored.get("sha256") == hashlib.sha256(body.encode()).hexdigest())
        except (OSError, ValueError, KeyError, TypeError):
            trusted = False
        if not trusted:
            self.log(f"unit {unit_id}: {path.name} is damaged or belongs to other inputs; recomputing it")
            return None
        self.reused.append(unit_id)
        seconds = stored.get("seconds")  # absent in units stored before it was recorded
        self.reused_seconds[unit_id] = float(seconds) if isinstance(seconds, (int, float)) else None
        return from_json(stored["result"])

    def save(self, unit_id: str, inputs: Any, result: dict[str, Any], *, seconds: float | None = None) -> dict[str, Any]:
        """Store a unit's result atomically (with ``seconds``, the time it took to compute, when
        known); returns it as read back (see the module docstring)."""
        encoded = to_json(result)
        body = canonical(encoded)
        record = {"unit": unit_id, "key": self.unit_key(unit_id, inputs),
                  "sha256": hashlib.sha256(body.encode()).hexdigest(), "result": encoded}
        if seconds is not None:
            record["seconds"] = round(float(seconds), 3)
        _write_atomically(self.path(unit_id), record)
        self.computed.append(unit_id)
        return from_json(json.loads(body))

    def reused_compute_seconds(self, unit_ids: Sequence[str] | None = None) -> float | None:
        """What the reused units (default all) took to compute; None if one's time was not stored."""
        times = [self.reused_seconds.get(u) for u in (self.reused if unit_ids is None else unit_ids)]
        return None if any(t is None for t in times) else round(float(sum(times)), 2)  # type: ignore[arg-type]

    def reuse_timings(self) -> dict[str, float]:
        """For a result's ``timings_s``: units computed and reused, and the reused ones' compute
        time when the store has it (see :func:`run_time_text`)."""
        out = {"units_computed": float(len(self.computed)), "units_reused": float(len(self.reused))}  # timings are floats
        seconds = self.reused_compute_seconds()
        if self.reused and seconds is not None:
            out["units_reused_compute"] = seconds
        return out


def _write_atomically(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path``."""
    from interp_steer._io import atomic_path

    with atomic_path(path, sync=True) as temp:
        temp.write_text(json.dumps(data, allow_nan=False))


class MemoryStore:
    """A :class:`UnitStore` that keeps nothing (a run without an output directory): every unit is
    computed, and its result still takes the JSON path, so numbers do not depend on the store."""

    def __init__(self) -> None:
        self.computed: list[str] = []
        self.reused: list[str] = []

    def load(self, unit_id: str, inputs: Any) -> None:
        return None

    def save(self, unit_id: str, inputs: Any, result: dict[str, Any], *, seconds: float | None = None) -> dict[str, Any]:
        self.computed.append(unit_id)
        return from_json(json.loads(canonical(result)))

    def reuse_timings(self) -> dict[str, float]:
        """As :meth:`UnitStore.reuse_timings`: every unit computed, none reused."""
        return {"units_computed": float(len(self.computed)), "units_reused": 0.0}


# ----------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Unit:
    """One piece of work: its id (a file name), what determines it (``inputs``, hashed into its
    key) and the argument the unit function receives (``item``; ``inputs`` when None)."""

    id: str
    inputs: Any
    item: Any = None


class LocalBackend:
    """Runs units one after another in this process, on the caller's model."""

    name = "local"

    def map(self, fn: UnitFn, model: Any, shared: Any, items: list[Any]) -> Iterator[tuple[int, dict[str, Any], float]]:
        """``(index, result, seconds it took)`` for each item, in order."""
        for i, item in enumerate(items):
            started = time.perf_counter()
            result = fn(model, shared, item)
            yield i, result, time.perf_counter() - started

    def close(self) -> None:
        pass


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('the Ray backend needs Ray: pip install "interp_steer[distributed]" '
                          "(or pip install ray); the local backend needs nothing") from None
    return ray


class RayBackend:
    """Runs units on ``actors`` Ray actors, each loading the model once from ``spec``.

    ``address``: ``None`` starts a local cluster (stopped again by :meth:`close`), ``"auto"`` joins
    the running one, ``"HOST:PORT"`` a remote one. ``gpus_per_actor`` reserves GPUs per actor (the
    model goes to CUDA when it is > 0, and is spread over the actor's GPUs when it is 2 or more, as
    ``load_model(..., n_devices=k)`` does); ``threads`` sets each actor's torch threads (default: the CPUs
    it reserves). A task that raises is retried ``retries`` times and an actor that dies is restarted
    (Ray's ``retry_exceptions``/``max_task_retries``/``max_restarts``), so a unit's result comes back
    unless it fails every time.
    """

    name = "ray"

    def __init__(self, spec: str, *, dtype: str = "float32", address: str | None = None, actors: int = 1,
                 gpus_per_actor: float | int = 0.0, cpus_per_actor: float | int = 1.0, threads: int | None = None,
                 retries: int = 2) -> None:
        if actors < 1:
            raise ValueError(f"--actors must be >= 1, got {actors}")
        if gpus_per_actor < 0 or cpus_per_actor <= 0:
            raise ValueError("--gpus-per-actor must be >= 0 and CPUs per actor > 0")
        ray = _import_ray()
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address is None and not os.environ.get("RAY_ADDRESS"):
                ray.init(num_cpus=max(int(math.ceil(actors * cpus_per_actor)), 1), include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
                self._started = True
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        have = ray.cluster_resources()
        for resource, need in (("CPU", actors * cpus_per_actor), ("GPU", actors * gpus_per_actor)):
            if need > have.get(resource, 0):
                self.close()
                raise ValueError(f"{actors} actor(s) need {need:g} {resource}(s) but the Ray cluster has "
                                 f"{have.get(resource, 0):g}; lower --actors, --gpus-per-actor or --cpus-per-actor")
        worker = ray.remote(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, max_restarts=-1,
                            max_task_retries=retries)(_Worker)
        threads = threads if threads is not None else max(int(cpus_per_actor), 1)
        device = "cuda" if gpus_per_actor > 0 else "cpu"
        # An actor with several whole GPUs spreads its model over them (a model larger than one GPU).
        n_devices = int(gpus_per_actor) if gpus_per_actor >= 2 else None
        self._actors: list[Any] = []
        self._actors = [worker.remote(spec, dtype, device, threads, n_devices) for _ in range(actors)]
        self.actors = actors
        self.spec = spec

    def map(self, fn: UnitFn, model: Any, shared: Any, items: list[Any]) -> Iterator[tuple[int, dict[str, Any], float]]:
        """``(index, result, seconds the actor took)`` for each item, as they finish."""
        from ray.util import ActorPool

        shared_ref = self._ray.put(shared)
        pool = ActorPool(self._actors)
        indexed = list(enumerate(items))
        results = pool.map_unordered(lambda actor, pair: actor.run.options(retry_exceptions=True).remote(fn, shared_ref, *pair), indexed)
        yield from results

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        if self._started:
            self._ray.shutdown()


class _Worker:
    """A Ray actor: the model, loaded once; runs unit functions on it."""

    def __init__(self, spec: str, dtype: str, device: str, threads: int, n_devices: int | None = None) -> None:
        import torch

        from interp_steer.models import load_model

        torch.set_num_threads(threads)
        self.model = (load_model(spec, dtype=dtype, n_devices=n_devices) if n_devices
                      else load_model(spec, dtype=dtype, device=device))

    def run(self, fn: UnitFn, shared: Any, index: int, item: Any) -> tuple[int, dict[str, Any], float]:
        started = time.perf_counter()
        result = fn(self.model, shared, item)
        return index, result, time.perf_counter() - started


@dataclass(frozen=True)
class BackendSpec:
    """A backend to make once the model is loaded (:func:`make_backend`'s arguments but the model):
    what a command passes when the study loads its models itself."""

    name: str | None = None
    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | int = 0.0
    cpus_per_actor: float | int | None = None

    def make(self, model: Any) -> LocalBackend | RayBackend:
        return make_backend(self.name, model, address=self.address, actors=self.actors,
                            gpus_per_actor=self.gpus_per_actor, cpus_per_actor=self.cpus_per_actor)


def make_backend(name: str | None, model: Any, *, address: str | None = None, actors: int | None = None,
                 gpus_per_actor: float | int = 0.0, cpus_per_actor: float | int | None = None) -> LocalBackend | RayBackend:
    """The backend called ``name`` (``"local"``/None or ``"ray"``) for ``model`` (a loaded model:
    Ray actors load their own copy from ``model.spec``, on the same kind of device, so that their
    numbers are this process's). Each actor reserves ``cpus_per_actor`` CPUs and runs torch on as
    many threads; by default it reserves one and runs this process's torch thread count, because
    float sums (a backward pass above all) round differently on other thread counts."""
    if name in (None, "local"):
        if address is not None or actors is not None or gpus_per_actor:
            raise ValueError("--address, --actors and --gpus-per-actor go with --backend ray")
        return LocalBackend()
    if name != "ray":
        raise ValueError(f"backend must be 'local' or 'ray', got {name!r}")
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError(f"the Ray backend loads {model.name} in each actor from its spec, but this model was "
                         "built in memory; pass a model spec (a hub id, a path or 'tiny-random:...') instead")
    actor_device = "cuda" if gpus_per_actor > 0 else "cpu"
    if model.device.type != actor_device:
        raise ValueError(f"the Ray actors would run on {actor_device} while this process runs {model.name} on "
                         f"{model.device.type}, and their numbers would differ: give --gpus-per-actor for CUDA "
                         "actors, or --device cpu")
    dtype = str(model.dtype).removeprefix("torch.")
    import torch

    threads = torch.get_num_threads() if cpus_per_actor is None else max(int(cpus_per_actor), 1)
    return RayBackend(spec, dtype=dtype, address=address, actors=actors or 1, gpus_per_actor=gpus_per_actor,
                      cpus_per_actor=cpus_per_actor or 1, threads=threads)


def open_store(units: str | Path | None, key: dict[str, Any], *, fresh: bool = False,
               log: Callable[[str], None] | None = None) -> Any:
    """The unit store of a run: on disk under ``units`` (resumable), or in memory when None."""
    if units is None:
        if fresh:
            raise ValueError("fresh=True discards stored units, but no units directory was given")
        return MemoryStore()
    return UnitStore(units, key, fresh=fresh, log=log)


@contextlib.contextmanager
def own_backend(backend: Any, model: Any) -> Iterator[Any]:
    """A backend object for ``backend`` (a name or an object); one made here from a name is closed
    on the way out (a Ray cluster it started is stopped), one passed in is the caller's to close."""
    if backend is None or isinstance(backend, (str, BackendSpec)):
        made = backend.make(model) if isinstance(backend, BackendSpec) else make_backend(backend, model)
        try:
            yield made
        finally:
            made.close()
    else:
        held = getattr(backend, "spec", None)
        if held is not None and held != model.spec:
            raise ValueError(f"the backend's actors hold {held}, not {model.spec}: pass backend='ray' (or a "
                             "BackendSpec) to get actors for each model")
        yield backend


def run_units(fn: UnitFn, units: Sequence[Unit], *, model: Any, shared: Any = None,
              store: UnitStore | MemoryStore | None = None, backend: LocalBackend | RayBackend | None = None,
              progress: bool | None = None, label: str = "units") -> list[dict[str, Any]]:
    """Every unit's result, in order: stored ones read back, the rest computed on ``backend`` (in
    this process by default) and stored as each arrives (see the module docstring); the store's
    ``log`` hears what was reused. A backend's ``map`` yields ``(index, result, seconds)``."""
    store = store if store is not None else MemoryStore()
    backend = backend if backend is not None else LocalBackend()
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("unit ids must be distinct")
    results: list[dict[str, Any] | None] = [store.load(u.id, u.inputs) for u in units]
    todo = [i for i, r in enumerate(results) if r is None]
    if len(todo) < len(units):
        _log_reuse(store, label, [u.id for u, r in zip(units, results, strict=True) if r is not None], len(units),
                   len(todo))
    if todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=label, unit="unit",
                   disable=progress is False, leave=False)
        try:
            items = [units[i].inputs if units[i].item is None else units[i].item for i in todo]
            for j, result, seconds in backend.map(fn, model, shared, items):
                unit = units[todo[j]]
                results[todo[j]] = store.save(unit.id, unit.inputs, result, seconds=seconds)
                bar.update(1)
        finally:
            bar.close()
    return results  # type: ignore[return-value]


def _log_reuse(store: Any, label: str, reused: list[str], total: int, todo: int) -> None:
    """One line for the store's log: how many of ``label``'s units were read back, from where, what
    they took to compute when they were made, and how many remain."""
    if isinstance(store, UnitStore):  # the only store that reuses anything
        seconds = store.reused_compute_seconds(reused)
        done = f"their compute: {seconds:.1f} s" if seconds is not None else "their compute time was not recorded"
        store.log(f"{label}: {len(reused)} of {total} units reused from {store.directory} ({done}); "
                  + (f"computing the other {todo}" if todo else "nothing to compute"))


def run_time_text(timings: Mapping[str, Any]) -> str:
    """A report's run time from a result's ``timings_s``: "165 s" when the run computed all its work (or
    predates the counts), else "this run: 165 s wall; 8 of 12 units reused ... (their compute: 415 s)"."""
    total = timings.get("total")
    wall = f"{total:.0f} s" if isinstance(total, (int, float)) and math.isfinite(total) else "n/a"
    reused = int(timings.get("units_reused") or 0)
    if not reused:
        return wall
    earlier, of = timings.get("units_reused_compute"), reused + int(timings.get("units_computed") or 0)
    compute = f"their compute: {earlier:.0f} s" if isinstance(earlier, (int, float)) else "their compute time not recorded"
    return f"this run: {wall} wall; {reused} of {of} units reused from an earlier run ({compute})"


__all__ = ["BackendSpec", "LocalBackend", "MemoryStore", "RayBackend", "Unit", "UnitStore", "canonical", "code_fingerprint", "device_type", "fingerprint",
           "from_json", "make_backend", "open_store", "own_backend", "numeric", "run_key", "run_time_text", "run_units", "text_hash",
           "to_json"]
