"""Write docs/configuration.md's key table from config.yaml (its defaults and their comments).

python scripts/config_docs.py            # rewrite the table between the markers
python scripts/config_docs.py --check    # exit 1 if the page is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ercsynth.config import config_reference

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "configuration.md"
START, END = "<!-- keys: start (scripts/config_docs.py) -->", "<!-- keys: end -->"


def table() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, meaning in config_reference(REPO / "config.yaml"):
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{key}` | {shown.replace('|', '&#124;')} | {meaning.replace('|', '&#124;')} |")
    return "\n".join(lines)


def render(page: str) -> str:
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the page is current")
    args = parser.parse_args()
    page = PAGE.read_text(encoding="utf-8")
    if START not in page or END not in page:
        print(f"{PAGE}: the markers {START} / {END} are missing", file=sys.stderr)
        return 1
    new = render(page)
    if args.check:
        if new != page:
            print(f"{PAGE} is out of date: run python scripts/config_docs.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
