"""Hub models, fetched once where the network is, into a cache that every job reads offline.

On most clusters only the login node reaches the internet. The `fetch_model` rule runs there (a
Snakemake local rule) and downloads each hub model the config names into the Hugging Face cache
(HF_HUB_CACHE / HF_HOME, or the config key `models_dir`): one copy per cache, shared by every
checkout, not a copy per checkout. Its output, `resources/models/{name}/fetched.json`, records the
commit and the snapshot folder; jobs on compute nodes load that snapshot with `HF_HUB_OFFLINE=1`
(`loadable`). A config value that is already a local folder, or one of the models shipped in PyPI
packages, needs no fetch.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ercsynth.design import setting_key

MODELS_DIR = "resources/models"
MARKER = "fetched.json"
TOKEN_VAR = "HF_TOKEN"
# A hub id: `name` or `owner/name` (what the hub accepts); anything else must be a local folder.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class FetchError(RuntimeError):
    """A model could not be fetched; the message says which, why and what to do."""


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    keys: tuple[str, ...]  # the config keys that name it, for the messages

    @property
    def name(self) -> str:
        return self.repo_id.replace("/", "--")

    @property
    def folder(self) -> str:
        return f"{MODELS_DIR}/{self.name}"

    @property
    def marker(self) -> str:
        return f"{self.folder}/{MARKER}"


def model_keys(config: dict, embedded: set[str], generators: dict[str, dict] | None = None) -> dict[str, str]:
    """The config keys naming a model this run loads, with their values (embedded models left out).
    `generators`: each generator's generation block (ercsynth.design.generator_blocks); by default
    the `generation` block alone."""
    keys: dict[str, str] = {}
    train = config["training"]
    for name, gen in (generators or {"": config["generation"]}).items():
        if gen["backend"] == "transformers" and config["distributions"]:
            keys[setting_key(name, "transformers.model")] = gen["transformers"]["model"]
    if config["classifiers"] and train["encoder"] != "minilm":
        keys["training.encoder"] = train["encoder"]
    todkat = train["todkat"]
    if "todkat" in config["classifiers"] and todkat["knowledge"] == "comet" and todkat["comet_model"]:
        keys["training.todkat.comet_model"] = todkat["comet_model"]
    return {k: v for k, v in keys.items() if v not in embedded}


def hub_models(config: dict, embedded: set[str], generators: dict[str, dict] | None = None) -> dict[str, HubModel]:
    """Models to fetch, by folder name: config values that are hub ids, not local folders.

    Raises ValueError naming the config key for a value that is neither.
    """
    found: dict[str, list[str]] = {}
    for key, value in model_keys(config, embedded, generators).items():
        if Path(value).expanduser().is_dir():
            continue
        if not HUB_ID.fullmatch(value):
            raise ValueError(
                f"config key '{key}': {value!r} is neither a local folder nor a hub id (owner/name); "
                "give the folder that holds the model's config.json, or its hub id"
            )
        found.setdefault(value, []).append(key)
    models = [HubModel(repo, tuple(keys)) for repo, keys in found.items()]
    return {m.name: m for m in models}


def hub_model(value: str | None, models: dict[str, HubModel]) -> HubModel | None:
    """The model to fetch for a configured value, or None for a local folder or an embedded model."""
    return next((m for m in models.values() if m.repo_id == value), None)


def local_path(value: str | None, models: dict[str, HubModel]) -> str | None:
    """Where a job loads a configured model from: the fetched folder for a hub id, else the value."""
    model = hub_model(value, models)
    return model.folder if model else value


def loadable(path: str | None) -> str | None:
    """Where a job loads a configured model from: the snapshot a fetch recorded in `path`'s marker,
    or `path` itself (a local folder, an embedded model's name)."""
    if not path or not (Path(path) / MARKER).is_file():
        return path
    snapshot = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))["snapshot"]
    if not Path(snapshot).is_dir():
        raise FileNotFoundError(
            f"{Path(path) / MARKER}: the fetched snapshot {snapshot} is gone (a cleared cache?); "
            f"fetch it again: snakemake --forcerun {Path(path) / MARKER}"
        )
    return snapshot


def fetch(
    repo_id: str,
    dest: str | Path,
    keys: tuple[str, ...] = (),
    endpoint: str | None = None,
    log: logging.Logger | None = None,
    cache_dir: str | Path | None = None,
) -> dict:
    """Download the repository at its current main commit into the Hugging Face cache (`cache_dir`,
    else HF_HUB_CACHE / HF_HOME's); write the marker `dest/fetched.json` and return it.

    The marker records the commit, the snapshot folder and the files; nothing else is written to
    `dest`. An interrupted download resumes from the cache's partial files.
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    log = log or logging.getLogger(__name__)
    dest = Path(dest)
    endpoint = endpoint or constants.ENDPOINT
    named = f"model '{repo_id}'" + (f" (config key {', '.join(repr(k) for k in keys)})" if keys else "")
    local = (
        f"or download it where you can and set {' and '.join(repr(k) for k in keys) or 'the config key'} to its folder"
    )
    if constants.HF_HUB_OFFLINE:
        raise FetchError(
            f"{named}: HF_HUB_OFFLINE is set where Snakemake runs, so it cannot be fetched; "
            f"unset it on this (login) node, {local}"
        )
    log.info("fetching %s from %s into %s", repo_id, endpoint, dest)
    api = HfApi(endpoint=endpoint)
    try:
        info = api.model_info(repo_id)
        folder = snapshot_download(
            repo_id, revision=info.sha, cache_dir=str(cache_dir) if cache_dir else None, endpoint=endpoint
        )
    except GatedRepoError as exc:
        raise FetchError(
            f"{named} is gated: its authors require you to accept their terms. Log in at "
            f"{endpoint}/{repo_id}, accept them, create a read token ({endpoint}/settings/tokens) and set "
            f"{TOKEN_VAR}=<token> in the shell that runs snakemake (or run `hf auth login` there); {local}. "
            f"Hub said: {_first_line(exc)}"
        ) from None
    except RevisionNotFoundError as exc:
        raise FetchError(f"{named}: revision not found on {endpoint}: {_first_line(exc)}") from None
    except RepositoryNotFoundError as exc:
        raise FetchError(
            f"{named} was not found on {endpoint}, or it is private: check the spelling; for a private model set "
            f"{TOKEN_VAR}=<read token> in the shell that runs snakemake; {local}. Hub said: {_first_line(exc)}"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        hint = f"set {TOKEN_VAR}=<read token> in the shell that runs snakemake" if status in (401, 403) else "retry"
        raise FetchError(f"{named}: the hub answered HTTP {status} ({_first_line(exc)}); {hint}, {local}") from None
    except Exception as exc:  # noqa: BLE001 - any transport failure is a network problem for the user
        raise FetchError(
            f"{named}: could not reach {endpoint} ({type(exc).__name__}: {_first_line(exc)}). fetch_model runs on "
            f"the machine where snakemake runs (a login node on a cluster): run snakemake where the internet is "
            f"reachable, set HF_ENDPOINT for a mirror, {local}"
        ) from None
    marker = _write_marker(repo_id, info.sha, Path(folder), endpoint, dest)
    files = marker["files"]
    log.info("%s at commit %s: %d files, %.1f MB", repo_id, info.sha, len(files), sum(f["bytes"] for f in files) / 1e6)
    return marker


def _write_marker(repo_id: str, commit: str, folder: Path, endpoint: str, dest: Path) -> dict:
    """The fetch's record (commit, snapshot folder, files), written last and atomically: its presence
    means the folder is complete."""
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts and p.name != MARKER
    )
    marker = {
        "repo_id": repo_id,
        "commit": commit,
        "snapshot": str(folder.resolve()),
        "endpoint": endpoint,
        "files": [{"path": f, "bytes": n} for f, n in files],
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n")
    tmp.replace(dest / MARKER)
    return marker


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
