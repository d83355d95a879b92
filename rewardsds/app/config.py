"""`rewardsds app`'s typed config (the CLI is generated from it by tyro)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class AppConfig:
    """Web app: run generate / compare / edit / gen3d from a local page and watch them work."""

    host: str = "127.0.0.1"
    """address to listen on (127.0.0.1: this machine only; 0.0.0.0 would open the app to the network)"""
    port: int = 7860
    """port to listen on (0: any free port; the URL is printed)"""
    root: Path = Path("out/app")
    """folder of the app's runs: one run folder per run, <time>-<prompt>, as the CLI writes it"""
    device: str = "auto"
    """device of every run: auto (cuda when available), cpu, cuda, cuda:1 ..."""
    threads: int | None = None
    """CPU threads for torch (default: the cores idle at start)"""
    open_browser: bool = False
    """open the page in the default browser once it is served"""


def check_app(cfg: AppConfig) -> None:
    """The options, before gradio is imported (UserError): port, device, a writable root."""
    from ..commands.common import pick_device
    from ..errors import UserError

    if not isinstance(cfg.port, int) or not 0 <= cfg.port <= 65535:
        raise UserError(f"--port must be in [0, 65535] (0: a free port), got {cfg.port}")
    pick_device(cfg.device)
    root = Path(cfg.root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to the app's folder {str(root)!r}: {e.strerror or e}") from e
