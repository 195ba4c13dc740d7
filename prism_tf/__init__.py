"""prism-tf: noise-resistant deep metric learning (PRISM) for Keras."""

from prism_tf.tensorflow_start import import_tensorflow

import_tensorflow()

from prism_tf import losses
from prism_tf.memory_bank import MemoryBank
from prism_tf.model import PrismModel
from prism_tf.selector import PrismSelector

__version__ = "0.1.0"

__all__ = ["MemoryBank", "PrismModel", "PrismSelector", "losses"]
