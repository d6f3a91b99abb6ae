"""Run by test_performance.py: two CPU processes under Lightning's DDP (gloo); each rank writes the training
samples it saw per epoch, and the val_loss it logged, to OUT/rank<N>.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import torchae
from torchae.data import MNISTDataModule
from torchae.runs import quiet_trainer


class Recorder(torchae.DenseAE):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch.detach().clone()))
        return super().training_step(batch, batch_idx)


def main(out: Path) -> None:
    data = MNISTDataModule(batch_size=8, train_size=100, val_size=40, seed=3)
    model = Recorder()
    trainer = quiet_trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2)
    trainer.fit(model, datamodule=data)
    index = {data.train_images[i].numpy().tobytes(): i for i in range(data.train_images.shape[0])}
    per_epoch: dict[int, list[int]] = {}
    for epoch, batch in model.seen:
        per_epoch.setdefault(epoch, []).extend(index[image.numpy().tobytes()] for image in batch)
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()
    result = {"epochs": per_epoch, "val_loss": float(trainer.callback_metrics["val_loss"]), "weights": weights}
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
