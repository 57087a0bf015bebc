"""Weights from one app to the other: Table 5's ImageNet ResNet-50 as Table 3's Mask R-CNN backbone."""
