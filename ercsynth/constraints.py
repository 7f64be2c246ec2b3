"""Constrained decoding of the line format `Name | text | symbol`, one utterance a line.

A :class:`LineFormat` says what an attempt may write: its speakers, the symbols allowed on each
line (any of the vocabulary's, or the planned one), and how many lines. It is enforced

- in the transformers backend by :class:`LineFormatProcessor`, a logits processor that masks
  every token the format does not allow at that point (a character-level automaton over the
  token strings, with the text positions precomputed as vocabulary masks, so a step costs a few
  dictionary lookups, not a pass over the vocabulary);
- on OpenAI-compatible servers by the server's own guided decoding, from :meth:`LineFormat.regex`
  (vLLM) or :meth:`LineFormat.gbnf` (the llama.cpp server); these two do not stop a speaker from
  speaking twice in a row (the parser still needs two speakers per dialogue).

Choices that are ours, not the paper's: consecutive lines have different speakers (a dialogue
needs two), and each line's text gets an equal share of the token budget so that no line is cut
off by it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ercsynth.dialogues import line_key

MAX_TEXT_CHARS = 300
# Tokens a line needs besides its text: the name (up to 3 tokens), " |", " |", " ", the symbol, "\n".
LINE_OVERHEAD_TOKENS = 8
MIN_TEXT_TOKENS = 4


@dataclass(frozen=True)
class LineFormat:
    """What one attempt may write: `lines` lines `speaker | text | symbol`."""

    speakers: tuple[str, ...]
    symbols: tuple[str, ...]  # every symbol of the vocabulary, as text
    lines: int
    plan: tuple[str, ...] | None = None  # the symbol each line must carry (planned distribution)
    max_text_chars: int = MAX_TEXT_CHARS
    # A symbol at least one line must carry (balanced: the target): forced on the last line if no
    # earlier line chose it.
    required: str | None = None
    # No line's text may repeat an earlier line's, ignoring case and spaces (small models loop).
    distinct_lines: bool = False

    def symbols_at(self, line: int) -> tuple[str, ...]:
        return (self.plan[line],) if self.plan else self.symbols

    def regex(self, prefixed: bool = False) -> str:
        """The whole completion as one regular expression (vLLM `guided_regex`); `prefixed`: the
        prompt already ends with the first line's "Name |" (completion style)."""
        names = "|".join(re.escape(s) for s in self.speakers)
        text = rf" +[^|\n ][^|\n]{{0,{self.max_text_chars}}}"  # a space, then something visible

        def line(i: int) -> str:
            symbols = "|".join(re.escape(s) for s in self.symbols_at(i))
            head = "" if prefixed and i == 0 else rf"(?:{names}) \|"
            return rf"{head}{text}\| ?(?:{symbols})\n"

        return "".join(line(i) for i in range(self.lines))

    def gbnf(self, prefixed: bool = False) -> str:
        """The same language as a GBNF grammar (the llama.cpp server's `grammar`)."""
        names = " | ".join(_gbnf_literal(s) for s in self.speakers)
        rules = [f"root ::= {' '.join(f'line{i}' for i in range(self.lines))}", f"name ::= {names}"]
        rules.append(r'text ::= " "+ [^|\n ] [^|\n]*')
        for i in range(self.lines):
            symbols = " | ".join(_gbnf_literal(s) for s in self.symbols_at(i))
            head = "" if prefixed and i == 0 else 'name " |" '
            rules.append(f'line{i} ::= {head}text "|" " "? ({symbols}) "\\n"')
        return "\n".join(rules) + "\n"


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- the automaton
@dataclass
class LineState:
    """Where an attempt is in its format, fed character by character."""

    fmt: LineFormat
    line: int = 0
    # "choice": one of `choices` is being written (`consumed` so far); "text": a line's text.
    mode: str = "choice"
    choices: tuple[str, ...] = ()
    consumed: str = ""
    after_choice: str = "text"  # what follows the choice: "text" (a speaker) or "line" (a symbol)
    text_chars: int = 0
    text_tokens: int = 0
    previous_speaker: str | None = None
    speaker: str | None = None
    done: bool = False
    failed: bool = field(default=False)
    text: str = ""  # the current line's text so far
    earlier: set[str] = field(default_factory=set)  # the written lines' line_key
    seen: set[str] = field(default_factory=set)  # the symbols written
    forced: bool = False  # the last line's symbol was forced to fmt.required

    def copies_earlier_line(self) -> bool:
        """The text so far, ended here, would repeat an earlier line's (when lines must be distinct)."""
        return self.fmt.distinct_lines and line_key(self.text) in self.earlier

    def _symbols(self) -> tuple[str, ...]:
        symbols = self.fmt.symbols_at(self.line)
        required = self.fmt.required
        if required and self.line == self.fmt.lines - 1 and required not in self.seen and required in symbols:
            self.forced = symbols != (required,)
            return (required,)
        return symbols

    def __post_init__(self) -> None:
        if self.fmt.lines <= 0:
            self.done = True
        else:
            self._start_line()

    def _start_line(self) -> None:
        names = [s for s in self.fmt.speakers if s != self.previous_speaker] or list(self.fmt.speakers)
        self.mode, self.choices, self.consumed, self.after_choice = "choice", tuple(f"{n} |" for n in names), "", "text"

    def feed(self, text: str) -> bool:
        """Advance over `text`; False (and the state marked failed) if the format does not allow it."""
        for ch in text:
            if not self._feed_char(ch):
                self.failed = True
                return False
        return True

    def _feed_char(self, ch: str) -> bool:
        if self.done:
            return False
        if self.mode == "choice":
            consumed = self.consumed + ch
            alive = tuple(c for c in self.choices if c.startswith(consumed))
            if not alive:
                return False
            self.choices, self.consumed = alive, consumed
            if consumed in alive:  # choices never prefix one another: a full match ends the choice
                self._end_choice(consumed)
            return True
        # text: at least one character that is not a space, then "|"
        if ch == "|":
            if not self.text_chars or self.copies_earlier_line():
                return False
            self.mode, self.consumed, self.after_choice = "choice", "", "line"
            self.choices = tuple(c for s in self._symbols() for c in (f" {s}\n", f"{s}\n"))
            return True
        if ch == "\n" or self.text_chars >= self.fmt.max_text_chars:
            return False
        if ch != " " or self.text_chars:
            self.text_chars += 1
        self.text += ch
        return True

    def _end_choice(self, chosen: str) -> None:
        if self.after_choice == "text":
            self.speaker = chosen[:-2]
            self.mode, self.text_chars, self.text_tokens, self.text = "text", 0, 0, ""
            return
        self.seen.add(chosen.strip())
        self.earlier.add(line_key(self.text))
        self.previous_speaker = self.speaker
        self.line += 1
        if self.line >= self.fmt.lines:
            self.done = True
        else:
            self._start_line()


class TokenTable:
    """The vocabulary's token strings and the masks the text positions use, built once per model."""

    def __init__(self, strings: list[str], eos: int) -> None:
        """`strings`: each token id's text ('' for special and partial-byte tokens); `eos`: the id
        that ends a completion."""
        import torch

        self.strings = strings
        self.size = len(self.strings)
        self.eos = eos
        self.by_string: dict[str, list[int]] = {}
        for i, s in enumerate(self.strings):
            if s:
                self.by_string.setdefault(s, []).append(i)
        # Text tokens: printable (no line break, no control character, which parsing would reject), no "|".
        text = [bool(s) and "|" not in s and s.isprintable() and "\ufffd" not in s for s in self.strings]
        # The first token of a text starts with the space after "Name |" and holds a visible character.
        first = [ok and s.startswith(" ") and bool(s.strip()) for ok, s in zip(text, self.strings, strict=True)]
        pipe = [s in (" |", "|") for s in self.strings]
        self.text = torch.tensor(text)
        self.first_text = torch.tensor(first)
        self.pipe = torch.tensor(pipe)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> TokenTable:
        return cls(token_strings(tokenizer), tokenizer.eos_token_id)

    def choice_ids(self, state: LineState) -> list[int]:
        """Tokens that continue one of the state's choices without leaving it."""
        ids: set[int] = set()
        for c in state.choices:
            rest = c[len(state.consumed) :]
            for k in range(1, len(rest) + 1):
                ids.update(self.by_string.get(rest[:k], ()))
        return sorted(ids)


def token_strings(tokenizer) -> list[str]:
    """Each token id's text ('' for special and partial-byte tokens), for SentencePiece and
    byte-level BPE vocabularies."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    byte_level = sum(1 for t in tokens[:5000] if t and t.startswith("\u0120")) > 50  # "Ġ": GPT-2 style
    decoder = {v: k for k, v in _bytes_to_unicode().items()} if byte_level else {}
    out = []
    for i, t in enumerate(tokens):
        if i in special or t is None:
            out.append("")
            continue
        if byte_level:
            try:
                out.append(bytes(decoder[ch] for ch in t).decode("utf-8"))
            except (KeyError, UnicodeDecodeError):
                out.append("")
            continue
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", t)
        if m:
            b = int(m.group(1), 16)
            out.append(chr(b) if b < 0x80 else "")
            continue
        out.append(t.replace("\u2581", " "))
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class LineFormatProcessor:
    """A transformers logits processor: row i of the batch may only write `formats[i]`.

    Temperature and top-p are applied here, after the mask, so they only ever choose among
    allowed tokens (generate() is called with its own sampling warpers switched off).
    """

    def __init__(
        self,
        table: TokenTable,
        formats: list[LineFormat],
        prefixes: list[str],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        top_k: int = 0,
    ) -> None:
        self.table = table
        self.top_k = top_k
        self.states = []
        for fmt, prefix in zip(formats, prefixes, strict=True):
            state = LineState(fmt)
            if prefix and not state.feed(prefix):
                raise ValueError(f"the prompt's response prefix {prefix!r} is outside the line format")
            self.states.append(state)
        self.text_budget = [
            max(MIN_TEXT_TOKENS, max_new_tokens // max(1, f.lines) - LINE_OVERHEAD_TOKENS) for f in formats
        ]
        self.temperature = temperature
        self.top_p = top_p
        self.start: int | None = None

    def __call__(self, input_ids, scores):
        """transformers' interface: the whole batch at every step, the last column the new tokens."""
        if self.start is None:
            self.start = input_ids.shape[1]
        elif input_ids.shape[1] > self.start:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                self.observe(row, token)
        scores = self.mask(list(range(len(self.states))), scores)
        if self.temperature > 0:
            scores = _top_k_top_p(scores / self.temperature, self.top_k, self.top_p)
        return scores

    def observe(self, row: int, token: int) -> None:
        """Attempt `row` wrote `token`."""
        state = self.states[row]
        if state.done or state.failed:
            return
        if state.mode == "text":
            state.text_tokens += 1
        state.feed(self.table.strings[token] if token < self.table.size else "")

    def done(self, row: int) -> bool:
        return self.states[row].done or self.states[row].failed

    def mask(self, rows: list[int], scores):
        """`scores[i]` (attempt `rows[i]`) with every token its format forbids now set to -inf."""
        import torch

        mask = torch.zeros(scores.shape, dtype=torch.bool)
        width = min(scores.shape[-1], self.table.size)  # logits may be wider than the tokenizer: those stay masked
        for i, row in enumerate(rows):
            mask[i, :width] = self._allowed(self.states[row], row)[:width]
        return scores.masked_fill(~mask.to(scores.device), float("-inf"))

    def _allowed(self, state: LineState, row: int):
        import torch

        t = self.table
        allowed = torch.zeros(t.size, dtype=torch.bool)
        if state.done or state.failed:
            allowed[t.eos] = True
        elif state.mode == "choice":
            allowed[t.choice_ids(state)] = True
        elif not state.text_chars:
            allowed |= t.first_text
        elif state.copies_earlier_line():  # the line may not end here: it must say something new
            allowed |= t.text
        elif state.text_tokens >= self.text_budget[row] or state.text_chars >= state.fmt.max_text_chars - 20:
            allowed |= t.pipe
        else:
            allowed |= t.text | t.pipe
        if not allowed.any():  # a vocabulary without the tokens this point needs: let the model end
            allowed[t.eos] = True
        return allowed


def _top_k_top_p(scores, top_k: int, top_p: float):
    """The sampling warpers of generate(), after the mask: the k best allowed tokens (all when 0),
    then the smallest set of them whose probability reaches top_p. One top-k, no full-vocabulary sort."""
    import torch

    k = min(top_k or scores.shape[-1], scores.shape[-1])
    if k == scores.shape[-1] and top_p >= 1.0:
        return scores
    values, index = torch.topk(scores, k, dim=-1)
    if top_p < 1.0:
        probs = values.softmax(dim=-1)
        remove = probs.cumsum(dim=-1) - probs > top_p  # keeps at least the best token
        values = values.masked_fill(remove, float("-inf"))
    return torch.full_like(scores, float("-inf")).scatter(-1, index, values)
