"""The image model: a UNet behind the same DiffusionModel, losses, samplers and checkpoints as 2-D."""

import json
import struct

import pytest
import torch

from diffusion.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from diffusion.models import DiffusionModel
from diffusion.samplers import guided, prior_sample, sample
from diffusion.schedules import make_schedule
from diffusion.training import TrainConfig, train
from diffusion.unet import UNet, UNetConfig
from toy_data.mnist import mnist_sampler


def _model(parameterization="v", seed=0, **cfg):
    torch.manual_seed(seed)
    net = UNet(UNetConfig(num_classes=10, base=8, **cfg))
    for p in net.parameters():  # the output convs start at zero; give them weights so outputs differ
        if p.dim() > 1 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return DiffusionModel(net, parameterization, make_schedule("cosine"), 10)


def test_output_shape_matches_the_image_for_every_parameterization():
    x = torch.randn(3, 1, 28, 28)
    for kind in ("eps", "x0", "v", "score", "flow"):
        assert _model(kind)(x, 0.5, torch.tensor([0, 5, -1])).shape == x.shape
    energy = _model("energy", scalar_out=True)
    assert energy.energy(x, 0.5).shape == (3,)
    assert energy.score(x, 0.5).shape == x.shape


def test_labels_condition_the_output():
    model = _model()
    x = torch.randn(1, 1, 28, 28).expand(10, -1, -1, -1)
    out = model(x, 0.4, torch.arange(10))
    assert torch.stack([(out[i] - out[0]).abs().max() for i in range(1, 10)]).min() > 1e-4
    assert not torch.allclose(model(x[:1], 0.4, None), model(x[:1], 0.4, 3))


def test_guidance_weight_zero_is_conditional_sampling():
    model = _model()
    g = torch.Generator().manual_seed(0)
    x = prior_sample(model.schedule, (4, 1, 28, 28), generator=g)
    with torch.no_grad():
        a = sample(guided(model, 7, 0.0), x, model.schedule, "heun", 3)
        b = sample(lambda x, t: model(x, t, 7), x, model.schedule, "heun", 3)
        c = sample(guided(model, 7, 2.0), x, model.schedule, "heun", 3)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_one_training_step_on_mnist_changes_the_weights():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, mnist_sampler("train"), TrainConfig(steps=1, batch_size=4, device="cpu"))
    assert result.steps_done == 1 and result.stopped == "" and torch.isfinite(torch.tensor(result.losses)).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_checkpoint_round_trip_reproduces_outputs(tmp_path):
    model = _model().eval()
    path = tmp_path / "unet.safetensors"
    save_checkpoint(path, model, dataset="mnist")
    loaded, config = load_checkpoint(path, expect={"net.arch": "unet"})
    assert config["net"]["mults"] == [1, 2, 2]
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x, 0.3, 4), loaded(x, 0.3, 4))


@pytest.mark.parametrize("mults", [[1000], [], [1, 2, 2, 2, 2, 2, 2], [1.5], "12"])
def test_hostile_channel_multipliers_are_refused_before_building(tmp_path, mults):
    path = tmp_path / "bad.safetensors"
    save_checkpoint(path, _model(), dataset="mnist")
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    config = json.loads(header["__metadata__"]["config"])
    config["net"]["mults"] = mults
    header["__metadata__"]["config"] = json.dumps(config)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])
    with pytest.raises(CheckpointError, match="mults"):
        load_checkpoint(path)


def test_image_size_must_fit_the_resolutions():
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(size=30, mults=(1, 2, 2))
