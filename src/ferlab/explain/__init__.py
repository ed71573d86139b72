"""Seeing what the networks attend to: heat maps, the models' own attention, filter images.

>>> import ferlab
>>> from ferlab.explain import face_heatmap, overlay_heatmap
>>> model = ferlab.load_model("default")                       # doctest: +SKIP
>>> heat = face_heatmap(model, faces)          # N×48×48 in [0, 1]   doctest: +SKIP
>>> picture = overlay_heatmap(faces[0], heat[0])   # BGR uint8       doctest: +SKIP

See ``docs/explain.md`` for the methods, their choices and ``ferlab explain``.
"""

from ferlab.explain.attention import (
    ATTENTION_METHODS,
    FacialMap,
    SelfAttentionMaps,
    StnWarp,
    facial_attention_maps,
    se_channel_weights,
    self_attention_maps,
    stn_warp,
    supported_methods,
)
from ferlab.explain.cam import (
    CAM_METHODS,
    SCORECAM_CHANNELS,
    CamResult,
    class_activation_maps,
    face_heatmap,
    overlay_heatmap,
    target_layer,
)
from ferlab.explain.faithfulness import DeletionResult, deletion_test
from ferlab.explain.filters import FilterImages, filter_images

__all__ = [
    "ATTENTION_METHODS",
    "CAM_METHODS",
    "SCORECAM_CHANNELS",
    "CamResult",
    "DeletionResult",
    "FacialMap",
    "FilterImages",
    "SelfAttentionMaps",
    "StnWarp",
    "class_activation_maps",
    "deletion_test",
    "face_heatmap",
    "facial_attention_maps",
    "filter_images",
    "overlay_heatmap",
    "se_channel_weights",
    "self_attention_maps",
    "stn_warp",
    "supported_methods",
    "target_layer",
]
