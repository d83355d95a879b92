"""The page (Gradio Blocks) and the server: with `stream`, which only it imports, the only module of
rewardsds that imports gradio, and only `rewardsds.app.launch` imports this module.

Every tab builds the CLI's typed config from its fields (`forms`), starts it in the app's `Runner`
(`jobs`: one run at a time) and follows it with a generator (`stream.follow`) that yields the page's
outputs every `stream.POLL_S` seconds while the run's `on_step` records arrive. Errors a person can fix
arrive as `UserError` and are shown as `gr.Error` with its text; anything else is one line on the page
and a traceback in the server's log. Runs are tied to the browser tab's session and the tab of the page that started
them: Stop and Resume act on that run only.
"""

import dataclasses
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .. import checkpoints
from ..errors import UserError
from ..losses import EDIT_METHODS, TEXT_METHODS
from . import forms
from .config import AppConfig, check_app
from .jobs import Job, Runner, Stage
from .models import ModelCache
from .stream import candidate_gallery, current_image, follow, plots, status_text, verdict_text, zip_outputs

EXAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "red_circle.png"
CSS = """
#rs-legend {font-size: 0.9em; opacity: 0.85}
.rs-status p {margin: 0.2em 0}
"""


@dataclass
class App:
    """What the page works with: the settings of every run, the runner and the model cache it owns."""

    settings: forms.Settings
    runner: Runner


def _run_fns() -> dict[str, Callable[..., dict]]:
    from ..gen3d import run_gen3d
    from ..run2d import run_edit, run_generate

    return {"generate": run_generate, "edit": run_edit, "gen3d": run_gen3d}


def _owner(request: gr.Request | None, tab: str) -> str:
    return f"{getattr(request, 'session_hash', None) or 'api'}/{tab}"


def _values(fields: dict, data: dict) -> dict:
    """{config field name: value} from gradio's {component: value} (a set of inputs arrives as a dict)."""
    return {name: data.get(comp) for name, comp in fields.items()}


def _user_error(fn: Callable, *args):
    try:
        return fn(*args)
    except UserError as e:
        raise gr.Error(str(e), print_exception=False) from None


# --- the tabs -------------------------------------------------------------------------------------------

def _distill_fields(prefix: str, methods: tuple[str, ...] | None, method: str | None, n: int, steps: int,
                    k: float | None) -> dict:
    """The fields every tab shares, by config field name."""
    f = {}
    if methods is not None:
        f["method"] = gr.Dropdown(list(methods), value=method, label="method", elem_id=f"{prefix}-method")
    f["prior"] = gr.Dropdown(list(forms.PRIORS), value="world", label="prior",
                             info="world: the embedded model (CPU, offline); sd21/sd15: Stable Diffusion (GPU)",
                             elem_id=f"{prefix}-prior")
    f["reward"] = gr.Dropdown(list(forms.REWARDS), value=forms.DEFAULT_REWARD, label="reward",
                              info="default: the prior's (world-clip on the world)", elem_id=f"{prefix}-reward")
    with gr.Row():
        # no minimum/maximum: gradio's own range message would preempt the app's, which names the field
        f["n_noises"] = gr.Number(n, label="N (candidates)", info="1 to 64", elem_id=f"{prefix}-n")
        f["denoise_steps"] = gr.Number(1, label="S (denoise steps)", info="1 to 50", elem_id=f"{prefix}-s")
        if k is not None:
            f["reward_steps"] = gr.Number(k, label="K (reward steps)", info="fraction of the steps, or a count",
                                          elem_id=f"{prefix}-k")
    f["weighting"] = gr.Dropdown(list(forms.WEIGHTINGS), value="top-bottom", label="weighting",
                                 elem_id=f"{prefix}-weighting")
    with gr.Row():
        f["steps"] = gr.Number(steps, label="steps", elem_id=f"{prefix}-steps")
        f["seed"] = gr.Number(0, label="seed", elem_id=f"{prefix}-seed")
    return f


@dataclass
class Live:
    """The outputs that follow a run step by step."""

    status: gr.Markdown
    image: gr.Image
    gallery: gr.Gallery
    reward_plot: gr.Image
    grad_plot: gr.Image
    files: gr.File

    def outputs(self) -> list:
        return [self.status, self.image, self.gallery, self.reward_plot, self.grad_plot, self.files]


def _live(prefix: str, image_label: str) -> Live:
    status = gr.Markdown("Set the fields and press Run.", elem_id=f"{prefix}-status", elem_classes="rs-status")
    image = gr.Image(label=image_label, type="numpy", format="png", interactive=False, height=280,
                     elem_id=f"{prefix}-image")
    gallery = gr.Gallery(label="candidates of the latest reward step (r: reward, w: weight)", columns=5, height=200,
                         format="png",
                         object_fit="contain", allow_preview=False, interactive=False, elem_id=f"{prefix}-gallery")
    gr.Markdown("Frame: the candidate's weight: green positive (pulls towards it), red negative (pushes away), "
                "grey zero.", elem_id="rs-legend")
    with gr.Row():
        reward_plot = gr.Image(label="reward", type="numpy", format="png", interactive=False, show_label=False,
                               buttons=[], elem_id=f"{prefix}-reward-plot")
        grad_plot = gr.Image(label="gradient norm", type="numpy", format="png", interactive=False, show_label=False,
                             buttons=[], elem_id=f"{prefix}-grad-plot")
    files = gr.File(label="run folder (zip)", interactive=False, height=90, elem_id=f"{prefix}-zip")
    return Live(status, image, gallery, reward_plot, grad_plot, files)


def _render_live(job: Job, finished: bool, result_image: str | None = "image.png") -> tuple:
    stage = job.current
    snap = stage.progress.snapshot()
    result = stage.out / result_image if (finished and stage.result and result_image) else None
    reward_img, grad_img = plots(snap, stage.progress.total)
    files = zip_outputs(stage.out) if finished else None
    return status_text(job), current_image(snap, result), candidate_gallery(snap), reward_img, grad_img, files


def _can_resume(state: dict | None) -> dict:
    if not state or "cfg" not in state:
        raise gr.Error("nothing to resume in this tab: Run first", print_exception=False)
    out = Path(state["cfg"].out)
    if (out / "summary.json").exists():
        raise gr.Error(f"the run in {out} has finished; Run starts a new one", print_exception=False)
    if not (out / checkpoints.CHECKPOINT_NAME).exists():
        gr.Warning("the run was stopped before its first checkpoint: Resume starts it again")
    return state


def _single_run_tab(app: App, tab: str, kind: str, build_cfg: Callable[[dict], object],
                    fields: dict, live: Live, run: gr.Button, stop: gr.Button, resume: gr.Button,
                    extra_outputs: list, render_extra: Callable[[Job, bool], tuple]) -> None:
    """Wire Run / Stop / Resume of a tab whose job is one command (generate, edit, gen3d)."""
    state = gr.State(None)
    outputs = live.outputs() + extra_outputs + [state]

    def render(job: Job, finished: bool) -> tuple:
        return (*_render_live(job, finished, "views.png" if kind == "gen3d" else "image.png"),
                *render_extra(job, finished), {"cfg": job.stages[0].cfg})

    def start(cfg, request) -> Job:
        stage = Stage(kind, _run_fns()[kind], cfg)
        return _user_error(app.runner.start, _owner(request, tab), kind, [stage])

    def on_run(data: dict, request: gr.Request):
        cfg = _user_error(build_cfg, _values(fields, data))
        job = start(cfg, request)
        yield from follow(job, render)

    def on_resume(state_value, request: gr.Request):
        st = _can_resume(state_value)
        cfg = dataclasses.replace(st["cfg"], resume=True, overwrite=False)
        job = start(cfg, request)
        yield from follow(job, render)

    def on_stop(request: gr.Request):
        gr.Info(app.runner.stop(_owner(request, tab)))

    run.click(on_run, inputs=set(fields.values()), outputs=outputs, concurrency_limit=None,
              show_progress="hidden")
    resume.click(on_resume, inputs=[state], outputs=outputs, concurrency_limit=None, show_progress="hidden")
    stop.click(on_stop, inputs=None, outputs=None, concurrency_limit=None, show_progress="hidden")


def _buttons(prefix: str) -> tuple[gr.Button, gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id=f"{prefix}-run")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
        resume = gr.Button("Resume", elem_id=f"{prefix}-resume")
    return run, stop, resume


def _generate_tab(app: App) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            fields = {"prompt": gr.Textbox("a red circle to the left of a blue square", label="prompt",
                                           elem_id="gen-prompt")}
            fields.update(_distill_fields("gen", TEXT_METHODS, "reward-sds", 4, 300, 1.0))
            run, stop, resume = _buttons("gen")
        with gr.Column(scale=3):
            live = _live("gen", "current image")
    _single_run_tab(app, "generate", "generate", lambda v: forms.generate_config(v, app.settings), fields, live,
                    run, stop, resume, [], lambda job, finished: ())


def _edit_tab(app: App) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image = gr.Image(str(EXAMPLE_IMAGE) if EXAMPLE_IMAGE.exists() else None, type="filepath",
                             sources=["upload"], label="image to edit", height=200, elem_id="edit-input")
            fields = {"image": image,
                      "source": gr.Textbox("a red circle", label="source prompt (what the image shows)",
                                           elem_id="edit-source"),
                      "target": gr.Textbox("a blue circle", label="target prompt (the edit)", elem_id="edit-target")}
            fields.update(_distill_fields("edit", EDIT_METHODS, "reward-dds", 5, 300, 1.0))
            run, stop, resume = _buttons("edit")
        with gr.Column(scale=3):
            live = _live("edit", "edited image")

    def build(values: dict):
        cfg = forms.edit_config(values, app.settings)  # checks everything, the image's existence included
        return dataclasses.replace(cfg, image=forms.keep_upload(cfg.image, app.settings.root))

    _single_run_tab(app, "edit", "edit", build, fields, live, run, stop, resume, [], lambda job, finished: ())


def _gen3d_tab(app: App) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            fields = {"prompt": gr.Textbox("a red circle", label="prompt", elem_id="g3d-prompt")}
            fields.update(_distill_fields("g3d", TEXT_METHODS, "reward-sds", 4, 200, 0.5))
            run, stop, resume = _buttons("g3d")
        with gr.Column(scale=3):
            live = _live("g3d", "rendered views (this step)")
            with gr.Row():
                video = gr.Video(label="turntable", interactive=False, autoplay=True, loop=True, elem_id="g3d-video")
                mesh = gr.Model3D(label="mesh (glb)", interactive=False, elem_id="g3d-mesh")

    def render_extra(job: Job, finished: bool) -> tuple:
        stage = job.stages[0]
        if not (finished and stage.result):
            return None, None
        mp4, glb = stage.out / "turntable.mp4", stage.out / "mesh.glb"  # (a GIF turntable, without ffmpeg: zip only)
        return (str(mp4) if mp4.exists() else None), (str(glb) if glb.exists() else None)

    _single_run_tab(app, "gen3d", "gen3d", lambda v: forms.gen3d_config(v, app.settings), fields, live, run,
                    stop, resume, [video, mesh], render_extra)


def _compare_tab(app: App) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            fields = {"prompt": gr.Textbox("a red circle to the left of a blue square", label="prompt",
                                           elem_id="cmp-prompt")}
            fields.update(_distill_fields("cmp", None, None, 4, 300, None))
            with gr.Row():
                run = gr.Button("Run SDS, then RewardSDS", variant="primary", elem_id="cmp-run")
                stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Same prompt, seed and steps; SDS first, then RewardSDS.", elem_id="cmp-status",
                                 elem_classes="rs-status")
            with gr.Row():
                with gr.Column():
                    img_sds = gr.Image(label="SDS", type="numpy", format="png", interactive=False, height=256,
                                       elem_id="cmp-image-sds")
                    verdict_sds = gr.Markdown(elem_id="cmp-verdict-sds")
                with gr.Column():
                    img_rsds = gr.Image(label="RewardSDS", type="numpy", format="png", interactive=False, height=256,
                                        elem_id="cmp-image-reward-sds")
                    verdict_rsds = gr.Markdown(elem_id="cmp-verdict-reward-sds")
            files = gr.File(label="both run folders (zip)", interactive=False, height=90, elem_id="cmp-zip")

    def render(job: Job, finished: bool) -> tuple:
        out = [status_text(job)]
        images, verdicts = [], []
        for stage in job.stages:
            snap = stage.progress.snapshot() if stage.status != "waiting" else None
            done = stage.result is not None
            images.append(current_image(snap, stage.out / "image.png" if done else None))
            verdicts.append(verdict_text(stage.result) if done else "")
        files_out = zip_outputs(job.stages[0].out.parent) if finished else None
        return (*out, *images, *verdicts, files_out)

    def on_run(data: dict, request: gr.Request):
        cfgs = _user_error(forms.compare_configs, _values(fields, data), app.settings)
        stages = [Stage("SDS" if c.method == "sds" else "RewardSDS", _run_fns()["generate"], c) for c in cfgs]
        job = _user_error(app.runner.start, _owner(request, "compare"), "compare", stages)
        yield from follow(job, render)

    def on_stop(request: gr.Request):
        gr.Info(app.runner.stop(_owner(request, "compare")))

    run.click(on_run, inputs=set(fields.values()),
              outputs=[status, img_sds, img_rsds, verdict_sds, verdict_rsds, files], concurrency_limit=None,
              show_progress="hidden")
    stop.click(on_stop, inputs=None, outputs=None, concurrency_limit=None, show_progress="hidden")


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="RewardSDS", analytics_enabled=False) as demo:
        gr.Markdown("## RewardSDS: watch reward-weighted score distillation work\n"
                    f"Runs are written to `{app.settings.root}/` exactly as the command line writes them "
                    f"(device: {app.settings.device}). One run at a time.")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                _generate_tab(app)
            with gr.Tab("Compare", id="compare"):
                _compare_tab(app)
            with gr.Tab("Edit", id="edit"):
                _edit_tab(app)
            with gr.Tab("3D", id="gen3d"):
                _gen3d_tab(app)
    return demo


# --- the server -----------------------------------------------------------------------------------------

def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(cfg: AppConfig) -> tuple[gr.Blocks, App, str]:
    """Build the page and start serving it in the background; (demo, app, URL)."""
    check_app(cfg)
    try:
        port = cfg.port or free_port(cfg.host)
    except OSError as e:
        raise UserError(f"cannot listen on {cfg.host!r}: {e.strerror or e}") from e
    settings = forms.Settings(Path(cfg.root), cfg.device, cfg.threads)
    app = App(settings, Runner(ModelCache()))
    demo = build(app)
    demo.queue(default_concurrency_limit=None)
    try:
        demo.launch(server_name=cfg.host, server_port=port, prevent_thread_lock=True, quiet=True,
                    show_error=False, inbrowser=cfg.open_browser, allowed_paths=[str(Path(cfg.root).resolve())],
                    ssr_mode=False, mcp_server=False, footer_links=[], css=CSS)
    except OSError as e:
        raise UserError(f"cannot serve on {cfg.host}:{port} ({e}); pass another --port, or --port 0 for a free "
                        "one") from e
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return demo, app, f"http://{host}:{port}/"


def serve_forever(cfg: AppConfig) -> None:
    """Serve the app until Ctrl-C or SIGTERM; then stop a running job (it keeps its checkpoint)."""
    demo, app, url = serve(cfg)
    print(f"rewardsds app: serving on {url} (runs go to {cfg.root}/; Ctrl-C stops)", flush=True)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"rewardsds app: warning: --host {cfg.host} lets other machines use this app (no login)",
              file=sys.stderr, flush=True)
    stopping = threading.Event()

    def on_term(signum, frame):
        stopping.set()

    old = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        app.runner.shutdown()
        demo.close()
        print("rewardsds app: stopped", flush=True)
