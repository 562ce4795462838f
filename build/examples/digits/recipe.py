"""Recipe ``digits``: a small CNN on scikit-learn's bundled 8x8 digits, trained offline.

The images are served as uint8 (0..255), as a camera would deliver them; the training data are
scaled to that range once, and the very ``preprocess`` the served model uses feeds the network.
The recipe writes what any training pipeline would hand over: the network as a torch.export
archive with a dynamic batch axis (``digits_cnn.pt2``) and held-out samples for each stage
(``images.npz`` raw uint8, ``pixels.npz`` preprocessed, ``logits.npz`` network outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from triton_deploy.build.examples.digits.digits_features import preprocess
from triton_deploy.build.recipes import RecipeResult

__all__ = ["DigitsCNN", "DigitsSplits", "fit", "load_splits", "train"]


@dataclass(frozen=True)
class DigitsSplits:
    train_images: np.ndarray  # uint8 [N, 8, 8]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray
    test_labels: np.ndarray


def load_splits(seed: int = 0, test_fraction: float = 0.2) -> DigitsSplits:
    """The bundled digits data as uint8 images, split with a seeded, stratified shuffle."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = np.round(data.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return DigitsSplits(x_train, y_train, x_test, y_test)


class DigitsCNN(nn.Module):
    """[N, 1, 8, 8] float -> [N, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def train(out: Path, seed: int = 0, epochs: int = 15) -> RecipeResult:
    """Train the CNN and write ``digits_cnn.pt2`` and the held-out samples into ``out``."""
    model, splits = fit(seed, epochs)
    pixels = preprocess(splits.test_images)
    example = torch.from_numpy(pixels[:2])
    batch = torch.export.Dim("batch", min=1)
    exported = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(exported, str(out / "digits_cnn.pt2"))
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels)).numpy()
    np.savez(out / "images.npz", IMAGES=splits.test_images)
    np.savez(out / "pixels.npz", images=pixels)
    np.savez(out / "logits.npz", logits=logits)
    accuracy = float((logits.argmax(axis=1) == splits.test_labels).mean())
    return RecipeResult(metrics={"heldout_accuracy": accuracy})


def fit(seed: int = 0, epochs: int = 15, batch_size: int = 64) -> tuple[DigitsCNN, DigitsSplits]:
    """Train the CNN; deterministic for a seed (single-threaded, seeded torch and shuffles)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    splits = load_splits(seed)
    x = torch.from_numpy(preprocess(splits.train_images))
    y = torch.from_numpy(splits.train_labels)
    model = DigitsCNN()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=3e-3, total_steps=epochs * ((len(x) + batch_size - 1) // batch_size)
    )
    loss_fn = nn.CrossEntropyLoss()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit repeatable training
    try:
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                index = order[start : start + batch_size]
                images = x[index]
                # Light augmentation: one-pixel shifts, so the model does not memorise positions.
                shift = int(torch.randint(-1, 2, (1,), generator=generator))
                images = torch.roll(images, shifts=shift, dims=3)
                optimiser.zero_grad()
                loss = loss_fn(model(images), y[index])
                loss.backward()
                optimiser.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), splits
