"""The frozen reference's log-probabilities: one float32 blob, written once, reused forever.

The blob is a safetensors file with ``train`` [N, 2] and ``test`` [M, 2]: per pair, the
reference's sequence log-probability of the chosen and of the rejected completion. float32 is
what the backend's log-probabilities are, so storing them loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitchen.ports import BlobRef
from kitchen.stage_api import ArtifactRecord, RunState

if TYPE_CHECKING:  # pragma: no cover
    import torch

KIND = "reference_logprobs"
FILE = "logprobs.safetensors"  # at artifacts/reference_logprobs/ in the run folder


@dataclass(frozen=True)
class Reference:
    train: torch.Tensor  # [pairs, 2] float32
    test: torch.Tensor  # [held-out pairs, 2] float32

    def shape_matches(self, train_pairs: int, test_pairs: int) -> bool:
        return tuple(self.train.shape) == (train_pairs, 2) and tuple(self.test.shape) == (
            test_pairs,
            2,
        )


def encode(ref: Reference) -> bytes:
    from safetensors.torch import save

    tensors = {"train": ref.train.float().contiguous(), "test": ref.test.float().contiguous()}
    # One metadata key: safetensors writes its metadata map in no fixed order.
    return save(tensors, metadata={"columns": "chosen,rejected"})


def decode(data: bytes) -> Reference:
    from safetensors.torch import load

    tensors = load(data)
    return Reference(tensors["train"], tensors["test"])


def on_record(state: RunState) -> ArtifactRecord | None:
    """The newest reference record, superseded or not (a resume without a checkpoint marks
    every earlier event superseded, but the reference it recorded is still the reference)."""
    found = [a for a in state.artifacts if a.kind == KIND and not a.deleted]
    return found[-1] if found else None


def blob_ref(record: ArtifactRecord) -> BlobRef:
    return BlobRef(record.uri, record.sha256, record.bytes)
