# Mask R-CNN R50-FPN (Table 3): mmdet's mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py (the paper: "the same as
# (Chen et al. 2019)", i.e. mmdetection's) with the normalization method in the ResNet-50 backbone.
#
# Differences from mmdet's config, and why:
# - no download: init_cfg None (mmdet's fetches torchvision://resnet50). model.backbone_checkpoint=<local
#   file> restores mmdet's start (Pretrained init, stage 1 frozen, BN in eval mode); the paper used an
#   ImageNet-pretrained backbone. Without one: from scratch, nothing frozen, norms trained.
# - zero_init_residual False: mmdet's default zeroes each block's last norm, which only exists with an output
#   norm, and leaves most PWS layers without gradient at first.
# - each run sets its method's conv_cfg/norm_cfg in the backbone ("remove all BN layers and replace all conv
#   layers in the backbone with PWS"; NoNorm where the method has no norm: mmdet's ResNet needs one). For
#   none, WN and PWS the backbone is InputNormResNet: Table 5's LayerNorm after the stem conv, as the ImageNet
#   network that Table 5 trains and exports for this model has it (pws.detect.models.resnet_method_cfg).
#   model.neck_heads=method also puts it into the FPN, a Shared4Conv1FCBBoxHead and the mask head, as mmdet's
#   gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py (the authors' PWS there: gamma 1e-1, "equiv" mode).
# - model.head_norm=layer (the smoke scale's for none, WN and PWS; off in the paper's runs): a LayerNorm
#   (GroupNorm of one group) after every FPN conv, as SSD's head LayerNorm: a from-scratch PWS ResNet-50's
#   outputs grow by orders of magnitude within epochs, and nothing else normalizes what the heads read.
# Kept from mmdet: the whole model, its train/test settings, pipelines (keep-ratio resize to 1333x800, flip;
# the smoke scale caps the size), COCO datasets and CocoMetric (bbox, segm).
_base_ = ["mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"]
custom_imports = dict(imports=["pws.detect.registry"], allow_failed_imports=False)

model = dict(backbone=dict(frozen_stages=-1, norm_eval=False, zero_init_residual=False, init_cfg=None))
