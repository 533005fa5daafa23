"""Execute the book's notebooks in parallel into its execution cache, before ``jupyter-book build``.

Jupyter Book 1 (myst-nb with ``execute_notebooks: cache``) runs the notebooks one after another while
Sphinx reads them, so one core idles whenever a notebook is not training. This runs them with
jupyter-cache's own parallel executor (one process per core) into the cache the build reads,
``book/_build/.jupyter_cache``, the way the build would: each notebook in its own folder, with the
book's cell timeout from ``_config.yml``. The build then finds every notebook in the cache and renders
it. A notebook that fails here is left unexecuted, so the build runs it again and reports the error.

    python book/execute_in_parallel.py        (``make book`` runs it)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

from course_utils.book import toc_docnames

BOOK = Path(__file__).resolve().parent


def main() -> int:
    config = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))["execute"]
    notebooks = [BOOK / f"{name}.ipynb" for name in toc_docnames(BOOK / "_toc.yml")]
    notebooks = [path for path in notebooks if path.is_file()]
    cache = get_cache(str(BOOK / "_build" / ".jupyter_cache"))
    # later chapters train longest: they start first, so no core is left waiting on one at the end
    for path in reversed(notebooks):
        cache.add_nb_to_project(str(path))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    executor = load_executor("local-parallel", cache, logger=logging.getLogger("execute_in_parallel"))
    result = executor.run_and_cache(filter_uris=[str(p) for p in notebooks], timeout=config["timeout"],
                                    allow_errors=config.get("allow_errors", False))
    for uri in result.errored + result.excepted:
        print(f"{uri}: failed here; jupyter-book build runs it again and reports why", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
