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
    """Unconditional samples and completions of the lower half of test images from one checkpoint,
    by one backend's recurrent form. task: backend (default torch), checkpoint, out_dir, images,
    completions (0: none), seed, dataset, data_dir. The noise and the test images depend on the seed
    alone, so every backend is given the same: their images can be compared byte for byte (the
    summary's parity table). Writes <attention>-<backend>-{unconditional,completions}.{png,npy}."""
    from linattn.backends import get_backend

    name = task.get("backend", "torch")
    backend = get_backend(name)
    if task.get("threads"):
        backend.set_threads(task["threads"])
    config, params = load_checkpoint(task["checkpoint"])
    model = backend.prepare(config, params)
    mode = next(m for m, a in MODES.items() if a == config.attention and m != "softmax-uncached")
    rng = np.random.default_rng(task.get("seed", 0))
    T, shape = config.seq_len, config.image_shape
    out = Path(task["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{config.attention}-{name}"
    uncond = np.asarray(backend.generate(model, mode, rng.random((task["images"], T, 2))), np.uint8).reshape((-1,) + shape)
    files = {"unconditional": f"{stem}-unconditional.png"}
    arrays = {"unconditional": f"{stem}-unconditional.npy"}
    save_png(files["unconditional"], grid(uncond))
    np.save(arrays["unconditional"], uncond)
    if task["completions"]:
        test = load_bytes(task["dataset"], "test", task.get("data_dir"), n=task["completions"], image_shape=shape)
        half = T // 2
        completed = np.asarray(backend.generate(model, mode, rng.random((len(test), T, 2)), prefix=test[:, :half]),
                               np.uint8).reshape((-1,) + shape)
        occluded = test.copy()
        occluded[:, half:] = 0
        rows = np.concatenate([occluded.reshape((-1,) + shape), completed, test.reshape((-1,) + shape)])
        files["completions"] = f"{stem}-completions.png"
        arrays["completions"] = f"{stem}-completions.npy"
        save_png(files["completions"], grid(rows, columns=len(test)))
        np.save(arrays["completions"], completed)
    return {"attention": config.attention, "backend": name, "mode": mode, "files": files, "arrays": arrays,
            "n_images": len(uncond), "n_completions": task["completions"], "checkpoint": str(task["checkpoint"])}


def parity(arrays_by_backend: dict) -> list[dict]:
    """For each backend, the share of its images (and bytes) equal to the first backend's, per kind
    (unconditional, completions): the same noise and prefixes, so a float32 backend differs only
    where a uniform falls within rounding distance of a bin edge (and the rest of that image then
    follows another path)."""
    names = list(arrays_by_backend)
    rows = []
    if not names:
        return rows
    base = names[0]
    for name in names[1:]:
        for kind, path in arrays_by_backend[name].items():
            if kind not in arrays_by_backend[base]:
                continue
            a, b = np.load(arrays_by_backend[base][kind]), np.load(path)
            same = (a == b).reshape(len(a), -1)
            rows.append({"backend": name, "against": base, "kind": kind, "images": len(a),
                         "equal_images": int(same.all(axis=1).sum()), "equal_bytes": float(same.mean())})
    return rows
