"""The model zoo: one module per architecture family, each registered by name.

Every model takes ``in_chans`` (default 1) and ``num_classes`` (default 7) and offers
``forward_features``, ``forward_head`` and ``forward``, with attributes ``num_classes``,
``in_chans`` and ``input_size`` (C, H, W).
"""

# Importing each family registers its models.
from ferlab.models import (  # noqa: F401
    deep_emotion,
    densenet,
    facial_attention,
    ferlab_fast,
    ferlab_net,
    jahromi,
    luo,
    resnet,
    vgg,
    vggface,
)
from ferlab.models._registry import (
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = ["ModelEntry", "create_model", "get_model_entry", "list_models", "register_model"]
