# Mask R-CNN R50-FPN with the normalization method also in the FPN and the heads (model.neck_heads=method):
# mask_rcnn_r50_fpn.py with the box head of mmdet's gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py, whose
# four convs can take a conv and a norm (the authors' PWS Mask R-CNN has PWS there, gamma 1e-1 in "equiv"
# mode: model.neck_heads_pws).
#
# Differences from mask_rcnn_r50_fpn.py, and why:
# - roi_head.bbox_head is a Shared4Conv1FCBBoxHead (4 convs of 256 channels, then one FC) instead of mmdet's
#   Shared2FCBBoxHead: two FC layers have no conv for the method; mmdet's GN and GN+WS Mask R-CNNs use it.
# - each run sets its method's conv_cfg/norm_cfg in the FPN, these four convs and the mask head's convs
#   (pws.detect.models); the FC layers and the RPN conv stay plain, as in mmdet's GN+WS config.
_base_ = ["./mask_rcnn_r50_fpn.py"]

model = dict(roi_head=dict(bbox_head=dict(type="Shared4Conv1FCBBoxHead", conv_out_channels=256)))
