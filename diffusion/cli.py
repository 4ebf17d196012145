"""Shared command-line plumbing: one-line errors with exit code 2, and a progress bar callback."""

from __future__ import annotations

import argparse
import os
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage block) and exits with code 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def run(main, prog: str, argv=None) -> int:
    """Call main(argv); a ValueError (bad input found by the core) becomes a one-line message, exit 2."""
    try:
        return main(argv) or 0
    except (ValueError, OSError) as e:
        sys.stderr.write(f"{prog}: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}\n")
        return 2


def positive_int(name: str, lo: int = 1, hi: int = 10_000_000):
    """An argparse type: an integer in [lo, hi], with a message naming the option."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}]; got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}]; got {value}")
        return value
    return parse


def bounded_float(name: str, lo: float, hi: float):
    """An argparse type: a finite float in [lo, hi]."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [{lo:g}, {hi:g}]; got {text!r}") from None
        if not lo <= value <= hi:  # also rejects nan
            raise argparse.ArgumentTypeError(f"{name} must be a number in [{lo:g}, {hi:g}]; got {text}")
        return value
    return parse


class _OrderedPair(argparse.Action):
    """Stores nargs=2 numbers as a (lo, hi) tuple; lo > hi is a one-line error naming the option."""

    def __call__(self, parser, namespace, values, option_string=None):
        lo, hi = values
        if lo > hi:
            parser.error(f"{option_string} LO HI needs LO <= HI; got {lo:g} {hi:g}")
        setattr(namespace, self.dest, (lo, hi))


def add_interval(group) -> None:
    """The --interval LO HI option: classifier-free guidance only where the log-SNR is in [LO, HI)
    (diffusion.samplers.guided); absent, None: guidance over the whole journey."""
    group.add_argument("--interval", nargs=2, type=bounded_float("--interval", -30, 30), action=_OrderedPair,
                       default=None, metavar=("LO", "HI"),
                       help="guide only where the log-SNR lambda lies in [lo, hi), lo <= hi, each in [-30, 30], "
                            "e.g. -1.5 4; elsewhere plain conditional at one network call (default: guidance "
                            "over the whole journey)")


def check_writable(path: str, suffix: str, option: str = "--out") -> str:
    """Fail early (before any work) if `path` cannot be written: wrong suffix, missing or read-only folder."""
    if not path.endswith(suffix):
        raise ValueError(f"{option} must name a {suffix} file; got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option}: folder {folder!r} is not writable")
    if os.path.isdir(path):
        raise ValueError(f"{option}: {path!r} is a folder")
    return path


class ProgressBar:
    """A tqdm bar on stderr, used as a per-step callback; silent when stderr is not a terminal unless forced."""

    def __init__(self, total: int, desc: str, enabled: bool | None = None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=enabled is False,
                        dynamic_ncols=True, leave=False)

    def __call__(self, info=None):
        self.bar.update(1)

    def close(self):
        self.bar.close()
