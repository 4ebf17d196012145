"""Train the MNIST classifier that `python -m diffusion.evaluate` uses to measure the digit models.

    python benchmarks/train_classifier.py [--epochs 2] [--threads 1] [--out checkpoints/mnist_classifier.safetensors]

Trains diffusion.classifier.MnistClassifier on the 60,000 training digits with light augmentation
(random rotation of up to 10 degrees, scale 0.9-1.1, shift of up to 2 pixels: generated digits are not
all centred like MNIST's), Adam with a one-cycle learning rate, then prints the accuracy on the 10,000
test digits and the training time, and stores both in the checkpoint's config, with the test digits'
feature statistics (the reference of the Frechet distance).
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion import cli  # noqa: E402
from diffusion.classifier import DEFAULT_PATH, MnistClassifier, save_classifier, reference_stats  # noqa: E402
from toy_data.mnist import load_mnist  # noqa: E402


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random rotation, scale and shift per image; the background (-1) stays -1."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(b, generator=g)
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * (2 / 14)  # 2 pixels in [-1, 1] grid units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    return (model.predict(x) == y).float().mean().item()


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks/train_classifier.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=cli.positive_int("--epochs", 1, 100), default=2)
    p.add_argument("--batch", type=cli.positive_int("--batch", 8, 4096), default=128)
    p.add_argument("--lr", type=cli.bounded_float("--lr", 1e-6, 1.0), default=3e-3)
    p.add_argument("--threads", type=cli.positive_int("--threads", 1, 256), default=1)
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--out", default=DEFAULT_PATH)
    args = p.parse_args(argv)
    cli.check_writable(args.out, ".safetensors")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    model = MnistClassifier()
    per_epoch = math.ceil(len(x_train) / args.batch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch,
                                                pct_start=0.15)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        total, correct, seen = 0.0, 0, 0
        for i in range(per_epoch):
            idx = order[i * args.batch:(i + 1) * args.batch]
            xb, yb = x_train[idx], y_train[idx]
            if not args.no_augment:
                xb = augment(xb, g)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
            if (i + 1) % 100 == 0:
                print(f"epoch {epoch + 1} batch {i + 1}/{per_epoch} loss {total / seen:.4f} "
                      f"train acc {correct / seen:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        test_acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch + 1}: loss {total / seen:.4f}, test accuracy {test_acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    test_acc = accuracy(model, x_test, y_test)
    per_class = [round((model.predict(x_test[y_test == c]) == c).float().mean().item(), 4) for c in range(10)]
    save_classifier(args.out, model, reference=reference_stats(model, x_test), dataset="mnist",
                    train={"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "augment": not args.no_augment,
                           "seed": args.seed, "threads": args.threads, "seconds": round(seconds, 1),
                           "torch": torch.__version__},
                    test_accuracy=round(test_acc, 4), test_accuracy_per_class=per_class)
    print(f"test accuracy {test_acc:.4f} (per class {per_class}); trained in {seconds:.0f} s on "
          f"{args.threads} thread(s); wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "benchmarks/train_classifier.py"))
