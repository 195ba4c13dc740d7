"""TensorFlow's start, without the CUDA probe's lines where no GPU can be.

The Linux wheel of TensorFlow is a CUDA build: when it starts it looks for
an NVIDIA driver and, on a machine without one, writes

    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)

to stderr whatever TF_CPP_MIN_LOG_LEVEL says (the first comes before
TensorFlow's logging reads it, the second is an error, which level 2 keeps).
On such a machine they say only "CPU", so importing prism_tf drops exactly
these lines; every other line still comes through. Where a driver is installed
nothing is filtered: a failed cuInit there is a real GPU problem.
"""

import os
from pathlib import Path
import re
import sys
import tempfile

# Present wherever an NVIDIA driver is loaded (a Linux kernel module, or
# WSL2's GPU device).
GPU_DRIVER_FILES = (Path("/proc/driver/nvidia/version"), Path("/dev/dxg"))
CUDA_PROBE_LINE = re.compile(
    rb"cudart_stub\.cc:\d+\] Could not find cuda drivers"
    rb"|cuda_platform\.cc:\d+\] failed call to cuInit"
    rb"|^WARNING: All log messages before absl::InitializeLog\(\) is called")


def without_cuda_probe_lines(text: bytes) -> bytes:
    r"""`text` less the CUDA probe's lines.

    >>> without_cuda_probe_lines(
    ...     b"I0000 00:00:17.1 9 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    ...     b"W0000 00:00:17.2 9 other.cc:3] a real warning\n")
    b'W0000 00:00:17.2 9 other.cc:3] a real warning\n'
    """
    return b"".join(line for line in text.splitlines(keepends=True)
                    if not CUDA_PROBE_LINE.search(line))


def import_tensorflow() -> None:
    """Imports TensorFlow and lists its devices (the CUDA probe runs then),
    dropping the probe's lines from stderr when no GPU driver is installed.
    TensorFlow's C++ INFO lines (CPU instruction sets, allocator patches)
    are off unless TF_CPP_MIN_LOG_LEVEL is set; warnings and errors stay."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules or any(path.exists() for path in GPU_DRIVER_FILES):
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.buffer.write(without_cuda_probe_lines(captured.read()))
            sys.stderr.flush()
