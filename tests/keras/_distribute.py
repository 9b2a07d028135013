"""Two logical CPU devices for MirroredStrategy tests (ternary and weight sharing).

TensorFlow only accepts a logical device configuration before its runtime starts, so
`configure_two_cpus()` is called when a test module is imported (collection happens
before any test runs). If something else started the runtime first,
`run_in_fresh_process` runs the check in a new interpreter where the configuration can
still be made.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

# Tolerance of a MirroredStrategy run against the same run on one device: the two
# replicas sum their gradients in a different order, so float32 results differ by a few
# ulps per step, nothing more.
MIRRORED_ATOL = 1e-5


def configure_two_cpus() -> None:
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass  # the runtime is already initialised; run_in_fresh_process handles it


@functools.cache
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole process: separate
    strategy objects reuse the same collective instance keys, and their all-reduces then
    collide ("Shape mismatch in the collective instance")."""
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    return tf.distribute.MirroredStrategy(devices)


def have_two_cpus() -> bool:
    import tensorflow as tf

    return len(tf.config.list_logical_devices("CPU")) >= 2


def run_in_fresh_process(source: str) -> None:
    """Runs `source` (a test body that raises on failure) in a new Python process that
    has two logical CPUs; fails the calling test with the child's output on error."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    prelude = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from tests.keras._distribute import configure_two_cpus\n"
        "configure_two_cpus()\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child process failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
