"""Lightning's options mean what a Lightning user expects under every config: the limits, the sanity check, the
validation interval, max_steps and the logged step count image batches and optimizer steps, with step groups on
(the configs' data.steps_per_execution) and off alike."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
from helpers import CONFIGS

from torchae.cli import AutoencoderCLI
from torchae.data import BatchGroup


class CountImageBatches(pl.Callback):
    """Counts the image batches Lightning's loops hand the model, per stage, and the validation runs."""

    def __init__(self) -> None:
        self.seen = {"train": 0, "val": 0, "sanity": 0}
        self.validations = 0
        self.largest_group = 0

    @staticmethod
    def _count(batch) -> int:
        return len(batch) if isinstance(batch, BatchGroup) else 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen["train"] += self._count(batch)
        self.largest_group = max(self.largest_group, self._count(batch))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen["sanity" if trainer.sanity_checking else "val"] += self._count(batch)

    def on_validation_end(self, trainer, pl_module):
        self.validations += not trainer.sanity_checking


def fit(tmp_path: Path, groups: int, *options: str, config: str = "dense") -> tuple[pl.Trainer, CountImageBatches]:
    args = ["--config", str(CONFIGS / f"{config}.yaml"), "--data.steps_per_execution", str(groups)]
    args += ["--data.train_size", "4096", "--data.val_size", "2048", "--trainer.default_root_dir", str(tmp_path)]
    args += ["--trainer.enable_progress_bar", "false", "--figures.enabled", "false", "--engine.compiled_steps", "false"]
    cli = AutoencoderCLI(args=[*args, *options], run=False)
    counter = CountImageBatches()
    cli.trainer.callbacks.append(counter)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli.trainer, counter


def logged_steps(trainer: pl.Trainer) -> list[str]:
    with open(Path(trainer.log_dir) / "metrics.csv") as file:
        return [row["step"] for row in csv.DictReader(file)]


@pytest.mark.parametrize(
    ("options", "train", "val", "sanity", "validations", "global_step"),
    [
        # 4,096 images at batch 256: 16 batches an epoch; 2,048 validation images: 8 batches
        (["--trainer.max_epochs", "2"], 32, 16, 2, 2, 32),
        (
            ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "3"],
            10,
            6,
            2,
            2,
            10,
        ),
        (["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"], 1, 8, 2, 1, 1),
        (["--trainer.max_epochs", "1", "--trainer.num_sanity_val_steps", "5"], 16, 8, 5, 1, 16),
        (["--trainer.max_epochs", "1", "--trainer.num_sanity_val_steps", "0"], 16, 8, 0, 1, 16),
        (["--trainer.max_epochs", "3", "--trainer.max_steps", "7"], 7, 0, 2, 0, 7),  # stops before validating
        (["--trainer.max_epochs", "1", "--trainer.val_check_interval", "4"], 16, 32, 2, 4, 16),
        (["--trainer.max_epochs", "1", "--trainer.val_check_interval", "0.5"], 16, 16, 2, 2, 16),
        (["--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0.25"], 16, 2, 2, 1, 16),
    ],
    ids=["defaults", "limits", "one-batch", "sanity-5", "sanity-0", "max-steps", "val-every-4", "val-half", "val-25%"],
)
def test_lightnings_options_count_image_batches_and_optimizer_steps(
    tmp_path, options, train, val, sanity, validations, global_step
):
    runs = {}
    for groups in (1, 32):
        trainer, counter = fit(tmp_path / f"groups-{groups}", groups, *options)
        assert counter.seen == {"train": train, "val": val, "sanity": sanity}, (groups, counter.seen)
        assert counter.validations == validations and trainer.global_step == global_step, groups
        counting = {"--trainer.limit_train_batches", "--trainer.max_steps", "--trainer.val_check_interval"}
        assert counter.largest_group == (16 if groups > 1 and not counting & set(options) else 1)  # groups, if exact
        runs[groups] = trainer
    assert logged_steps(runs[32]) == logged_steps(runs[1])  # metrics.csv's step: optimizer steps, as without groups
    names = [
        sorted(path.name for path in Path(trainer.log_dir, "checkpoints").glob("epoch=*")) for trainer in runs.values()
    ]
    assert names[0] == names[1] and f"step={global_step}.ckpt" in names[0][-1]


def test_a_turned_off_step_group_says_why_once(tmp_path, monkeypatch):
    import torchae.data

    said: list[str] = []
    monkeypatch.setattr(torchae.data.batches, "rank_zero_info", said.append)
    fit(tmp_path, 32, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3")
    assert said == [
        "torchae: data.steps_per_execution 32 is off for train: trainer.limit_train_batches counts image batches and "
        "optimizer steps: plain batches"
    ]


def test_the_progress_bar_counts_image_batches_and_shows_no_logger_version(tmp_path):
    """The bar's metrics hold the losses but not the logger's ``v_num`` (the run's folder names the version)."""
    from pytorch_lightning.loggers import CSVLogger

    import torchae
    from torchae.progress import ImageBatchProgressBar

    bar = ImageBatchProgressBar()
    data = torchae.MNISTDataModule(batch_size=32, train_size=64, val_size=32, seed=0, steps_per_execution=2)
    trainer = pl.Trainer(max_epochs=1, callbacks=[bar], logger=CSVLogger(tmp_path, name=""), enable_model_summary=False)
    model = torchae.DenseAE(code_dim=4)
    trainer.fit(model, datamodule=data)
    shown = bar.get_metrics(trainer, model)
    assert "train_loss" in shown and "v_num" not in shown
    assert bar.total_train_batches == 2  # image batches, not the one step group
