"""ui/page.py: the source expander reads each object's source once, one thread at a time."""

import inspect
import threading

from diffusion.metrics import EnergyReference
from ui import page, reverse


def test_sources_are_read_once_and_shared_by_threads(monkeypatch):
    calls = []
    real = inspect.getsource

    def counting(obj):
        calls.append(obj)
        return real(obj)

    monkeypatch.setattr(page.inspect, "getsource", counting)
    monkeypatch.setattr(page, "_SOURCES", {})
    results, errors = [], []

    def read():
        try:
            results.append((page.source_of(EnergyReference), page.source_of(reverse.run)))
        except Exception as e:  # noqa: BLE001 -- a SystemError from concurrent ast parsing would land here
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert calls == [EnergyReference, reverse.run]  # a class's source parses its whole module: once only
    assert results[0][0] == real(EnergyReference) and "class EnergyReference" in results[0][0]
    assert all(r == results[0] for r in results)
