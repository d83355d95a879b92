"""`rewardsds app`: a local web page (Gradio, the optional extra ``rewardsds[app]``) that runs the same
commands as the CLI and shows them working: the image as it forms, the N scored candidates of the
latest reward step with their rewards and weights, reward and gradient-norm curves, steps/s and ETA.

    rewardsds app                      # http://127.0.0.1:7860, embedded world on the CPU
    rewardsds app --port 0             # a free port (the URL is printed)

Layout: `forms` turns the page's fields into the CLI's typed configs (named priors and rewards only)
and checks them; `jobs` runs one command at a time in a worker thread, streams its steps from
`on_step` and stops it at a step boundary; `views` draws what the page shows (no gradio); `models`
keeps loaded models for the app's lifetime; `stream` turns a running job into what the page shows and
follows it; `server` builds the page and serves it, and is, with `stream`, the only module that imports
gradio (inside `launch`).
"""

from __future__ import annotations

from .config import AppConfig

__all__ = ["AppConfig", "launch", "run_app"]


def launch(cfg: AppConfig) -> None:
    """Serve the app until Ctrl-C or SIGTERM. Imports gradio (the `app` extra) here and nowhere earlier."""
    from .._compat import require
    from ..errors import UserError
    from .config import check_app

    check_app(cfg)  # cheap mistakes first: gradio takes seconds to import
    try:
        require("gradio", "app", "rewardsds app")
    except ImportError as e:
        raise UserError(str(e)) from e
    from .server import serve_forever

    serve_forever(cfg)


def run_app(cfg: AppConfig) -> None:
    """The `rewardsds app` command."""
    launch(cfg)
