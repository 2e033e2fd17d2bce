"""Rosbag replay evaluation of the perception node (``mtlsi-bag``), built on the ``rosbags`` library.

    make     (``make.make_bag``)          a bag from a dataset split or an image folder: image, camera_info and
                                          ground-truth topics (``groundtruth``) with stamps at a chosen rate
    infer    (``infer.run_infer``)        bag in, bag out: every frame through the node's own processing path
    eval     (``evaluate.run_bag_eval``)  metrics of output topics against ground truth, mtlsi-eval's table / JSON
    play / record (``live``)              a player and a recorder node (raw CDR), for live replay through the node
    map      (``map.run_map``)            semantic 3D map (Open3D TSDF) of the outputs, posed by /tf
                                          (``transforms``), scored against a sequence's scene file

``storage`` reads and writes bags (sqlite3 / mcap, atomic output); ``frames`` decodes the image topics and groups
them by stamp, ``posed`` adds intrinsics and poses (for ``map`` and ``stability``, the temporal stability of
``eval``); every bad input raises ``BagError`` with a one-line message naming the file, topic and message index.
``mtlsi_core`` stays free of ROS: this is mtlsi_ros.
"""
from mtlsi_ros.bag.errors import BagError

__all__ = ["BagError"]
