"""An energy head's normaliser: log Z_theta(t) on the grid (diffusion.likelihood.log_z_grid)."""

import math

import pytest
import torch

from diffusion.likelihood import BOX_HALF, log_z_grid
from diffusion.models import DiffusionModel
from diffusion.nets import MLP2D, MLPConfig
from diffusion.schedules import make_schedule
from toy_data import get_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


class ExactHead:
    """An "energy head" whose energy is the exact -log p_t of a mixture: its Z over the box is the box's mass."""

    def __init__(self, dist, schedule, shift: float = 0.0):
        self.dist, self.schedule, self.shift = dist, schedule, shift

    def energy(self, x, t, label=None):
        a, s = (float(v) for v in self.schedule.alpha_sigma(float(t)))
        return -self.dist.log_prob(x.double(), a, s, label) + self.shift


def box_mass(dist, alpha: float, sigma: float, half: float) -> float:
    """The exact mass of p_t in [-half, half]^2: each isotropic component's is a product of 1-D normal masses."""
    std = torch.sqrt(alpha**2 * dist.stds**2 + sigma**2)[:, None]  # [K, 1]
    mean = alpha * dist.means  # [K, 2]
    phi = lambda z: 0.5 * torch.erfc(-z / math.sqrt(2))  # noqa: E731
    per_axis = phi((half - mean) / std) - phi((-half - mean) / std)
    return float((dist.weights * per_axis.prod(-1)).sum())


def random_head(seed=0):
    torch.manual_seed(seed)
    net = MLP2D(MLPConfig(width=64, depth=2, scalar_out=True))
    return DiffusionModel(net, "energy", make_schedule("cosine"), 0).eval()


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
@pytest.mark.parametrize("t", [0.05, 0.3, 0.6])
def test_exact_head_log_z_is_the_log_of_the_box_mass(name, t):
    dist, schedule = get_dataset(name), make_schedule("cosine")
    a, s = (float(v) for v in schedule.alpha_sigma(t))
    want = math.log(box_mass(dist, a, s, BOX_HALF))
    assert abs(want) < 0.02  # the standardised sets keep nearly all their mass in [-3, 3]^2
    got = log_z_grid(ExactHead(dist, schedule), t, n=256)
    # The midpoint rule on a smooth integrand: the error of n = 256 is about a quarter of the change from n = 128
    # (error c h^2), so bound it by that change; 1e-6 covers float32 points fed to a float64 energy.
    step = abs(log_z_grid(ExactHead(dist, schedule), t, n=128) - got)
    assert abs(got - want) <= step + 1e-6


def test_a_constant_in_the_energy_moves_log_z_by_minus_that_constant():
    dist, schedule = get_dataset("moons"), make_schedule("cosine")
    base = log_z_grid(ExactHead(dist, schedule), 0.3, n=64)
    shifted = log_z_grid(ExactHead(dist, schedule, shift=250.0), 0.3, n=64)  # e^-250 per cell: no underflow
    assert shifted == pytest.approx(base - 250.0, abs=1e-9)  # float64 round-off on numbers of size 250


@pytest.mark.parametrize("t", [0.05, 0.6])
def test_log_z_of_a_network_converges_as_the_grid_grows(t):
    model = random_head()
    # From n = 16 the cells (0.375 wide) are finer than the bump of e^-E a random net makes at t = 0.05,
    # where the energy head's output scale 1 / sigma(t) makes that bump narrow.
    ns = [16, 32, 64, 128, 256]
    est = [log_z_grid(model, t, n=n) for n in ns]
    steps = [abs(b - a) for a, b in zip(est, est[1:])]
    assert all(b < a for a, b in zip(steps, steps[1:])), steps  # successive differences shrink
    # The midpoint rule's error is c h^2 + O(h^4) (and faster for a smooth bump well inside the box): once h
    # is small each halving of h cuts the step by 4 or more. We ask for more than 2 from n = 32 on, which an
    # O(h) method (or a wrong cell area) would not give.
    assert all(a / b > 2.0 for a, b in zip(steps[1:], steps[2:])), steps
    # and it lands near a fine reference grid, within the last step's size (the error bound above)
    fine = log_z_grid(model, t, n=512)
    assert abs(est[-1] - fine) <= steps[-1]


def test_log_z_grid_accepts_a_rescheduled_energy_head_and_rejects_a_bad_grid():
    from diffusion.models import reschedule
    model = random_head()
    moved = reschedule(model, make_schedule("linear"))
    assert math.isfinite(log_z_grid(moved, 0.3, n=16))
    with pytest.raises(ValueError, match="n must be >= 1"):
        log_z_grid(model, 0.3, n=0)
    with pytest.raises(ValueError, match="only an energy head"):
        log_z_grid(DiffusionModel(MLP2D(MLPConfig(width=16, depth=1)), "v", make_schedule("cosine"), 0), 0.3)


def test_training_records_log_z_every_max_25_or_a_fortieth_of_the_steps():
    from diffusion.likelihood import LOG_Z_TIMES
    from diffusion.train import log_z_every, log_z_recorder

    assert (log_z_every(100), log_z_every(1000), log_z_every(4000), log_z_every(4010)) == (25, 25, 100, 100)
    model = random_head()
    history, record = log_z_recorder(110)
    for step in range(1, 111):
        record({"step": step, "loss": 0.0, "snapshot": lambda: model})
    assert history["steps"] == [25, 50, 75, 100, 110]  # and the last step
    assert history["t"] == list(LOG_Z_TIMES)
    want = [log_z_grid(model, t) for t in LOG_Z_TIMES]
    for row in history["log_z"]:
        assert row == pytest.approx(want, abs=1e-6)  # stored rounded to 6 decimals
