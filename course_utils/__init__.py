"""Shared helpers for the course "Multilayer perceptrons with Keras".

Import this package before TensorFlow or Keras: the two settings below must be in the environment when
TensorFlow loads, or its C++ start-up lines (oneDNN notices, absl warnings) land in notebook outputs and
differ between a book build and a test run.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from course_utils.idx import IDXFormatError, read_idx, read_idx_header, write_idx  # noqa: E402

__all__ = ["IDXFormatError", "read_idx", "read_idx_header", "write_idx"]
__version__ = "0.1.0"
