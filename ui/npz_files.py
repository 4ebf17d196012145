"""Files of arrays computed ahead (the energy maps, the digit presets, the memorisation samples).

Each is one compressed .npz holding its arrays and, under "meta", a JSON description whose "format" names
the kind of file. It is written atomically (a crash leaves the old file or the new one) and read with
allow_pickle=False, so a damaged or foreign file can only be refused, never run.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np


def save(path, arrays: dict) -> None:
    """Write `arrays` (its "meta" entry included) atomically."""
    from diffusion.checkpoints import atomic_write

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def read(path, fmt: str, kind: str) -> tuple[dict | None, dict | None, str | None]:
    """(arrays without "meta", meta, None); (None, None, None) when there is no file; (None, None, why) when it
    cannot be read or its format is not `fmt` (`kind` names it in the message, e.g. "an energy-maps file")."""
    name = os.path.basename(str(path))
    if not os.path.exists(path):
        return None, None, None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as e:  # noqa: BLE001 - any damage means: compute live, and say why
        return None, None, f"{name} could not be read ({type(e).__name__}: {e})"
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        return None, None, f"{name} is not {kind}"
    return arrays, meta, None
