# SSD320-VGG16, the paper's SSD (Tables 1-3, Figures 1 and 6): mmdet's SSD300 on VOC07+12
# (pascal_voc/ssd300_voc0712.py, the setting of Tables 1-2) with only what the paper's model changes.
#
# Differences from mmdet's config, and why:
# - input 320x320 instead of 300 ("The image size is fixed to 320"): the Resize of both pipelines.
# - anchors for 320 by SSD's rule (VOC ranges 0.2-0.9, level 1 at 0.1-0.2; strides 320 / map side for the
#   maps 40, 20, 10, 5, 3, 1): mmdet's SSDAnchorGenerator computes sizes only for 300 and 512. COCO runs get
#   the same rule with the COCO ranges (pws.detect.models.ssd_anchor_generator).
# - backbone NormSSDVGG (pws.detect.backbones) instead of SSDVGG: the authors' VGG-16 with a non-dilated conv6
#   3x3-1024 (SSD300's is dilated 6), and conv_cfg/norm_cfg for the normalization method (SSDVGG hard-codes
#   plain convs); each run sets its method's conv_cfg/norm_cfg in the backbone and in the neck (SSDNeck).
# - the input divided by the ImageNet pixel std as well as centred (mmdet's SSD300: std 1, the raw pixel
#   scale caffe's pretrained VGG-16 expects), as mmdet's from-scratch and ResNet detectors (ssd320_r50.py):
#   without a norm after the first conv (none, wn, pws) an input std of ~57 scales every layer's output and
#   the gains' gradients (measured at smoke scale: PWS's first-layer alphas thrown from 1 to -0.7 .. 0.2).
# - trained from scratch: no init_cfg (mmdet's downloads the pretrained open-mmlab://vgg16_caffe); the
#   project's convs keep their own init (He fan-in).
# - bbox_head FixedSSDHead: mmdet 3.3.0's SSDHead with its inference bug worked around (no loss_cls), and
#   the option model.head_norm=layer (the authors' code: a LayerNorm of every prediction map; off in the
#   paper's runs, on at the smoke scale).
# - as mmdet's ssd300_coco.py: batch_sampler None (every image is resized to a square) and evaluation in
#   batches of 8 (the VOC file inherits 1 from the two-stage detectors' VOC datasets).
# - custom_hooks: NumClassCheckHook only; the project's DivergenceHook (added by the app) replaces
#   CheckInvalidLossHook, recording a divergence instead of failing 50 iterations later.
# Kept from mmdet: SSDNeck's extra layers and the L2Norm (scale 20) of conv4_3, the head, box coder, train and
# test settings (NMS 0.45, score 0.02, 200 boxes), preprocessing (RGB minus the ImageNet mean) and
# SSD's augmentation (Expand, MinIoURandomCrop, Resize, RandomFlip, PhotoMetricDistortion), as the paper ("the
# same data augmentation with SSD"). Each run sets num_classes, the data root (COCO: mmdet's COCO datasets),
# batch size, LR, schedule, evaluator, work_dir and hooks (pws.detect.config.build_config).
_base_ = ["mmdet::pascal_voc/ssd300_voc0712.py"]
custom_imports = dict(imports=["pws.detect.registry"], allow_failed_imports=False)

input_size = 320
model = dict(
    data_preprocessor=dict(std=[58.395, 57.12, 57.375]),
    backbone=dict(_delete_=True, type="NormSSDVGG", conv_cfg=None, norm_cfg=None, init_cfg=None),
    bbox_head=dict(
        type="FixedSSDHead",
        anchor_generator=dict(
            input_size=input_size,
            strides=[8, 16, 32, 64, 107, 320],
            min_sizes=[32, 64, 118, 172, 227, 281],
            max_sizes=[64, 118, 172, 227, 281, 336],
        ),
    ),
)


def _resized(pipeline):  # a function: not part of the config
    return [dict(t, scale=(input_size, input_size)) if t["type"] == "Resize" else t for t in pipeline]


train_pipeline = _resized(_base_.train_pipeline)
test_pipeline = _resized(_base_.test_pipeline)
train_dataloader = dict(
    batch_sampler=None,
    dataset=dict(
        dataset=dict(
            datasets=[
                dict(d, pipeline=train_pipeline) for d in _base_.train_dataloader.dataset.dataset.datasets
            ]
        )
    ),
)
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
custom_hooks = [dict(type="NumClassCheckHook")]
