"""The figures a trial drew into TensorBoard (``samples/real_vs_fake``, ``latents/learned_vs_true``),
read back from its folder's event files as PNG images, each at its epoch."""

from __future__ import annotations

import logging
from pathlib import Path

from ._base import Figure


def read_figures(folder: Path) -> list[Figure]:
    """Every image summary in the event files of ``folder`` (not its subfolders), by tag and epoch;
    the last one written at a tag and epoch wins (a trial restarted from a checkpoint draws again)."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.glob("events.out.tfevents*")):
        return []
    from tensorboard.backend.event_processing import event_accumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    # every writer's file as it is: a figure drawn by another process than the one before it is no
    # "orphan" of a restart (TensorBoard would drop the later steps of the file read first)
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.IMAGES: 0,
                                             event_accumulator.SCALARS: 1, event_accumulator.TENSORS: 1},
                                             purge_orphaned_data=False)
    acc.Reload()
    out: dict[tuple[str, int], Figure] = {}
    for tag in acc.Tags().get(event_accumulator.IMAGES, []):
        for image in acc.Images(tag):
            out[(tag, int(image.step))] = Figure(tag, int(image.step), bytes(image.encoded_image_string))
    return [out[k] for k in sorted(out)]
