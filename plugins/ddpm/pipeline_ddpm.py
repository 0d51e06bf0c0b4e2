"""DDPM pipelines: a stock-format ``DDPMPipeline`` with scheduler swap, DDIM ``eta`` and intermediate ``x_t``, and a
class-conditional variant with classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598).

The unconditional pipeline is saved as a stock diffusers ``DDPMPipeline`` folder (``model_index.json``, ``unet/``,
``scheduler/``), which loads with ``diffusers.DiffusionPipeline.from_pretrained`` where genkit is not installed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDPMPipeline, DDPMScheduler, RePaintScheduler, SchedulerMixin, UNet2DModel
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from genkit.images import check_count, inpainting_input, model_input
from genkit.plugin.pipeline import GenkitPipeline  # export: from diffusers import DiffusionPipeline as GenkitPipeline

__all__ = [
    "ClassConditionalDDPMPipeline",
    "DDPMSamplingOutput",
    "GenkitDDPMPipeline",
    "SAMPLERS",
    "compatible_scheduler_names",
    "make_scheduler",
]

# Images denoised in one call: the activations of a 1,024-image batch of a 32 px base UNet fill ~40 GB.
MAX_BATCH_SIZE = 1024


@dataclass
class DDPMSamplingOutput(ImagePipelineOutput):
    """``images`` as in diffusers; with ``return_intermediates=k``, ``intermediates[i]`` is x_t after
    ``intermediate_steps[i]`` denoising steps: the pure noise x_T (step 0), every k-th step, and the final sample."""

    intermediates: list | None = None
    intermediate_steps: list[int] | None = None


# ---- schedulers by name ------------------------------------------------------------------------------------------
def _short_name(cls: type) -> str:
    return cls.__name__.lower().removesuffix("scheduler")


def _compatible_classes(scheduler: SchedulerMixin) -> list[type]:
    # diffusers also lists placeholders for optional backends (torchsde), which cannot run, and the EDM schedulers,
    # which feed the network EDM-preconditioned inputs and log-sigma "timesteps" (Karras et al. 2022, Table 1) that
    # a DDPM noise predictor was never trained on.
    classes = [type(scheduler), *scheduler.compatibles]
    unique = {c.__name__: c for c in classes if "dummy" not in c.__module__ and not c.__name__.startswith("EDM")}
    return sorted(unique.values(), key=_short_name)


# Named samplers: a compatible scheduler class with settings of its config (docs/benchmarks.md measures each on the
# same model: DPM-Solver++ 2M SDE comes within 10% of DDPM-1000's Fréchet distance at 20 model calls).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm++2m-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim-trailing": ("DDIMScheduler", {"timestep_spacing": "trailing"}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def _key(name: str) -> str:
    return str(name).lower().replace("_", "").replace("-", "")


def compatible_scheduler_names(scheduler: SchedulerMixin) -> list[str]:
    """The named samplers (``dpm++2m-sde``, ...) and the short names (``ddpm``, ``ddim``, ``dpmsolvermultistep``,
    ...) of the schedulers that can stand in."""
    classes = {c.__name__ for c in _compatible_classes(scheduler)}
    named = [name for name, (cls, _) in SAMPLERS.items() if cls in classes]
    return named + [_short_name(c) for c in _compatible_classes(scheduler)]


def make_scheduler(scheduler: SchedulerMixin, name: str | SchedulerMixin | None) -> SchedulerMixin:
    """A fresh scheduler of the kind ``name`` that shares ``scheduler``'s noise schedule and prediction type.

    ``name`` is one of ``SAMPLERS`` (``"dpm++2m-sde"``), a short name (``"ddim"``) or a class name
    (``"DDIMScheduler"``) of a scheduler diffusers lists as compatible, or a scheduler object (used as is); None copies
    ``scheduler``. The pipeline's own scheduler is never
    changed, so a saved folder keeps its ``DDPMScheduler``.
    """
    if isinstance(name, SchedulerMixin):
        return name
    if name is None:
        return type(scheduler).from_config(scheduler.config)
    key = _key(name)
    named = {_key(n): spec for n, spec in SAMPLERS.items()}
    class_name, settings = named.get(key, (None, {}))
    for cls in _compatible_classes(scheduler):
        if key in (_short_name(cls), cls.__name__.lower()) or cls.__name__ == class_name:
            return cls.from_config(scheduler.config, **settings)
    raise ValueError(
        f"unknown scheduler {name!r}; schedulers compatible with this model: "
        f"{', '.join(compatible_scheduler_names(scheduler))}"
    )


# ---- the sampling loop, shared by both pipelines -------------------------------------------------------------------
class DenoisingLoopMixin:
    """``__call__`` for a pixel-space ``UNet2DModel`` + scheduler pipeline; subclasses supply ``predict``."""

    unet: UNet2DModel
    scheduler: SchedulerMixin

    def predict(self, sample: torch.Tensor, timestep, class_labels=None, guidance_scale: float | None = None):
        """The UNet's prediction (noise, or v for v-prediction) for ``sample`` at ``timestep``."""
        raise NotImplementedError

    def check_inputs(
        self, scheduler=None, eta: float | None = None, class_labels=None, guidance_scale=None, batch_size: int = 1
    ) -> SchedulerMixin:
        """Validate sampling arguments (ValueError naming the mistake); returns the scheduler to sample with."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be an integer in [1, {MAX_BATCH_SIZE}], got {batch_size!r}")
        if eta is not None and not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1] (0 = deterministic DDIM, 1 = DDPM-like), got {eta}")
        if guidance_scale is not None and not 0 <= guidance_scale <= 100:
            raise ValueError(f"guidance_scale must be in [0, 100], got {guidance_scale}")
        sampler = make_scheduler(self.scheduler, scheduler)
        if eta is not None and "eta" not in inspect.signature(sampler.step).parameters:
            classes = _compatible_classes(self.scheduler)
            takes_eta = [_short_name(c) for c in classes if "eta" in inspect.signature(c.step).parameters]
            raise ValueError(
                f"eta applies to DDIM-type samplers ({', '.join(takes_eta)}), not to {type(sampler).__name__}"
            )
        self._check_conditioning(class_labels, guidance_scale, batch_size)
        return sampler

    def _check_conditioning(self, class_labels, guidance_scale, batch_size: int) -> None:
        given = [
            name
            for name, value in (("class_labels", class_labels), ("guidance_scale", guidance_scale))
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to class-conditional models; "
                "this DDPM is unconditional (train one with `genkit train ddpm --conditional`)"
            )

    def _labels(self, class_labels, batch_size: int) -> torch.Tensor | None:
        return None

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        scheduler: str | SchedulerMixin | None = None,
        eta: float | None = None,
        class_labels=None,
        guidance_scale: float | None = None,
        return_intermediates: int = 0,
        callback_on_step_end: Callable[[Any, int, Any, dict], dict] | None = None,
    ):
        """Generate ``batch_size`` images.

        Args:
            num_inference_steps: denoising steps; None uses every training timestep for DDPM (1000 by default) and
                50 for any other scheduler.
            output_type: ``"pil"``, ``"np"`` (N, H, W, C) or ``"pt"`` (N, C, H, W), values in [0, 1] as in diffusers.
            scheduler: ``"ddpm"`` (the saved one), ``"ddim"``, a named sampler (``"dpm++2m-sde"``, see ``SAMPLERS``),
                another compatible scheduler's name, or an object.
            eta: DDIM's noise scale (0 = deterministic DDIM, 1 = DDPM-like variance; Song et al. 2021, eq. 16).
            class_labels: conditional models only: one class id for every image, or ``batch_size`` ids.
            guidance_scale: conditional models only: classifier-free guidance weight w in
                eps = eps_uncond + w * (eps_cond - eps_uncond); 1 is the plain conditional model, 0 the unconditional.
            return_intermediates: k > 0 returns x_T, every k-th x_t and the final x_0 in ``intermediates``.
            callback_on_step_end: ``fn(pipeline, step_index, timestep, {"latents": x_t}) -> dict``, called after
                every denoising step (diffusers' convention, "latents" being x_t in pixel space here); a ``"latents"``
                entry in the returned dict replaces x_t.
        """
        sampler = self.check_inputs(scheduler, eta, class_labels, guidance_scale, batch_size)
        steps = self._check_call(sampler, num_inference_steps, output_type, return_intermediates)
        labels = self._labels(class_labels, batch_size)
        # 1. start from pure noise x_T, scaled as the sampler expects (1 for DDPM/DDIM, sigma_max for Euler-type);
        # drawn in float32 and then cast, so a seed gives the same noise in float16 and bfloat16 as in float32
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        shape = (batch_size, self.unet.config.in_channels, height, width)
        sampler.set_timesteps(steps, device=self._execution_device)
        x = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=torch.float32)
        x = x.to(self.unet.dtype) * sampler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(sampler.step).parameters else {}
        step_kwargs.update({"eta": eta} if eta is not None else {})
        x, kept = self._denoise(
            x, sampler, labels, guidance_scale, step_kwargs, return_intermediates, callback_on_step_end
        )
        images = self._postprocess(x, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        inter = [self._postprocess(v, output_type) for v, _ in kept] if return_intermediates else None
        return DDPMSamplingOutput(images=images, intermediates=inter, intermediate_steps=[i for _, i in kept] or None)

    def _check_call(self, sampler, num_inference_steps, output_type: str, return_intermediates: int) -> int:
        """The denoising steps (None: every training timestep for DDPM, 50 otherwise), with the other arguments."""
        if return_intermediates < 0:
            raise ValueError(f"return_intermediates must be >= 0, got {return_intermediates}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        if num_inference_steps is None:
            num_inference_steps = sampler.config.num_train_timesteps if isinstance(sampler, DDPMScheduler) else 50
        if not 1 <= num_inference_steps <= sampler.config.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be in [1, {sampler.config.num_train_timesteps}] (the training timesteps), "
                f"got {num_inference_steps}"
            )
        return num_inference_steps

    def _denoise(
        self, x, sampler, labels, guidance_scale, step_kwargs: dict, every: int = 0, callback=None, timesteps=None
    ) -> tuple:
        """x_T -> x_0 along the sampler's timesteps (or the last ``timesteps`` of them); with ``every`` > 0 also x_T,
        every k-th x_t and x_0 (with the number of steps done)."""
        kept = [(x, 0)] if every else []
        timesteps = sampler.timesteps if timesteps is None else timesteps
        for i, t in enumerate(self.progress_bar(timesteps)):
            # 2. predict the noise (or v) from x_t
            model_output = self.predict(sampler.scale_model_input(x, t), t, labels, guidance_scale)
            # 3. x_t -> x_t-1
            x = sampler.step(model_output, t, x, **step_kwargs).prev_sample
            if callback is not None:
                x = callback(self, i, t, {"latents": x}).get("latents", x)
            if every and ((i + 1) % every == 0 or i == len(timesteps) - 1):
                kept.append((x, i + 1))
        return x, kept

    @torch.no_grad()
    def noise(self, image, timesteps=None, generator=None, output_type: str = "pil"):
        """The forward process q(x_t | x_0) of one ``image`` (PIL, or a tensor in [-1, 1]) at each of ``timesteps``
        (default: 0, T/20, T/10, T/4, T/2, 3T/4 and T - 1):
        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise (Ho et al. 2020, eq. 4), with one noise draw for
        every t, as training adds it. The reverse trajectory is ``pipe(..., return_intermediates=k)``."""
        T = self.scheduler.config.num_train_timesteps
        if timesteps is None:
            timesteps = [0, T // 20, T // 10, T // 4, T // 2, 3 * T // 4, T - 1]
        t = torch.as_tensor(timesteps, dtype=torch.long).reshape(-1)
        check_count("timesteps", t.numel(), MAX_BATCH_SIZE)
        if t.min() < 0 or t.max() >= T:
            raise ValueError(f"timesteps must be in [0, {T - 1}], got {t.tolist()}")
        size = self.unet.config.sample_size
        x0 = model_input(image, size if isinstance(size, int) else size[0], self.unet.config.in_channels, 1)
        noise = randn_tensor(x0.shape, generator=generator, dtype=torch.float32)
        xt = self.scheduler.add_noise(x0.repeat(len(t), 1, 1, 1), noise.repeat(len(t), 1, 1, 1), t)
        return self._postprocess(xt.to(self.unet.dtype), output_type)

    # ---- editing a given image -----------------------------------------------------------------------------------
    @torch.no_grad()
    def img2img(
        self,
        image,
        strength: float = 0.5,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        scheduler: str | SchedulerMixin | None = None,
        eta: float | None = None,
        class_labels=None,
        guidance_scale: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Image-to-image by SDEdit (Meng et al. 2022, https://arxiv.org/abs/2108.01073): noise ``image`` (PIL images
        or a tensor in [-1, 1]) to the noise level reached after a fraction ``strength`` of the sampler's schedule,
        then denoise it with the last ``strength`` x ``num_inference_steps`` steps. 0 returns the image, 1 starts
        from (almost) pure noise and keeps little of it; in between, the layout survives and the details become the
        model's. The other arguments are ``__call__``'s, as in diffusers' img2img pipelines.
        """
        x0 = model_input(image, self.sample_size, self.unet.config.in_channels, MAX_BATCH_SIZE)
        n = x0.shape[0]
        sampler = self.check_inputs(scheduler, eta, class_labels, guidance_scale, n)
        steps = self._check_call(sampler, num_inference_steps, output_type, 0)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise ValueError(f"strength must be a number in [0, 1] (0 keeps the image, 1 redraws it), got {strength}")
        x0 = x0.to(self._execution_device)
        # as diffusers' img2img pipelines do: skip the first (1 - strength) of the schedule, start from x_t there
        sampler.set_timesteps(steps, device=self._execution_device)
        kept = min(steps, max(1, round(steps * strength))) if strength > 0 else 0
        start = (steps - kept) * sampler.order
        timesteps = sampler.timesteps[start:]
        x = x0.to(self.unet.dtype)
        if kept:
            if hasattr(sampler, "set_begin_index"):
                sampler.set_begin_index(start)
            noise = randn_tensor(x0.shape, generator=generator, device=self._execution_device, dtype=torch.float32)
            x = sampler.add_noise(x0, noise, timesteps[:1].repeat(n)).to(self.unet.dtype)
            step_kwargs = {"generator": generator} if "generator" in inspect.signature(sampler.step).parameters else {}
            step_kwargs.update({"eta": eta} if eta is not None else {})
            labels = self._labels(class_labels, n)
            x, _ = self._denoise(x, sampler, labels, guidance_scale, step_kwargs, timesteps=timesteps)
        images = self._postprocess(x, output_type)
        self.maybe_free_model_hooks()
        return DDPMSamplingOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def inpaint(
        self,
        image,
        mask,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        eta: float = 0.0,
        class_labels=None,
        guidance_scale: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Fill in the region of ``image`` that ``mask`` marks (white = repaint, black = keep) by RePaint (Lugmayr et
        al. 2022, https://arxiv.org/abs/2201.09865), with diffusers' ``RePaintScheduler`` on this model's noise
        schedule: at every step the kept region is the input noised to that step's level and the masked region is
        the model's; going back ``jump_length`` steps ``jump_n_sample`` times lets the two agree. The defaults are
        the paper's and diffusers' ``RePaintPipeline``'s: 250 steps (or T, if smaller), about
        ``num_inference_steps`` x ``jump_n_sample`` model calls; ``num_inference_steps=50, jump_n_sample=4`` is
        ~10x faster and still coherent on small models.

        ``image``: PIL images or a tensor in [-1, 1]; ``mask``: a PIL image of the image's size (mode 1/L/gray RGB:
        white = fill in; LA/RGBA: the alpha channel) or a (N, 1, H, W) tensor at the model's size, 1 = fill in.
        ``eta`` is DDIM's noise scale for the masked region's steps (0, the default, is deterministic).
        Pixels outside the mask are returned as given.
        """
        size, channels = self.sample_size, self.unet.config.in_channels
        x0, m = inpainting_input(image, mask, size, channels, MAX_BATCH_SIZE)
        n = x0.shape[0]
        self.check_inputs(None, None, class_labels, guidance_scale, n)
        T = self.scheduler.config.num_train_timesteps
        num_inference_steps = min(250, T) if num_inference_steps is None else num_inference_steps
        self._check_call(self.scheduler, num_inference_steps, output_type, 0)
        for name, value, high in (("jump_length", jump_length, 100), ("jump_n_sample", jump_n_sample, 100)):
            check_count(name, value, high)
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1] (0 = deterministic DDIM, 1 = DDPM-like), got {eta}")
        device, dtype = self._execution_device, self.unet.dtype
        sampler = RePaintScheduler.from_config(self._repaint_config(), eta=eta)
        sampler.set_timesteps(num_inference_steps, jump_length, jump_n_sample, device=device)
        labels = self._labels(class_labels, n)
        keep = (1 - m).to(device, dtype)  # RePaintScheduler's mask: 1 = known
        original = x0.to(device, dtype)
        x = randn_tensor(x0.shape, generator=generator, device=device, dtype=torch.float32).to(dtype)
        t_last = sampler.timesteps[0] + 1
        for t in self.progress_bar(sampler.timesteps):
            if t < t_last:  # a denoising step x_t -> x_t-1, the known region taken from the noised input
                eps = self._epsilon(self.predict(x, t, labels, guidance_scale), x, t)
                x = sampler.step(eps, t, x, original, keep, generator).prev_sample
            else:  # a jump back: x_t-1 -> x_t by the forward process
                x = sampler.undo_step(x, t_last, generator)
            t_last = t
        x = keep * original + (1 - keep) * x  # the kept pixels exactly as given
        images = self._postprocess(x, output_type)
        self.maybe_free_model_hooks()
        return DDPMSamplingOutput(images=images) if return_dict else (images,)

    def _repaint_config(self) -> dict:
        """This model's noise schedule as ``RePaintScheduler`` settings (it has no prediction types or thresholds)."""
        config = self.scheduler.config
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample")
        return {k: config[k] for k in keys if k in config}

    def _epsilon(self, model_output: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
        """The model's prediction as noise (RePaint's steps take epsilon): v and x_0 predictions converted."""
        kind = self.scheduler.config.get("prediction_type", "epsilon")
        if kind == "epsilon":
            return model_output
        alpha_bar = self.scheduler.alphas_cumprod.to(x.device)[t].to(x.dtype)
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        if kind == "v_prediction":  # v = a eps - s x0 and x = a x0 + s eps  =>  eps = a v + s x
            return a * model_output + s * x
        return (x - a * model_output) / s  # "sample": the model predicts x0

    @property
    def sample_size(self) -> int:
        """The side of the square images the UNet makes."""
        size = self.unet.config.sample_size
        return size if isinstance(size, int) else size[0]

    def _postprocess(self, x: torch.Tensor, output_type: str):
        image = (x / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            return image
        image = image.float().cpu().permute(0, 2, 3, 1).numpy()
        return image if output_type == "np" else self.numpy_to_pil(image)


# ---- unconditional: saved as a stock DDPMPipeline -------------------------------------------------------------------
class GenkitDDPMPipeline(DenoisingLoopMixin, DDPMPipeline, GenkitPipeline):
    """diffusers' ``DDPMPipeline`` plus a scheduler swap, ``eta``, intermediate ``x_t`` and a step callback.

    ``save_pretrained`` writes a stock ``DDPMPipeline`` folder, and ``from_pretrained`` checks the folder (no pickle,
    valid configs) before diffusers reads it.
    """

    def predict(self, sample, timestep, class_labels=None, guidance_scale=None):
        return self.unet(sample, timestep).sample

    def save_pretrained(self, save_directory, **kwargs):
        """Save as diffusers' own ``DDPMPipeline`` (``model_index.json`` names it), loadable without genkit."""
        DDPMPipeline(unet=self.unet, scheduler=self.scheduler).save_pretrained(save_directory, **kwargs)


# ---- class-conditional with classifier-free guidance ----------------------------------------------------------------
class ClassConditionalDDPMPipeline(DenoisingLoopMixin, GenkitPipeline):
    """A DDPM whose ``UNet2DModel`` embeds a class label (``num_class_embeds = num_classes + 1``).

    The last class embedding is the null class that training substitutes for a fraction of the labels (label
    dropout); sampling mixes conditional and null-class predictions with ``guidance_scale`` (classifier-free
    guidance). The folder has the stock layout (``unet/``, ``scheduler/``); ``model_index.json`` names this class.
    """

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, id2label: dict[str, str] | None = None):
        super().__init__()
        if not unet.config.num_class_embeds or unet.config.num_class_embeds < 2:
            raise ValueError(
                "a class-conditional DDPM needs a UNet2DModel with num_class_embeds = number of classes + 1 (the last "
                f"embedding is the null class); got num_class_embeds={unet.config.num_class_embeds}"
            )
        self.register_modules(unet=unet, scheduler=scheduler)
        # JSON keys are strings: {"0": "circle", ...}, like DiTPipeline's id2label.
        self.register_to_config(id2label={str(k): v for k, v in id2label.items()} if id2label else None)

    @property
    def num_classes(self) -> int:
        return self.unet.config.num_class_embeds - 1

    @property
    def null_class(self) -> int:
        """The class id that means "no label" (the unconditional model)."""
        return self.unet.config.num_class_embeds - 1

    @property
    def class_names(self) -> list[str]:
        id2label = self.config.get("id2label") or {}
        return [id2label.get(str(i), str(i)) for i in range(self.num_classes)]

    def label_id(self, label: int | str) -> int:
        """A class id from an id or a class name."""
        if isinstance(label, str) and not label.lstrip("-").isdigit():
            if label not in self.class_names:
                raise ValueError(f"unknown class {label!r}; classes: {', '.join(self.class_names)}")
            return self.class_names.index(label)
        label = int(label)
        if not 0 <= label < self.num_classes:
            raise ValueError(f"class id {label} out of range 0..{self.num_classes - 1}")
        return label

    def _check_conditioning(self, class_labels, guidance_scale, batch_size: int) -> None:
        if class_labels is None:
            raise ValueError(f"this DDPM is class-conditional: pass class_labels (ids in 0..{self.num_classes - 1})")
        self._labels(class_labels, batch_size)
        if guidance_scale is not None and guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")

    def _labels(self, class_labels, batch_size: int) -> torch.Tensor:
        if isinstance(class_labels, torch.Tensor):
            class_labels = class_labels.reshape(-1).tolist()
        elif isinstance(class_labels, (int, str)):
            class_labels = [class_labels]
        ids = [self.label_id(c) for c in class_labels]
        if len(ids) == 1:
            ids = ids * batch_size
        if len(ids) != batch_size:
            raise ValueError(f"class_labels must hold 1 or batch_size={batch_size} labels, got {len(ids)}")
        return torch.tensor(ids, dtype=torch.long, device=self._execution_device)

    def predict(self, sample, timestep, class_labels=None, guidance_scale=None):
        """Classifier-free guidance: eps_uncond + w * (eps_cond - eps_uncond), w = ``guidance_scale`` (default 1).

        w = 1 returns the conditional prediction itself and w = 0 the null-class one (one UNet pass each); any other
        w runs both in one batch of 2N.
        """
        w = 1.0 if guidance_scale is None else float(guidance_scale)
        if w == 1.0:
            return self.unet(sample, timestep, class_labels=class_labels).sample
        null = torch.full_like(class_labels, self.null_class)
        if w == 0.0:
            return self.unet(sample, timestep, class_labels=null).sample
        both = self.unet(torch.cat([sample, sample]), timestep, class_labels=torch.cat([class_labels, null])).sample
        cond, uncond = both.chunk(2)
        return uncond + w * (cond - uncond)
