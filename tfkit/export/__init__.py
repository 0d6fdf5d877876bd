"""Deployment: SavedModels with explicit serving signatures, TFLite variants with parity.

    tfkit export savedmodel RUN_DIR --out saved_models/NAME/1
    tfkit export tflite RUN_DIR --out tflite/NAME [--data-dir DIR]

Library use:

    >>> from tfkit.export import export_saved_model, convert, TFLiteModel
    >>> from tfkit.models import ViT
    >>> model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
    ...             intermediate_dim=32, num_classes=3, channels=1)
    >>> x = np.random.rand(4, 8, 8, 1).astype("float32")
    >>> export_saved_model(model, {"kind": "image_classifier"}, "saved_models/m/1").name
    '1'
    >>> TFLiteModel(convert(model, "int8", calibration=x)).predict(x).shape
    (4, 3)
"""

from tfkit.export.errors import ExportError, TFLiteModelError
from tfkit.export.saved_model import (
    ImageClassifierModule,
    LanguageModelModule,
    export_saved_model,
    serving_module,
    signature_summary,
)
from tfkit.export.source import ModelSource, resolve_source
from tfkit.export.tflite import VARIANTS, TFLiteModel, convert, integer_friendly

__all__ = ["ExportError", "TFLiteModelError", "ImageClassifierModule", "LanguageModelModule",
           "export_saved_model", "serving_module", "signature_summary", "ModelSource",
           "resolve_source", "VARIANTS", "TFLiteModel", "convert", "integer_friendly"]
