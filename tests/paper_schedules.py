"""Reference learning rates written out from the paper's code and PyTorch's schedulers, never from tfrewind.

Sources: Le & Hua's NPTM ``norm-pruning/cifar/l1-norm-pruning/main_finetune.py`` (``--use_llr`` is
SLR, ``--use_onecycle`` 1-cycle), their ``torch_warmup_lr.WarmupLR`` and PyTorch's ``MultiStepLR``
and ``OneCycleLR`` as documented.
"""

from __future__ import annotations

import math


def anneal_cos(start: float, end: float, fraction: float) -> float:
    """PyTorch's cosine annealing (and WarmupLR's ``_warmup_cos``): ``start`` at 0, ``end`` at 1."""
    return end + (start - end) / 2 * (math.cos(math.pi * fraction) + 1)


def multistep_lr(epoch: int, lr: float, milestones: list[int], gamma: float = 0.1) -> float:
    """PyTorch ``MultiStepLR`` (closed form): ``lr × gamma^(milestones reached)``."""
    return lr * gamma ** sum(epoch >= m for m in milestones)


def nptm_slr_epoch_lrs(budget: int, init_lr: float, peak_lr: float, gamma: float = 0.1,
                       pct_start: float = 0.1) -> list[float]:
    """SLR as NPTM's ``main_finetune.py --use_llr`` runs it: the LR of each of ``budget`` epochs.

    The script sets ``num_warmup = int(pct_start·E)`` and ``schedule = [int(0.5·0.9·E), int(0.75·0.9·E)]``
    (×0.1 at 50 % and 75 % of the 90 % left after the warm-up), builds ``SGD(lr=peak)``, wraps
    ``MultiStepLR(schedule)`` in ``WarmupLR(init_lr, num_warmup, 'cos')``, steps it once before
    training and once after every epoch. WarmupLR only steps the wrapped MultiStepLR once its own
    warm-up is over, so the milestones count from the end of the warm-up. Simulated here step by step.
    """
    num_warmup = int(pct_start * budget)
    milestones = [int(0.5 * 0.9 * budget), int(0.75 * 0.9 * budget)]
    state = {"lr": peak_lr, "warm_count": 0, "multistep_epoch": 0}
    warm_from = min(init_lr, peak_lr)  # WarmupLR's warmup_initial_lr

    def step() -> None:
        if state["warm_count"] <= num_warmup:
            # NPTM divides by num_warmup (0 for E < 10, a ZeroDivisionError there): no warm-up is the peak
            fraction = state["warm_count"] / num_warmup if num_warmup else 1.0
            state["lr"] = anneal_cos(warm_from, peak_lr, fraction)
            state["warm_count"] += 1
        else:
            state["multistep_epoch"] += 1  # MultiStepLR.step(): last_epoch += 1, ×gamma at a milestone
            state["lr"] *= gamma ** milestones.count(state["multistep_epoch"])

    step()  # main_finetune.py: "set warm up learning rate" before the first epoch
    lrs = []
    for _ in range(budget):
        lrs.append(state["lr"])
        step()
    return lrs


def torch_one_cycle(step, total, max_lr, pct=0.1, div=100.0, final_div=100.0, lo=0.85, hi=0.95):
    """PyTorch OneCycleLR (cos, three_phase=False) written out from its documentation: (lr, momentum)."""
    initial, minimum = max_lr / div, max_lr / div / final_div
    end_up, end_down = pct * total - 1, total - 1
    if step <= end_up:
        fraction = step / end_up
        return anneal_cos(initial, max_lr, fraction), anneal_cos(hi, lo, fraction)
    fraction = (step - end_up) / (end_down - end_up)
    return anneal_cos(max_lr, minimum, fraction), anneal_cos(lo, hi, fraction)
