"""Sample grids (unconditional, and completions of the lower half of test images, as in the
paper's Figures 3 and 4) from a trained checkpoint, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from linattn.config import MODES
from linattn.weights import load_checkpoint

from .train import load_bytes


def grid(images, columns=8):
    """(N, h, w, c) uint8 -> one (rows*h, columns*w, c) image with 1-pixel gaps."""
    n, h, w, c = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = img
    return out


def save_png(path, image):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = image[..., 0] if image.shape[-1] == 1 else image
    plt.imsave(path, img, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255,
               metadata={"Software": None})


def make_samples(task: dict) -> dict:
    """task: checkpoint, out_dir, images, completions, seed, dataset, data_dir. Uses the torch backend."""
    from linattn import torch_backend as tb

    config, params = load_checkpoint(task["checkpoint"])
    model = tb.prepare(config, params)
    mode = next(m for m, a in MODES.items() if a == config.attention and m != "softmax-uncached")
    rng = np.random.default_rng(task.get("seed", 0))
    T, shape = config.seq_len, config.image_shape
    out = Path(task["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    uncond = tb.generate(model, mode, rng.random((task["images"], T, 2))).reshape((-1,) + shape)
    test = load_bytes(task["dataset"], "test", task.get("data_dir"), n=task["completions"], image_shape=shape)
    half = T // 2
    completed = tb.generate(model, mode, rng.random((len(test), T, 2)), prefix=test[:, :half]).reshape((-1,) + shape)
    occluded = test.copy()
    occluded[:, half:] = 0
    files = {"unconditional": out / f"samples-{config.attention}.png", "completions": out / f"completions-{config.attention}.png"}
    save_png(files["unconditional"], grid(uncond))
    rows = np.concatenate([occluded.reshape((-1,) + shape), completed, test.reshape((-1,) + shape)])
    save_png(files["completions"], grid(rows, columns=len(test)))
    np.save(out / f"samples-{config.attention}.npy", uncond)
    return {"attention": config.attention, "mode": mode, "files": {k: str(v) for k, v in files.items()},
            "n_images": len(uncond), "n_completions": len(test)}
