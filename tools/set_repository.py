"""Point every launch link at the repository that _config.yml names (one source of truth).

``repository.url`` and ``repository.branch`` in _config.yml drive the book's own launch, edit and
issue buttons. The links outside the book follow them: the README's Binder, Colab and build
badges, and the Colab install cell of every notebook page (``scansnap @ git+URL``), whose
``.ipynb`` twins are then rewritten. Publishing the book under another name is one line in
_config.yml, then:

    .venv/bin/python tools/set_repository.py            # rewrite what disagrees
    .venv/bin/python tools/set_repository.py --check    # exit 1 listing what disagrees (the test)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
_PART = r"[^/\s)\"'`]+"


def repository(root: Path = ROOT) -> tuple[str, str, str]:
    """``(owner, name, branch)`` of ``repository.url`` (a github.com URL) in _config.yml."""
    config = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    match = re.fullmatch(r"https://github\.com/([^/\s]+)/([^/\s]+?)/?", str(config["url"]))
    if not match:
        raise ValueError(f"repository.url must be https://github.com/OWNER/NAME, "
                         f"got {config['url']!r}")
    return match[1], match[2], str(config.get("branch", "main"))


def rewrites(root: Path = ROOT) -> list[tuple[re.Pattern[str], str, list[Path]]]:
    """(pattern, replacement, files) for every launch link outside _config.yml."""
    owner, name, branch = repository(root)
    url = f"https://github.com/{owner}/{name}"
    readme = [root / "README.md"]
    pages = [p for p in sorted((root / "book").glob("*.md")) if "scansnap @ git+" in p.read_text()]
    return [
        (re.compile(rf"https://mybinder\.org/v2/gh/{_PART}/{_PART}/{_PART}\?"),
         f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}?", readme),
        (re.compile(rf"https://colab\.research\.google\.com/github/{_PART}/{_PART}/blob/{_PART}/"),
         f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/", readme),
        (re.compile(rf"https://github\.com/{_PART}/{_PART}/actions/"), f"{url}/actions/", readme),
        (re.compile(rf"https://{_PART}\.github\.io/{_PART}/"), f"https://{owner}.github.io/{name}/",
         readme),
        (re.compile(rf"scansnap @ git\+https://github\.com/{_PART}/{_PART}(?=\")"),
         f"scansnap @ git+{url}", pages),
    ]


def disagreeing(root: Path = ROOT) -> dict[Path, str]:
    """Files whose launch links differ from _config.yml, with their corrected text."""
    texts: dict[Path, str] = {}
    for pattern, replacement, files in rewrites(root):
        for path in files:
            text = texts.get(path, path.read_text())
            if not pattern.search(text):
                raise ValueError(f"{path.relative_to(root)} has no link matching {pattern.pattern}")
            texts[path] = pattern.sub(replacement, text)
    return {path: text for path, text in texts.items() if text != path.read_text()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list what disagrees")
    args = parser.parse_args(argv)
    stale = disagreeing()
    for path, text in stale.items():
        if args.check:
            print(f"disagrees with _config.yml: {path.relative_to(ROOT)}")
        else:
            path.write_text(text)
            print(f"rewrote {path.relative_to(ROOT)}")
    if args.check:
        return 1 if stale else 0
    if stale:
        sys.path.insert(0, str(Path(__file__).parent))
        import sync_notebooks

        return sync_notebooks.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
