"""ui/threads.py: a training thread gives way to the pages."""

import os
import sys
import threading

import pytest

from ui.threads import BACKGROUND_NICE, lower_this_threads_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is a Linux feature")
def test_lowering_a_threads_priority_leaves_the_others_alone():
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if main_before >= 19:
        pytest.skip("the tests already run at the lowest priority")
    seen = {}

    def work():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["ok"] = lower_this_threads_priority()
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before
        seen["expected"] = min(19, before + BACKGROUND_NICE) - before

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["ok"] and seen["delta"] == seen["expected"] > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
