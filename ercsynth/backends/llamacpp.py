"""The offline default engine: llama.cpp (through llama-cpp-python's C API) on the GGUF file itself.

One model and one context per job; the prompts of a `generate` call share `parallel` sequence
slots of the context (continuous batching): every step decodes one token for each running
attempt in a single `llama_decode`, and a finished attempt's slot takes the next prompt at once.
Sampling is ours (top-k, then top-p, over the step's logits), with one random generator per attempt
seeded by its own seed, so the constrained decoder (:class:`ercsynth.constraints.LineFormatProcessor`)
masks the same logits here as in the transformers backend.

Why not llama-cpp-python's `Llama` class: it runs one sequence at a time; on two cores a step for
8 sequences costs little more than a step for one, because the 262k-token output layer is read once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ercsynth.backends.base import (
    COMPLETION_STOPS,
    BackendUnavailable,
    Completion,
    DecodingParams,
    cut_at_stops,
    penalize_repeats,
)
from ercsynth.constraints import LineFormat
from ercsynth.prompts import Prompt

log = logging.getLogger(__name__)
# Shorter common prompt starts are read per attempt: not worth a sequence of their own.
MIN_SHARED_PREFIX = 16
# Tokens one llama_decode takes (a prompt is read in chunks of this many).
BATCH_TOKENS = 512
# generate()'s top-k in the transformers backend (the model's generation config, 50 unless it says
# otherwise): the same here, so the two backends sample alike.
TOP_K = 50


@dataclass
class _Running:
    """One attempt in a sequence slot."""

    index: int  # the attempt's position in the prompts of the call
    slot: int
    pos: int  # tokens in the slot's KV cache
    generator: object  # torch.Generator seeded with the attempt's seed
    last: int = -1  # the token to decode next
    tokens: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # prompt and completion tokens (the repetition penalty's)
    raw: bytearray = field(default_factory=bytearray)
    prompt_tokens: int = 0
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)


class LlamaCppBackend:
    """llama.cpp on a GGUF file; `parallel` attempts decoded together, `threads` CPU threads."""

    name = "llamacpp"

    def __init__(
        self,
        gguf: str | Path,
        parallel: int = 8,
        threads: int | None = None,
        context: int = 2048,
        model_name: str | None = None,
    ) -> None:
        try:
            import llama_cpp as lc
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise BackendUnavailable(
                "generation.backend 'llamacpp' needs the llama-cpp-python package (pip install -e .)"
            ) from exc
        self.lc = lc
        self.model = model_name or Path(gguf).name
        self.parallel = max(1, parallel)
        self.context = context
        threads = threads or len(os.sched_getaffinity(0))
        lc.llama_backend_init()
        lc.llama_log_set(_QUIET, ctypes.c_void_p())  # llama.cpp's own log goes to stderr otherwise, per token batch
        mparams = lc.llama_model_default_params()
        self._model = lc.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not self._model:
            raise BackendUnavailable(f"llama.cpp cannot load the GGUF file {gguf}")
        self.vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        cparams = lc.llama_context_default_params()
        # One more sequence than slots: it holds the prompts' common prefix, read once per call.
        self._prefix_seq = self.parallel
        cparams.n_ctx = context * (self.parallel + 1)
        cparams.n_batch = cparams.n_ubatch = BATCH_TOKENS
        cparams.n_seq_max = self.parallel + 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        # One KV buffer for all sequences: a step attends over the cells in use, not over every
        # sequence's full-size stream (measured: 58 instead of 77 ms a step for 8 attempts), and a
        # prompt prefix shared by the attempts is stored once (llama_memory_seq_cp tags its cells).
        cparams.kv_unified = True
        cparams.swa_full = True  # Gemma 3's sliding-window layers keep every cell, so shared cells stay valid
        cparams.flash_attn_type = 1
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            raise BackendUnavailable(f"llama.cpp cannot create a context of {cparams.n_ctx} tokens for {gguf}")
        self._memory = lc.llama_get_memory(self._ctx)
        self._batch = lc.llama_batch_init(max(BATCH_TOKENS, self.parallel), 0, 1)
        self.eos = lc.llama_vocab_eos(self.vocab)
        self._pieces: list[bytes] | None = None
        self._table = None

    def close(self) -> None:
        """Free the context and the model (the C objects are not garbage-collected)."""
        lc = self.lc
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            lc.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            lc.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        # At interpreter exit llama_cpp's functions may already be gone.
        with contextlib.suppress(AttributeError, TypeError):
            self.close()

    # ------------------------------------------------------------------ vocabulary
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        buf = (self.lc.llama_token * (len(data) + 8))()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), add_special, False)
        if n < 0:  # the buffer was too small: -n tokens are needed
            buf = (self.lc.llama_token * -n)()
            n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), add_special, False)
        return list(buf[:n])

    def pieces(self) -> list[bytes]:
        """Each token id's bytes (empty for control tokens)."""
        if self._pieces is None:
            buf = ctypes.create_string_buffer(256)
            out = []
            for i in range(self.n_vocab):
                n = self.lc.llama_token_to_piece(self.vocab, i, buf, len(buf), 0, False)
                out.append(buf.raw[: max(n, 0)])
            self._pieces = out
        return self._pieces

    def token_table(self):
        """The constrained decoder's view of the vocabulary: a token's text, '' where its bytes are
        not whole UTF-8 characters (those never enter a constrained text)."""
        from ercsynth.constraints import TokenTable

        if self._table is None:
            strings = []
            for piece in self.pieces():
                try:
                    strings.append(piece.decode("utf-8"))
                except UnicodeDecodeError:
                    strings.append("")
            self._table = TokenTable(strings, self.eos)
        return self._table

    def auto_batch_size(self, prompts: list[Prompt], max_new_tokens: int) -> int:
        # Slots refill within a call, so a call of twice the slots keeps them busy until its end;
        # records reach the disk once per call, so a kill loses at most that many attempts.
        return 2 * self.parallel

    # ------------------------------------------------------------------ decoding
    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> int:
        """One llama_decode over (token, position, slot, wants logits) entries; returns its status."""
        b = self._batch
        for i, (token, pos, slot, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = slot
            b.logits[i] = logits
        b.n_tokens = len(entries)
        return self.lc.llama_decode(self._ctx, b)

    def _logits(self, rows: int):
        """The last decode's logits, one row per entry that asked for them, as a tensor view."""
        import numpy as np
        import torch

        ptr = self.lc.llama_get_logits(self._ctx)
        return torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(rows, self.n_vocab)))

    def _read(self, tokens: list[int], start: int, seq: int, logits_last: bool) -> int:
        """Decode `tokens` at positions start.. into sequence `seq`, in chunks of the batch size."""
        for offset in range(0, len(tokens), BATCH_TOKENS):
            chunk = tokens[offset : offset + BATCH_TOKENS]
            last = offset + len(chunk) == len(tokens)
            entries = [
                (t, start + offset + j, seq, logits_last and last and j == len(chunk) - 1) for j, t in enumerate(chunk)
            ]
            status = self._decode(entries)
            if status != 0:
                return status
        return 0

    def _start(self, run: _Running, tokens: list[int], prefix: int) -> int:
        """Read a prompt into the attempt's slot: the shared prefix's cells are tagged, the rest decoded.
        The status is 0 when it fits and decoded, -1 when it does not fit."""
        self.lc.llama_memory_seq_rm(self._memory, run.slot, -1, -1)
        if len(tokens) >= self.context:
            return -1
        if prefix:
            self.lc.llama_memory_seq_cp(self._memory, self._prefix_seq, run.slot, 0, prefix)
        status = self._read(tokens[prefix:], prefix, run.slot, True)
        run.pos = len(tokens)
        return status

    def generate(
        self,
        prompts: list[Prompt],
        params: DecodingParams,
        seeds: list[int],
        formats: list[LineFormat] | None = None,
    ) -> list[Completion]:
        call = _Call(self, prompts, params, formats)
        encoded = [self.tokenize(p.text) for p in prompts]
        prefix = self._read_shared_prefix(encoded)
        queue, running = list(range(len(prompts))), []
        while queue or running:
            while queue and call.free:  # fill free slots
                run = self._admit(call, queue.pop(0), encoded, prefix, seeds)
                if run is not None:
                    running.append(run)
            if running:
                running = self._step(call, running)
        self.lc.llama_memory_clear(self._memory, True)
        return [r for r in call.results if r is not None]

    def _read_shared_prefix(self, encoded: list[list[int]]) -> int:
        """The prompts' common start (the header and the legend) is read once for the whole call; each
        attempt reads at least its last token itself, since its first draw needs that position's logits."""
        prefix = _common_prefix(encoded) if len(encoded) > 1 else 0
        prefix = min(prefix, min((len(t) for t in encoded), default=1) - 1, self.context - 1)
        self.lc.llama_memory_seq_rm(self._memory, self._prefix_seq, -1, -1)
        if prefix >= MIN_SHARED_PREFIX and self._read(encoded[0][:prefix], 0, self._prefix_seq, False) == 0:
            log.debug("%d prompt tokens shared by %d prompts", prefix, len(encoded))
            return prefix
        self.lc.llama_memory_seq_rm(self._memory, self._prefix_seq, -1, -1)
        return 0

    def _admit(self, call: _Call, i: int, encoded: list[list[int]], prefix: int, seeds: list[int]) -> _Running | None:
        """Read attempt i's prompt into a free slot and draw its first token from the last position's
        logits; None when the attempt has already ended (an unreadable prompt, or a first token that stops)."""
        import torch

        run = _Running(index=i, slot=call.free.pop(0), pos=0, generator=torch.Generator().manual_seed(seeds[i]))
        tokens = encoded[i]
        run.prompt_tokens, run.seen = len(tokens), set(tokens)
        status = self._start(run, tokens, prefix)
        if status != 0:
            run.error = (
                f"prompt of {len(tokens)} tokens does not fit the context of {self.context} per sequence "
                "(generation.llamacpp.context)"
                if status == -1
                else f"llama_decode failed ({status})"
            )
            call.finish(run)
            return None
        first = call.sample([run], self._logits(1))[0]
        if call.stopped(run, first):
            call.finish(run)
            return None
        run.last = first
        return run

    def _step(self, call: _Call, running: list[_Running]) -> list[_Running]:
        """Decode one token for every running attempt; the attempts that go on."""
        status = self._decode([(r.last, r.pos, r.slot, True) for r in running])
        if status != 0:  # e.g. the KV cache is full: the attempts end with what they have
            for run in running:
                run.error = f"llama_decode failed ({status})"
                call.finish(run)
            return []
        for run in running:
            run.pos += 1
        still = []
        for run, token in zip(running, call.sample(running, self._logits(len(running))), strict=True):
            if call.stopped(run, token):
                call.finish(run)
            else:
                run.last = token
                still.append(run)
        return still


class _Call:
    """One generate call's sampler, stop rules and results (the attempts share the line-format processor)."""

    def __init__(self, backend: LlamaCppBackend, prompts: list[Prompt], params: DecodingParams, formats) -> None:
        self.backend, self.prompts, self.params = backend, prompts, params
        self.processor = None
        if formats is not None:
            from ercsynth.constraints import LineFormatProcessor

            self.processor = LineFormatProcessor(
                backend.token_table(), formats, [p.prefix for p in prompts], params.max_new_tokens, 0.0, 1.0
            )
        self.pieces = backend.pieces()
        self.results: list[Completion | None] = [None] * len(prompts)
        self.free = list(range(backend.parallel))

    def finish(self, run: _Running) -> None:
        text = run.raw.decode("utf-8", errors="replace")
        self.results[run.index] = Completion(
            text=cut_at_stops(text, self.prompts[run.index].style),
            prompt_tokens=run.prompt_tokens,
            completion_tokens=len(run.tokens),
            seconds=time.perf_counter() - run.started,
            error=run.error,
            forced=self.processor is not None and self.processor.states[run.index].forced,
        )
        self.free.append(run.slot)

    def stopped(self, run: _Running, token: int) -> bool:
        """Take `token`; True when the attempt ends with it (an end-of-generation token is not kept)."""
        backend, processor = self.backend, self.processor
        if token == backend.eos or (processor is None and backend.lc.llama_vocab_is_eog(backend.vocab, token)):
            return True
        run.tokens.append(token)
        run.seen.add(token)
        run.raw += self.pieces[token]
        if processor is not None:
            processor.observe(run.index, token)
            if processor.done(run.index):  # the asked lines are written (or, never, the format broke)
                return True
        elif self.prompts[run.index].style == "completion":
            tail = bytes(run.raw[-64:]).decode("utf-8", errors="replace")
            if any(stop in tail for stop in COMPLETION_STOPS):
                return True
        return len(run.tokens) >= self.params.max_new_tokens

    def sample(self, rows: list[_Running], scores) -> list[int]:
        import torch

        params = self.params
        scores = scores.float()
        for i, run in enumerate(rows):
            penalize_repeats(scores[i], run.seen, params.repetition_penalty)
        if self.processor is not None:
            scores = self.processor.mask([r.index for r in rows], scores)
        if params.temperature <= 0:
            return scores.argmax(dim=-1).tolist()
        values, index = torch.topk(scores / params.temperature, min(TOP_K, scores.shape[-1]), dim=-1)
        probs = values.softmax(dim=-1)
        if params.top_p < 1.0:
            probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > params.top_p, 0.0)  # keeps the best
        out = []
        for i, run in enumerate(rows):
            row = probs[i]
            if not torch.isfinite(row).all() or row.sum() <= 0:  # every token masked: end the attempt
                out.append(self.backend.eos)
                continue
            out.append(int(index[i, torch.multinomial(row, 1, generator=run.generator)]))
        return out


def _common_prefix(sequences: list[list[int]]) -> int:
    """How many leading tokens every sequence shares."""
    first = sequences[0]
    n = min(len(t) for t in sequences)
    for i in range(n):
        if any(t[i] != first[i] for t in sequences):
            return i
    return n


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _QUIET(level, text, user_data):  # noqa: N802 - a C callback
    return None
