"""Offline demo zoo: synthetic shape scenes with exact masks and the small ``ShapesNet`` trained on them.

- :mod:`saliency_core.zoo.scenes`: deterministic-by-seed scene generator (image, target mask, label).
- :mod:`saliency_core.zoo.shapes_net`: the CAM-friendly CNN and its normalisation constants.
- :mod:`saliency_core.zoo.train_demo`: trains the demo weights committed as ``assets/shapes_demo.safetensors``.
- :mod:`saliency_core.zoo.check_demo`: held-out accuracy and Grad-CAM pointing-game check of those weights.
- :mod:`saliency_core.zoo.make_samples`: regenerates ``assets/samples/``.

Seed ranges (disjoint, so held-out numbers are honest):

- training scenes: ``TRAIN_SEED_START`` (0) upwards, ``0 .. train_scenes - 1``;
- held-out evaluation scenes (checks and tests): ``HELDOUT_SEED_START`` (1_000_000) upwards;
- bundled sample scenes in ``assets/samples``: ``SAMPLE_SEED_START`` (2_000_000) upwards.
"""

TRAIN_SEED_START = 0
HELDOUT_SEED_START = 1_000_000
SAMPLE_SEED_START = 2_000_000
