"""All training settings in one visible place; train.py's flags override them."""
import os
from datetime import datetime

from mltu.configs import BaseModelConfigs


class ModelConfigs(BaseModelConfigs):
    def __init__(self):
        super().__init__()
        # Each run gets its own folder, so earlier models are never overwritten.
        self.model_path = os.path.join("Models", "03_handwriting_recognition", datetime.now().strftime("%Y%m%d%H%M"))
        self.vocab = ""  # filled from the training data
        self.height = 32
        self.width = 128
        self.max_text_length = 0  # filled from the training data
        self.batch_size = 16  # per replica (per GPU); train.py --help explains the global batch
        self.learning_rate = 0.0005
        self.mixed_precision = "off"  # or float16, bfloat16 (train.py --mixed-precision)
        self.train_epochs = 1000
