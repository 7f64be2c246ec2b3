"""The download rule against a local HTTP server on 127.0.0.1 (config key 'download_mirror'):
a good file, a checksum mismatch, a 404 and no server, each with its message."""

from __future__ import annotations

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import BENCH, snakemake
from test_own_benchmark import definition, write_corpus

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import read_dialogues

pytestmark = pytest.mark.workflow  # every test starts Snakemake against a local HTTP server


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP: MELD's dev split as released, its test split corrupted."""
    root = tmp_path / "mirror"
    (root / "MELD").mkdir(parents=True)
    (root / "MELD" / "dev_sent_emo.csv").write_bytes((BENCH / "MELD" / "dev_sent_emo.csv").read_bytes())
    (root / "MELD" / "test_sent_emo.csv").write_bytes((BENCH / "MELD" / "test_sent_emo.csv").read_bytes() + b"\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def download(work: Path, url: str, *targets: str):
    # benchmarks_dir is the download folder (bench=None keeps config.yaml's): the rule fills it.
    return snakemake(work, *targets, configfile=None, bench=None, extra_config=[f"download_mirror={url}"], check=False)


def failed_download(work: Path, url: str, target: str) -> str:
    """The console output of a download that must fail."""
    proc = download(work, url, target)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_a_good_file_is_downloaded_checked_and_converted(mirror, tmp_path):
    _, url = mirror
    proc = download(tmp_path, url, "results/benchmarks/MELD/dev.jsonl")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    saved = tmp_path / "resources/benchmarks/MELD/dev_sent_emo.csv"
    assert saved.read_bytes() == (BENCH / "MELD" / "dev_sent_emo.csv").read_bytes()
    assert len(read_dialogues(tmp_path / "results/benchmarks/MELD/dev.jsonl")) == len(load_split(BENCH, "MELD", "dev"))
    log = (tmp_path / "results/logs/download_benchmark/MELD_dev_sent_emo.csv.log").read_text()
    assert f"downloading MELD/dev_sent_emo.csv from {url}/MELD/dev_sent_emo.csv" in log
    assert "sha256 2e89c6f8aa182d6f62f8c6331aece905ac7273ca4999660bfb5213e1d0370c1c" in log


def test_a_checksum_mismatch_keeps_nothing_and_says_so(mirror, tmp_path):
    _, url = mirror
    out = failed_download(tmp_path, url, "resources/benchmarks/MELD/test_sent_emo.csv")
    assert f"download_benchmark: MELD/test_sent_emo.csv: the file from {url}/MELD/test_sent_emo.csv has sha256" in out
    assert "not the expected 8d37103938f7067600839fe29d5a114a6cd1bcdafb75bec101e06464c5006888" in out
    assert "point config key 'benchmarks_dir' at it" in out
    folder = tmp_path / "resources/benchmarks/MELD"
    assert not folder.exists() or not list(folder.iterdir())  # no file, no partial file


def test_a_missing_file_names_the_url_and_the_status(mirror, tmp_path):
    _, url = mirror
    out = failed_download(tmp_path, url, "resources/benchmarks/EmoryNLP/emotion-detection-dev.json")
    assert f"EmoryNLP/emotion-detection-dev.json: {url}/EmoryNLP/emotion-detection-dev.json answered HTTP 404" in out


def test_no_server_is_a_network_error_with_the_remedy(mirror, tmp_path):
    server, url = mirror
    server.shutdown()
    server.server_close()
    out = failed_download(tmp_path, url, "resources/benchmarks/MELD/dev_sent_emo.csv")
    assert f"MELD/dev_sent_emo.csv: cannot download {url}/MELD/dev_sent_emo.csv: network error" in out
    assert "Traceback" not in out


def test_a_user_definition_with_urls_is_downloaded_and_checked(tmp_path):
    """A benchmark of the user's own, with a url and sha256 per split: fetched by the same rule."""
    root = tmp_path / "served"
    expected = write_corpus(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        files = {s: f"MyCorpus/{s}.txt" for s in ("train", "dev", "test")}
        digests = {s: hashlib.sha256((root / f).read_bytes()).hexdigest() for s, f in files.items()}
        digests["test"] = "0" * 64  # a wrong checksum: this split must fail, naming file, URL and reason
        own = definition(url={s: f"{base}/{f}" for s, f in files.items()}, sha256=digests)
        config = tmp_path / "own.yaml"
        config.write_text(yaml.safe_dump({"benchmarks": ["MyCorpus"], "benchmark_definitions": {"MyCorpus": own}}))
        work = tmp_path / "work"
        ok = snakemake(work, "results/benchmarks/MyCorpus/dev.jsonl", configfile=config, bench=None, check=False)
        assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
        assert len(read_dialogues(work / "results/benchmarks/MyCorpus/dev.jsonl")) == expected["dev"][0]
        bad = snakemake(work, "results/benchmarks/MyCorpus/test.jsonl", configfile=config, bench=None, check=False)
        assert bad.returncode != 0
        assert f"MyCorpus/test.txt: the file from {base}/MyCorpus/test.txt has sha256" in bad.stdout + bad.stderr
        assert not (work / "resources/benchmarks/MyCorpus/test.txt").exists()
    finally:
        server.shutdown()
        server.server_close()
