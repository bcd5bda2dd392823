"""Model selection on validation data: keep the weights of the best validation score (never the test set)."""

import math
from collections.abc import Callable

import torch


class BestOnValidation:
    """The best validation value so far, where it was reached, and the model weights that reached it.

    Register it with ``accelerator.register_for_checkpointing`` so a resumed run restores the exact weights
    it would ship. Selection is on validation data only, never on the test set.

    Parameters
    ----------
    mode : {"min", "max"}
        Whether a lower value (a loss) or a higher value (an accuracy) is better.

    Attributes
    ----------
    value : float
        Best value so far (``inf`` or ``-inf`` before the first update).
    step, epoch : int
        Optimizer step and (1-based) epoch of the best value (-1 before the first update).
    weights : dict of str to torch.Tensor
        CPU copy of the state dict at the best value (empty before the first update).
    """

    def __init__(self, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget the best value (e.g. before the next cross-validation fold)."""
        self.value = math.inf if self.mode == "min" else -math.inf
        self.step = self.epoch = -1
        self.weights: dict = {}

    def update(self, value: float, step: int, epoch: int, state: Callable[[], dict]) -> bool:
        """Record ``value`` reached at ``step`` / ``epoch`` if it is strictly better; return whether it was.

        ``state()`` gives the weights to keep (called only on an improvement); they are copied to the CPU.
        """
        better = value < self.value if self.mode == "min" else value > self.value
        if not better:
            return False
        self.value, self.step, self.epoch = value, step, epoch
        self.weights = {key: tensor.detach().cpu().clone() for key, tensor in state().items()}
        return True

    def state_dict(self) -> dict:
        return {
            "value": torch.tensor(self.value, dtype=torch.float64),
            "step": torch.tensor(self.step),
            "epoch": torch.tensor(self.epoch),
            "weights": self.weights,
        }

    def load_state_dict(self, state: dict) -> None:
        self.value, self.weights = float(state["value"]), dict(state["weights"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
