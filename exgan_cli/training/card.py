"""The model card (README.md) of an exported generator: what it is, how it was trained, how well."""

from __future__ import annotations

from pathlib import Path

from exgan_cli.model.weights import model_card as weights_card
from exgan_cli.training.config import TrainConfig


def _fmt_duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def model_card(cfg: TrainConfig, meta: dict, commands: list[str], extra: str = "") -> str:
    """The README.md of an exported model: what it is, how it was trained, how well. The front
    matter and the path rule (no absolute paths of the training machine) are weights.model_card's."""
    m = cfg.model
    data = meta.get("data", {})
    val = meta.get("val_l1")
    val_txt = f"{val:.4f} (pixels in [-1, 1]; {val * 127.5:.2f} in 0..255)" if val is not None else "n/a (no validation persons)"
    cmd_lines = "\n".join(commands) if commands else "(not recorded)"
    mode_txt = {
        "reference": (
            "reference mode: G sees the same person's open eyes, each relit to this face's skin and warped "
            "onto this face's eye by the eye corners (exemplar.py)"
            + ("; warp model: G also outputs, per pixel, a displacement that bends those eyes further and a "
               "blend weight between them and its own pixels, and open-eyes applies that field to the reference "
               "photo at full resolution (stages/warp.py)" if m.warp else "")
            if m.ref_input == "eyes" else "reference mode: G sees an aligned photo of the same person with open eyes"
        ),
        "code": "code mode: G sees a code of the reference's eyes from the eye encoder C (exported with it)",
        "none": "no exemplar: the baseline in-painter",
    }[m.mode]
    lines = [
        f"# ExGAN {m.mode} model, {m.resolution} px",
        "",
        "An Exemplar GAN (Dolhansky & Canton Ferrer, CVPR 2018) generator that in-paints the eye "
        f"regions of an aligned {m.resolution} x {m.resolution} face; {mode_txt}. "
        "Use it with `exgan open-eyes PHOTO --ref REF --weights THIS_FOLDER`.",
        "",
        "## Training",
        "",
        "```",
        cmd_lines,
        "```",
        "",
        # names only: the absolute paths are the training machine's, of no use to a reader
        f"- data: `{Path(cfg.data or data.get('data_dir') or '?').name}` (aligned-face cache `{Path(meta.get('cache', '?')).name}`): "
        f"{data.get('photos', '?')} photos, "
        f"{data.get('faces', '?')} faces found, {data.get('closed', '?')} closed and {data.get('squinting', '?')} "
        f"squinting (min EAR {cfg.min_ear}) left out; {data.get('train_faces', '?')} training faces of "
        f"{data.get('train_persons', '?')} persons",
        f"- validation: {data.get('val_persons', '?')} person(s) held out ({data.get('val_faces', '?')} faces); "
        f"masked L1 of the EMA generator on {'up to ' + str(cfg.val_max) if cfg.val_max else 'all'} pairs, "
        f"deterministic eye masks: {val_txt}",
        f"- steps: {meta.get('step')} at batch {cfg.batch_size} x {meta.get('world_size', 1)} process(es); "
        f"images seen: {meta.get('images_seen')}",
        f"- wall time: {_fmt_duration(float(meta.get('wall_time', 0)))}",
        f"- hardware: {'; '.join(dict.fromkeys(meta.get('hardware', []))) or '?'}",
        f"- optimiser: Adam lr G {cfg.lr}, D {cfg.d_lr}, betas {tuple(cfg.betas)}; EMA decay {cfg.ema_decay}"
        + (f"; the warp head at {cfg.warp_lr_mult:g}x G's rate" if m.warp and cfg.warp_lr_mult != 1.0 else ""),
        f"- losses: masked L1 x {m.l1_weight} + {m.adversarial} adversarial x {m.adversarial_weight}"
        + (f" + code x {m.code_weight} + eye auto-encoder x {cfg.ae_weight}" if m.mode == "code" else "")
        + (f" + the moved reference's L1 to the real eyes x {m.warp_align} + displacement smoothness x {m.warp_smooth} "
           + (f"+ an undecided blend weight's w(1 - w) x {m.warp_decisive} " if m.warp_decisive else "")
           + f"(displacement at most {m.warp_max:g} px; blend weight starting at sigmoid({m.warp_bias:g}))" if m.warp else ""),
        f"- networks: base channels {m.base_channels}, {m.n_blocks} dilated blocks, D channels {m.d_channels}"
        + (f", code {m.code_dim}" if m.mode == "code" else ""),
        (f"- exemplar design: reference input {m.ref_input!r}, " if m.mode == "reference" else "- design: ")
        + (f"relit to the target's cheeks: {m.relight}, " if m.mode != "none" else "")
        + f"G skips: {m.skips}; iris L1 x {m.iris_weight}; augmentations: one random iris colour painted into target and "
        f"reference on {cfg.augment_iris:.0%} of the pairs, independent colour casts on {cfg.augment_cast:.0%}"
        + (f", the target itself as the reference (moved, softened) on {cfg.augment_self:.0%}" if cfg.augment_self else ""),
        f"- started from: `{cfg.init}` (its generator{' and eye encoder' if m.mode == 'code' else ''}; new tensors at their init)"
        if cfg.init else "- started from: random initialisation",
        f"- validation persons: `{cfg.val_persons}`" + (f"; never trained on: `{cfg.exclude_persons}`" if cfg.exclude_persons else "")
        if cfg.val_persons else f"- validation split: {cfg.split}, seed {cfg.seed}, {cfg.val_fraction:.0%} of the persons",
        f"- torch {meta.get('torch', '?')}",
        "",
        "The weights are the exponential moving average of the generator"
        + (" and of the eye encoder" if m.mode == "code" else "")
        + "; `config.json` carries the alignment and eye-mask settings the model was trained with.",
        "",
        "## Limitations",
        "",
        "Trained on aligned, roughly frontal faces; expect poor results on profiles, sunglasses and "
        "faces much smaller than the model's resolution. It paints plausible eyes for the person, not "
        "the eyes they had when the photo was taken.",
    ]
    if extra.strip():
        lines += ["", extra.strip()]
    return weights_card(cfg.model, "\n".join(lines), tags=["inpainting", "eyes", "faces"])
