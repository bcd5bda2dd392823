import torch

from ttdnet.stages.selection import BestOnValidation


def test_best_on_validation_min_and_max():
    model = torch.nn.Linear(2, 1)
    lowest = BestOnValidation("min")
    assert lowest.update(0.5, 10, 1, model.state_dict) and not lowest.update(0.5, 20, 2, model.state_dict)
    assert lowest.update(0.4, 30, 3, model.state_dict)
    assert (lowest.value, lowest.step, lowest.epoch) == (0.4, 30, 3)
    with torch.no_grad():
        model.weight.fill_(7.0)
    assert not lowest.update(0.9, 40, 4, model.state_dict) and not torch.equal(lowest.weights["weight"], model.weight)
    highest = BestOnValidation("max")
    assert highest.update(0.1, 5, 1, model.state_dict) and not highest.update(0.05, 6, 2, model.state_dict)
    restored = BestOnValidation("max")
    restored.load_state_dict(highest.state_dict())
    assert (restored.value, restored.step, restored.epoch) == (0.1, 5, 1)
    assert torch.equal(restored.weights["weight"], model.weight)
    highest.reset()
    assert highest.value == float("-inf") and highest.weights == {} and highest.step == -1
