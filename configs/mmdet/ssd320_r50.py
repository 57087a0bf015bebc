# SSD320-ResNet-50 (Table 2's "ResNet-50" rows): ssd320_vgg16.py (mmdet's SSD300 with the paper's changes)
# with mmdet's ResNet-50 as the backbone. The paper gives no more detail of this model.
#
# Differences from ssd320_vgg16.py, and why:
# - backbone mmdet's ResNet-50 (C3, C4, C5: 512, 1024, 2048 channels, maps 40, 20, 10 at 320), from
#   scratch (init_cfg None), nothing frozen, norms trained (norm_eval False), zero_init_residual False
#   (mmdet's default zeroes each block's last norm, which only exists with an output norm, and leaves most
#   PWS layers without gradient at first). Each run sets its method's conv_cfg/norm_cfg (NoNorm where the
#   method has no norm: mmdet's ResNet needs one).
# - neck: three extra layers after C5 (10 -> 5 -> 3 -> 1; 512, 256, 256 channels), so the six maps and the
#   anchors equal SSD-VGG16's; no L2Norm (it is there for VGG's conv4_3 scale).
# - preprocessing with the ImageNet mean and std, as mmdet's ResNet detectors (VGG's SSD: std 1).
_base_ = ["./ssd320_vgg16.py"]

model = dict(
    data_preprocessor=dict(std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type="ResNet",
        depth=50,
        out_indices=(1, 2, 3),
        norm_eval=False,
        zero_init_residual=False,
        init_cfg=None,
    ),
    neck=dict(
        in_channels=(512, 1024, 2048),
        out_channels=(512, 1024, 2048, 512, 256, 256),
        level_strides=(2, 1, 1),
        level_paddings=(1, 0, 0),
        l2_norm_scale=None,
    ),
    bbox_head=dict(in_channels=(512, 1024, 2048, 512, 256, 256)),
)
