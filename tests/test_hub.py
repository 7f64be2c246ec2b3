"""Hub models fetched where the network is (the fetch_model local rule), then read offline by jobs.

The hub is a local stand-in on 127.0.0.1 (tests/hub_server.py) that the real `huggingface_hub`
client talks to through HF_ENDPOINT; the models are tiny random ones built here.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import REPO, job_blocks, snakemake
from hub_server import HubStandIn, Repo

from ercsynth.config import load_config
from ercsynth.hub import FetchError, HubModel, fetch, hub_models, loadable, local_path

ENCODER = "ercsynth-test/tiny-roberta"
MARKER = "resources/models/ercsynth-test--tiny-roberta/fetched.json"
# What a compute node sees: no endpoint, no proxies, no offline flag of its own (the job sets it).
NETWORK_VARS = ("HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def hub(tiny_roberta):
    stand_in = HubStandIn({ENCODER: Repo(tiny_roberta), "ercsynth-test/gated": Repo(tiny_roberta, gated=True)})
    url = stand_in.start()
    yield stand_in, url
    stand_in.stop()


@pytest.fixture
def online(monkeypatch):
    """The test process runs with HF_HUB_OFFLINE=1; a fetch test lifts it for itself."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def config(**training) -> dict:
    cfg = load_config(REPO / "config.yaml")
    cfg["training"].update(training)
    return cfg


# --------------------------------------------------------------------------- which models, where
def test_only_hub_ids_are_fetched(tiny_roberta):
    embedded = {"gemma3-270m", "smollm2-135m"}
    assert hub_models(config(), embedded) == {}  # the default run: embedded models only
    paper = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")
    models = hub_models(paper, embedded)
    assert {m.repo_id for m in models.values()} == {
        "lmsys/vicuna-13b-v1.5",
        "roberta-large",
        "mismayil/comet-bart-ai2",
    }
    assert models["lmsys--vicuna-13b-v1.5"].keys == ("generation.transformers.model",)
    assert local_path("roberta-large", models) == "resources/models/roberta-large"
    # A local folder is read where it is.
    paper["training"]["encoder"] = str(tiny_roberta)
    assert "roberta-large" not in hub_models(paper, embedded)
    assert local_path(str(tiny_roberta), hub_models(paper, embedded)) == str(tiny_roberta)
    # Neither a folder nor a hub id: the config key is named.
    paper["training"]["encoder"] = "/no/such/folder"
    with pytest.raises(ValueError, match="config key 'training.encoder': '/no/such/folder' is neither"):
        hub_models(paper, embedded)


def test_a_model_named_twice_is_fetched_once():
    cfg = config(encoder="org/shared")
    cfg["classifiers"] = ["todkat"]
    cfg["training"]["todkat"] |= {"knowledge": "comet", "comet_model": "org/shared"}
    models = hub_models(cfg, {"gemma3-270m"})
    assert models == {"org--shared": HubModel("org/shared", ("training.encoder", "training.todkat.comet_model"))}


# --------------------------------------------------------------------------- the fetch itself
@pytest.mark.workflow
def test_fetch_through_the_real_client(hub, online, tmp_path):
    stand_in, url = hub
    marker = fetch(ENCODER, tmp_path / "m", ("training.encoder",), endpoint=url, cache_dir=tmp_path / "cache")
    assert marker["commit"] == stand_in.repos[ENCODER].commit
    assert {f["path"] for f in marker["files"]} == set(stand_in.repos[ENCODER].files())
    assert json.loads((tmp_path / "m" / "fetched.json").read_text()) == marker
    # The files are in the cache, at the recorded commit's snapshot; the marker's folder holds the marker only.
    snapshot = tmp_path / "cache" / "models--ercsynth-test--tiny-roberta" / "snapshots" / marker["commit"]
    assert marker["snapshot"] == str(snapshot.resolve())
    for f in stand_in.repos[ENCODER].files():
        assert (snapshot / f).read_bytes() == (stand_in.repos[ENCODER].folder / f).read_bytes()
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["fetched.json"]
    assert loadable(str(tmp_path / "m")) == marker["snapshot"] and loadable("minilm") == "minilm"
    # It asked for the commit it recorded, file by file.
    assert ("GET", f"/{ENCODER}/resolve/{marker['commit']}/config.json") in stand_in.requests


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("repo", "message"),
    [
        (
            "ercsynth-test/gated",
            r"'ercsynth-test/gated' \(config key 'training.encoder'\) is gated: .* HF_TOKEN=<token>",
        ),
        (
            "ercsynth-test/missing",
            "'ercsynth-test/missing' .* was not found on http://127.0.0.1:\\d+, or it is private",
        ),
    ],
)
def test_fetch_errors_say_which_model_why_and_what_to_do(hub, online, tmp_path, repo, message):
    _, url = hub
    with pytest.raises(FetchError, match=message):
        fetch(repo, tmp_path / "m", ("training.encoder",), endpoint=url)
    assert not (tmp_path / "m" / "fetched.json").exists()


@pytest.mark.workflow
def test_fetch_error_without_network(hub, online, tmp_path):
    stand_in, url = hub
    stand_in.stop()
    with pytest.raises(FetchError, match="could not reach http://127.0.0.1.* where snakemake runs"):
        fetch(ENCODER, tmp_path / "m", ("training.encoder",), endpoint=url)
    stand_in.start()  # the fixture stops it again


def test_fetch_refuses_when_offline_is_asked_for(tmp_path):
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE is set where Snakemake runs"):
        fetch(ENCODER, tmp_path / "m", ("training.encoder",), endpoint="http://127.0.0.1:9")


# --------------------------------------------------------------------------- through the workflow
def _env(**extra) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in NETWORK_VARS and k.lower() not in map(str.lower, NETWORK_VARS)
    }
    return env | extra


@pytest.mark.workflow
def test_fetch_model_runs_locally_then_a_job_loads_the_folder_offline(hub, tmp_path):
    stand_in, url = hub
    settings = [f"training={{encoder: {ENCODER}}}", "classifiers=[emoberta]", "distributions=[]"]
    target = "results/models/MELD/emoberta/baseline/seed1/metrics.json"
    # The DAG: the training job depends on the fetched folder.
    blocks = job_blocks(snakemake(tmp_path, "-n", target, extra_config=settings).stdout)
    assert blocks[MARKER][0] == "fetch_model" and MARKER in blocks[target.replace("metrics.json", "model.pt")][1]
    # On the login node: only the fetch, with the network, into the Hugging Face cache that HF_HOME names.
    hf_home = tmp_path / "hf_home"
    snakemake(
        tmp_path,
        MARKER,
        extra_config=settings,
        env={"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(hf_home)},
    )
    recorded = json.loads((tmp_path / MARKER).read_text())
    assert recorded["commit"] == stand_in.repos[ENCODER].commit
    assert recorded["snapshot"].startswith(str(hf_home.resolve())) and (hf_home / "hub").is_dir()
    # No model files under resources/: one copy in the cache, not one per checkout.
    assert [str(p.relative_to(tmp_path)) for p in (tmp_path / "resources").rglob("*") if p.is_file()] == [MARKER]
    # On a compute node: no hub, no endpoint, no offline flag in the environment.
    stand_in.stop()
    asked = len(stand_in.requests)
    proc = snakemake(tmp_path, target, extra_config=settings, base_env=_env())
    out = proc.stdout + proc.stderr
    assert "rule fetch_model:" not in out  # up to date: never fetched again
    assert len(stand_in.requests) == asked
    log = (tmp_path / "results/logs/finetune/MELD_emoberta_baseline_seed1.log").read_text()
    assert "hub offline (HF_HUB_OFFLINE=1)" in log
    metrics = json.loads((tmp_path / target).read_text())
    assert metrics["encoder"] == "resources/models/ercsynth-test--tiny-roberta"
    stand_in.start()


@pytest.mark.workflow
def test_gated_model_fails_in_fetch_model_with_the_remedy(hub, tmp_path):
    stand_in, url = hub
    settings = ["training={encoder: ercsynth-test/gated}", "classifiers=[emoberta]"]
    marker = "resources/models/ercsynth-test--gated/fetched.json"
    env = {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0"}
    proc = snakemake(tmp_path, marker, extra_config=settings, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "fetch_model ercsynth-test--gated: model 'ercsynth-test/gated' (config key 'training.encoder') is gated" in out
    )
    assert "HF_TOKEN=<token>" in out and not (tmp_path / marker).exists()
    # With the token that the hub expects, the same target succeeds.
    snakemake(tmp_path, marker, extra_config=settings, env=env | {"HF_TOKEN": stand_in.token})
    assert (tmp_path / marker).exists()
